"""``fermion device``, ``fermion product device``, ``fermion customer``, ``fermion client``.

Thin calls to the REST API, shaped as particle-cli sends them; tables for people, ``--json`` for
scripts, a progress bar when a command touches many devices.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from fermion.cli.api_client import ApiClient, ApiError
from fermion.cli.output import (
    JSON_OPT,
    console,
    over_many,
    print_json,
    print_result,
    print_table,
    table,
)
from fermion.errors import FermionError
from fermion.ids import not_a_device_id, parse_device_id

# The cloud's key-health states (fermion.cloud.store.models.KeyHealth, which a unit test holds
# this to), as GET .../devices answers `key_health`. Not imported: the store's import would
# cost every `fermion` command a second.
KEY_HEALTH = ("unknown", "ok", "mismatch", "no_key")

device_app = typer.Typer(help="Devices claimed by your account.", no_args_is_help=True)
product_app = typer.Typer(help="Products you are on the team of.", no_args_is_help=True)
product_device_app = typer.Typer(help="Devices in a product.", no_args_is_help=True)
customer_app = typer.Typer(help="A product's customers.", no_args_is_help=True)
client_app = typer.Typer(help="OAuth clients.", no_args_is_help=True)
product_app.add_typer(product_device_app, name="device")

PRODUCT_ARG = typer.Argument(..., help="Product id or slug.")


def _ids(ids: list[str] | None, file: Path | None) -> list[str]:
    found = [i.strip().lower() for i in ids or [] if i.strip()]
    if file is not None:
        try:
            text = file.read_text()
        except OSError as exc:
            raise FermionError(f"{file}: cannot read ({exc.strerror})") from None
        found += [line.strip().lower() for line in text.splitlines() if line.strip()]
    if not found:
        raise FermionError("give at least one device id (or --file with one id a line)")
    return found


def _each_device(
    targets: list[str],
    doing: str,
    done: str,
    call: Callable[[ApiClient, str], Any],
    as_json: bool,
) -> None:
    """One API call per device, with a progress bar; then the results or a line each."""
    with ApiClient() as api:
        results = over_many(targets, doing, lambda device_id: call(api, device_id), as_json)
    if as_json:
        print_json(results)
        return
    for device_id in targets:
        console.print(f"{done} {device_id}")


def _device_rows(devices: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            d.get("id"),
            d.get("name"),
            d.get("product_id"),
            d.get("customer") or d.get("owner"),
            "online" if d.get("online") else "offline",
            d.get("key_health"),
        )
        for d in devices
    ]


_DEVICE_COLUMNS = ["id", "name", "product", "owner", "status", "key"]


@device_app.command("list")
def device_list(
    health: str | None = typer.Option(
        None, "--health", help=f"Only devices in this key health: {', '.join(KEY_HEALTH)}."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """List the devices claimed by your account, or those of one key health."""
    wanted = health_filter(health)
    with ApiClient() as api:
        devices = api.devices()
    if wanted is not None:
        devices = [d for d in devices if d.get("key_health") == wanted]
    which = f" with key health {wanted}" if wanted else ""
    print_table(
        devices, as_json, f"{len(devices)} device(s){which}", _DEVICE_COLUMNS, _device_rows(devices)
    )


@device_app.command("show")
def device_show(
    device_id: str = typer.Argument(..., metavar="ID", help="Device id."),
    product: str | None = typer.Option(
        None, "--product", help="Read it through its product (team members who do not own it)."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Show one device: owner, product, online, key health and the key the cloud holds."""
    did = parse_device_id(device_id)
    if did is None:
        raise FermionError(not_a_device_id("ID", device_id))
    with ApiClient() as api:
        device = api.device(did, product)
    if as_json:
        print_json(device)
        return
    shown = (
        "id",
        "name",
        "product_id",
        "owner",
        "customer",
        "platform_id",
        "transport",
        "online",
        "last_heard",
        "last_handshake_at",
        "last_ip_address",
        "key_health",
        "key_algorithm",
        "key_fingerprint",
        "last_outcome",
        "notes",
    )
    table(None, ["field", "value"], [(k, device.get(k)) for k in shown if k in device])


@device_app.command("claim")
def device_claim(
    ids: list[str] = typer.Argument(None, help="Device ids."),
    file: Path | None = typer.Option(None, "--file", help="One device id a line."),
    as_json: bool = JSON_OPT,
) -> None:
    """Claim devices to your account (POST /v1/devices id=...)."""
    _each_device(_ids(ids, file), "claiming", "claimed", ApiClient.claim, as_json)


@device_app.command("unclaim")
def device_unclaim(
    ids: list[str] = typer.Argument(None, help="Device ids."),
    file: Path | None = typer.Option(None, "--file", help="One device id a line."),
    as_json: bool = JSON_OPT,
) -> None:
    """Release devices from their owner (DELETE /v1/devices/:id)."""
    _each_device(_ids(ids, file), "unclaiming", "unclaimed", ApiClient.unclaim, as_json)


