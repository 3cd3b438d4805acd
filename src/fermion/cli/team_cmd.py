"""``fermion team`` (a product's team: list, invite, remove, role) and ``fermion audit``.

Thin calls to the REST API; the cloud decides who may do what and its refusal is printed as is.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from fermion.cli.api_client import ApiClient
from fermion.cli.output import JSON_OPT, print_result, print_table

team_app = typer.Typer(
    help="A product's team: list, invite, remove, change a role.", no_args_is_help=True
)

PRODUCT_ARG = typer.Argument(..., help="Product id or slug.")
EMAIL_ARG = typer.Argument(..., help="The member's account email.")
ROLES_HELP = "administrator, developer, support or view_only"


@team_app.command("list")
def team_list(product: str = PRODUCT_ARG, as_json: bool = JSON_OPT) -> None:
    """List the members of a product's team and their roles."""
    with ApiClient() as api:
        members = api.team(product)
    print_table(
        members,
        as_json,
        f"product {product}: {len(members)} member(s)",
        ["email", "role"],
        [(m.get("username"), (m.get("role") or {}).get("name")) for m in members],
    )


@team_app.command("invite")
def team_invite(
    product: str = PRODUCT_ARG,
    email: str = EMAIL_ARG,
    role: str | None = typer.Option(
        None, "--role", help=f"{ROLES_HELP} (default: the cloud's, Developer)."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Add an existing account to a product's team."""
    with ApiClient() as api:
        body = api.team_invite(product, email, role)
    invited = body.get("invited", {})
    print_result(
        invited,
        as_json,
        f"{invited.get('username', email)} is on product {product}'s team as {invited.get('role')}",
    )


@team_app.command("role")
def team_role(
    product: str = PRODUCT_ARG,
    email: str = EMAIL_ARG,
    role: str = typer.Argument(..., help=ROLES_HELP),
    as_json: bool = JSON_OPT,
) -> None:
    """Change a team member's role."""
    with ApiClient() as api:
        body = api.team_role(product, email, role)
    updated = body.get("updated", {})
    name = (updated.get("role") or {}).get("name")
    print_result(
        updated, as_json, f"{updated.get('username', email)} is now {name} on product {product}"
    )


@team_app.command("remove")
def team_remove(
    product: str = PRODUCT_ARG, email: str = EMAIL_ARG, as_json: bool = JSON_OPT
) -> None:
    """Remove a member from a product's team."""
    with ApiClient() as api:
        api.team_remove(product, email)
    print_result(
        {"removed": email, "product": product},
        as_json,
        f"removed {email} from product {product}'s team",
    )


def audit(
    device: str | None = typer.Option(None, "--device", help="One device's events."),
    product: str | None = typer.Option(None, "--product", help="One product's (id or slug)."),
    actor: str | None = typer.Option(None, "--actor", help="Who, e.g. user:a@b.c."),
    action: str | None = typer.Option(None, "--action", help="What, e.g. key.upload."),
    since: str | None = typer.Option(None, "--since", help="ISO 8601 time, inclusive."),
    until: str | None = typer.Option(None, "--until", help="ISO 8601 time, exclusive."),
    before_id: int | None = typer.Option(None, "--before-id", help="Page: events below this id."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000, help="At most this many."),
    as_json: bool = JSON_OPT,
) -> None:
    """The audit trail, newest first: what you may see, filtered as GET /v1/audit filters."""
    filters: dict[str, Any] = {
        "device_id": device.lower() if device else None,
        "product_id": product,
        "actor": actor,
        "action": action,
        "since": since,
        "until": until,
        "before_id": before_id,
        "limit": limit,
    }
    with ApiClient() as api:
        events = api.audit_events(filters)
    print_table(
        events,
        as_json,
        f"{len(events)} event(s)",
        ["id", "at", "actor", "action", "device", "product", "detail"],
        [
            (
                e.get("id"),
                e.get("at"),
                e.get("actor"),
                e.get("action"),
                e.get("device_id"),
                e.get("product_id"),
                _detail(e),
            )
            for e in events
        ],
    )


def _detail(event: dict[str, Any]) -> str:
    """What changed, on one line: the key's fingerprints, then the event's own detail."""
    parts = []
    before, after = event.get("before_fingerprint"), event.get("after_fingerprint")
    if before or after:
        parts.append(f"key {before or '-'} -> {after or '-'}")
    if event.get("detail"):
        parts.append(json.dumps(event["detail"], sort_keys=True, separators=(",", ":")))
    return " ".join(parts)


def register(app: typer.Typer) -> None:
    if getattr(app, "_fermion_team_cmd", False):
        return  # main() may mount more than once in one process (tests)
    app._fermion_team_cmd = True  # type: ignore[attr-defined]
    app.add_typer(team_app, name="team")
    app.command("audit")(audit)