@device_app.command("rename")
def device_rename(device_id: str, name: str, as_json: bool = JSON_OPT) -> None:
    """Rename a device."""
    with ApiClient() as api:
        body = api.rename(device_id.lower(), name)
    print_result(body, as_json, f"renamed {device_id} to {name}")


def all_product_devices(api: ApiClient, product: str) -> list[dict[str, Any]]:
    """Every device of a product, page after page."""
    devices: list[dict[str, Any]] = []
    page = 1
    while True:
        body = api.product_devices(product, page=page)
        devices += body.get("devices", [])
        total = int(body.get("meta", {}).get("total_pages") or 1)
        if page >= total:
            return devices
        page += 1


def health_filter(value: str | None) -> str | None:
    """--health: one of the cloud's key-health states, said in full when it is not one."""
    if value is None:
        return None
    wanted = value.strip().lower().replace("-", "_")
    if wanted not in KEY_HEALTH:
        raise FermionError(f"--health: {value!r} is not one of {', '.join(KEY_HEALTH)}")
    return wanted


@product_device_app.command("list")
def product_device_list(
    product: str = PRODUCT_ARG,
    health: str | None = typer.Option(
        None, "--health", help=f"Only devices in this key health: {', '.join(KEY_HEALTH)}."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """List every device of a product (all pages), or those of one key health."""
    wanted = health_filter(health)
    with ApiClient() as api:
        devices = all_product_devices(api, product)
    if wanted is not None:
        devices = [d for d in devices if d.get("key_health") == wanted]
    which = f" with key health {wanted}" if wanted else ""
    print_table(
        devices,
        as_json,
        f"product {product}: {len(devices)} device(s){which}",
        _DEVICE_COLUMNS,
        _device_rows(devices),
    )


def _approval(api: ApiClient, device: dict[str, Any]) -> dict[str, Any]:
    """What `product device approve` does for one device: the one pending key it proved it
    holds, or why it is left alone."""
    row: dict[str, Any] = {"device_id": device.get("id"), "fingerprint": None, "candidate": None}
    try:
        candidates = api.key_candidates(str(device["id"]))
    except ApiError as exc:
        row["result"] = f"failed: {exc}"
        return row
    pending = [c for c in candidates if c.get("status") == "pending"]
    proven = [c for c in pending if c.get("possession_proven")]
    if len(proven) == 1:
        row.update(fingerprint=proven[0].get("fingerprint"), candidate=proven[0].get("id"))
        row["result"] = "to approve"
    elif proven:
        # Two keys proven for one device: a person picks (keys approve --fingerprint).
        row["result"] = f"skipped: {len(proven)} proven keys pending; pick one with keys approve"
    elif pending:
        row["result"] = "skipped: possession not proven"
    else:
        row["result"] = "skipped: no pending key"
    return row


@product_device_app.command("approve")
def product_device_approve(
    product: str = PRODUCT_ARG,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be approved; change nothing."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Approve, in every device of the product whose key health is mismatch, the one presented
    key the device proved it holds (as `keys approve` does one by one; each is audited)."""
    with ApiClient() as api:
        refused = [
            d for d in all_product_devices(api, product) if d.get("key_health") == "mismatch"
        ]
        rows = over_many(refused, "checking presented keys", lambda d: _approval(api, d), as_json)
        chosen = [r for r in rows if r["candidate"] is not None]

        def approve_one(row: dict[str, Any]) -> None:
            path = f"/v1/devices/{row['device_id']}/keys/candidates/{row['candidate']}/approve"
            try:
                api.request("POST", path)
                row["result"] = "approved"
            except ApiError as exc:  # one refusal must not stop the rest of the fleet
                row["result"] = f"failed: {exc}"

        if dry_run:
            for row in chosen:
                row["result"] = "would approve"
        else:
            over_many(chosen, "approving", approve_one, as_json)
    failed = [r for r in rows if r["result"].startswith("failed")]
    if as_json:
        print_json({"product": product, "dry_run": dry_run, "devices": rows})
    else:
        table(
            f"product {product}: {len(refused)} device(s) with key health mismatch"
            + (" (dry run: nothing changed)" if dry_run else ""),
            ["id", "presented key", "result"],
            [(r["device_id"], r["fingerprint"], r["result"]) for r in rows],
        )
        done = sum(r["result"] in ("approved", "would approve") for r in rows)
        console.print(
            f"{'would approve' if dry_run else 'approved'} {done}, "
            f"skipped {len(rows) - done - len(failed)}, failed {len(failed)}"
        )
    if failed:
        raise typer.Exit(1)


@product_app.command("list")
def product_list(as_json: bool = JSON_OPT) -> None:
    """List the products you are on the team of."""
    with ApiClient() as api:
        products = api.products()
    print_table(
        products,
        as_json,
        f"{len(products)} product(s)",
        ["id", "slug", "name", "platform", "owner"],
        [
            (p.get("id"), p.get("slug"), p.get("name"), p.get("platform_id"), p.get("user"))
            for p in products
        ],
    )


@product_device_app.command("add")
def product_device_add(
    product: str = PRODUCT_ARG,
    ids: list[str] = typer.Argument(None, help="Device ids."),
    file: Path | None = typer.Option(None, "--file", help="One device id a line."),
    as_json: bool = JSON_OPT,
) -> None:
    """Add devices to a product (one multipart file of ids, as particle-cli sends)."""
    targets = _ids(ids, file)
    with ApiClient() as api:
        body = api.product_add_devices(product, targets)
    if as_json:
        print_json(body)
        return
    console.print(f"added {body.get('updated', 0)} device(s) to product {product}")
    for key, what in (
        ("existingDeviceIds", "already in the product"),
        ("invalidDeviceIds", "invalid"),
        ("nonmemberDeviceIds", "owned by someone outside the team"),
        ("protectedDeviceIds", "protected"),
    ):
        if body.get(key):
            console.print(f"  {what}: {', '.join(body[key])}")


@product_device_app.command("remove")
def product_device_remove(
    product: str = PRODUCT_ARG,
    ids: list[str] = typer.Argument(None, help="Device ids."),
    file: Path | None = typer.Option(None, "--file", help="One device id a line."),
    as_json: bool = JSON_OPT,
) -> None:
    """Remove devices from a product."""
    targets = _ids(ids, file)
    with ApiClient() as api:
        over_many(targets, "removing", lambda d: api.product_remove_device(product, d), as_json)
    if as_json:
        print_json({"removed": targets, "product": product})
        return
    for device_id in targets:
        console.print(f"removed {device_id} from product {product}")


@customer_app.command("list")
def customer_list(product: str = PRODUCT_ARG, as_json: bool = JSON_OPT) -> None:
    """List a product's customers and their devices."""
    with ApiClient() as api:
        body = api.customers(product)
    customers = body.get("customers", [])
    print_table(
        customers,
        as_json,
        f"product {product}: {len(customers)} customer(s)",
        ["email", "devices"],
        [(c.get("username"), ", ".join(c.get("devices", []))) for c in customers],
    )


@customer_app.command("create")
def customer_create(
    product: str = PRODUCT_ARG,
    email: str = typer.Argument(...),
    password: str | None = typer.Option(
        None, "--password", help="Omit for a password-less (two-legged) customer."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Create a customer of a product."""
    with ApiClient() as api:
        body = api.create_customer(product, email, password)
    print_result(
        {"email": email, "product": product, "token": body},
        as_json,
        f"created customer {email} of product {product}",
    )


@customer_app.command("delete")
def customer_delete(
    product: str = PRODUCT_ARG, email: str = typer.Argument(...), as_json: bool = JSON_OPT
) -> None:
    """Delete a customer (their tokens are revoked)."""
    with ApiClient() as api:
        body = api.delete_customer(product, email)
    print_result(body, as_json, f"deleted customer {email} of product {product}")


@client_app.command("create")
def client_create(
    name: str = typer.Argument(...),
    product: str | None = typer.Option(None, "--product", help="Product id or slug."),
    type_: str = typer.Option(
        "installed", "--type", help="installed, web, or two-legged (server)."
    ),
    redirect_uri: str | None = typer.Option(None, "--redirect-uri"),
    as_json: bool = JSON_OPT,
) -> None:
    """Create an OAuth client; its secret is shown once."""
    with ApiClient() as api:
        body = api.create_client(product, name, type_, redirect_uri)
    client = body.get("client", body)
    if as_json:
        print_json(client)
        return
    console.print(f"client {client.get('id')} ({client.get('type')})")
    console.print(f"secret (shown once): {client.get('secret')}")


@client_app.command("list")
def client_list(
    product: str = typer.Option(..., "--product", help="Product id or slug."),
    as_json: bool = JSON_OPT,
) -> None:
    """List a product's OAuth clients (their secrets are never shown again)."""
    with ApiClient() as api:
        clients = api.clients(product)
    print_table(
        clients,
        as_json,
        f"product {product}: {len(clients)} client(s)",
        ["id", "name", "type", "scope"],
        [(c.get("id"), c.get("name"), c.get("type"), c.get("scope")) for c in clients],
    )


@client_app.command("delete")
def client_delete(
    client_id: str = typer.Argument(..., metavar="CLIENT_ID", help="The client's id."),
    product: str = typer.Option(..., "--product", help="Product id or slug."),
    as_json: bool = JSON_OPT,
) -> None:
    """Delete an OAuth client; every token it minted is revoked."""
    with ApiClient() as api:
        api.delete_client(product, client_id)
    print_result(
        {"deleted": client_id, "product": product},
        as_json,
        f"deleted client {client_id} of product {product} (its tokens are revoked)",
    )


def register(app: typer.Typer) -> None:
    if getattr(app, "_fermion_fleet_cmd", False):
        return  # main() may mount more than once in one process (tests)
    app._fermion_fleet_cmd = True  # type: ignore[attr-defined]
    app.add_typer(device_app, name="device")
    app.add_typer(product_app, name="product")
    app.add_typer(customer_app, name="customer")
    app.add_typer(client_app, name="client")
