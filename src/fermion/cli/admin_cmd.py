"""``fermion admin``: bootstrap accounts, products, team roles, OAuth clients, customers."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from fermion.cloud.settings import Settings

app = typer.Typer(help="Bootstrap the cloud: users, products, roles.", no_args_is_help=True)
T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: FERMION_HOME or the user's)."),
]


def run_on_store(data_dir: Path | None, op: Callable[..., Awaitable[T]], *args: object) -> T:
    """Migrate the data directory's store, then run ``op(store, *args)`` on it to completion."""
    from fermion.cloud.store import Store, upgrade

    settings = Settings.from_env(data_dir=data_dir)
    settings.ensure_data_dir()
    upgrade(settings.database_url)

    async def go() -> T:
        store = Store(settings.database_url)
        try:
            return await op(store, *args)
        finally:
            await store.close()

    return asyncio.run(go())


@app.command("create-user")
def create_user(
    email: str,
    password: Annotated[
        str | None, typer.Option(help="Password (prompted for, hidden, when omitted).")
    ] = None,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Create it without a password (no login).")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a user account."""
    from fermion.cloud import admin

    if password is None and not no_password:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = run_on_store(data_dir, admin.create_user, email, password)
    typer.echo(f"created user {user.email}")


@app.command("create-product")
def create_product(
    name: str,
    owner: Annotated[str, typer.Option("--owner", help="Email of the owning user.")],
    platform: Annotated[str, typer.Option(help="photon, p1, electron, argon, boron.")] = "photon",
    data_dir: DataDir = None,
) -> None:
    """Create a product owned by an existing user."""
    from fermion.cloud import admin

    product = run_on_store(data_dir, admin.create_product, name, owner, platform)
    typer.echo(f"created product {product.id} ({product.slug}), owner {owner.lower()}")


@app.command("set-role")
def set_role(
    product: str,
    email: str,
    role: Annotated[
        str, typer.Option(help="administrator, developer, support or view_only.")
    ] = "developer",
    data_dir: DataDir = None,
) -> None:
    """Add a user to a product's team, or change their role."""
    from fermion.cloud import admin

    run_on_store(data_dir, admin.set_member_role, product, email, role)
    typer.echo(f"{email.lower()} is now {role} in product {product}")


@app.command("create-client")
def create_client(
    product: str,
    name: str,
    client_type: Annotated[
        str, typer.Option("--type", help="server (two-legged), installed or web.")
    ] = "server",
    data_dir: DataDir = None,
) -> None:
    """Create a product OAuth client and print its secret (shown this once only)."""
    from fermion.cloud import admin

    client_id, secret = run_on_store(data_dir, admin.create_client, product, name, client_type)
    typer.echo(f"client_id: {client_id}\nclient_secret: {secret}")
    typer.echo("(the secret is not stored; keep it now)", err=True)


@app.command("create-customer")
def create_customer(
    product: str,
    email: str,
    password: Annotated[str | None, typer.Option(help="Omit for a two-legged customer.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a customer of a product."""
    from fermion.cloud import admin

    customer = run_on_store(data_dir, admin.create_customer, product, email, password)
    typer.echo(f"created customer {customer.email} in product {product}")


@app.command("assign-device")
def assign_device(
    device: str,
    product: Annotated[
        str | None, typer.Option(help="Move it into this product (id or slug).")
    ] = None,
    no_product: Annotated[
        bool, typer.Option("--no-product", help="Take it out of any product.")
    ] = False,
    owner: Annotated[str | None, typer.Option(help="Give it to this user (email).")] = None,
    release: Annotated[bool, typer.Option("--release", help="Leave it owned by nobody.")] = False,
    reason: Annotated[
        str | None, typer.Option(help="Why, for the audit trail (e.g. a support ticket).")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Move a device between products and owners, bypassing their consent; audited.

    The way back when the API rightly refuses: a device id squatted by someone's key upload,
    a personal device its owner wants in a product but cannot import. The product's team then
    uploads the device's real key (keys send --product_id).
    """
    from fermion.cloud import admin
    from fermion.errors import FermionError

    if product is not None and no_product:
        raise FermionError("--product and --no-product: give one")
    if owner is not None and release:
        raise FermionError("--owner and --release: give one")
    product_ref: str | admin.Keep | None = None if no_product else (product or admin.KEEP)
    owner_email: str | admin.Keep | None = None if release else (owner or admin.KEEP)

    op = functools.partial(
        admin.assign_device, product_ref=product_ref, owner_email=owner_email, reason=reason
    )
    result = run_on_store(data_dir, op, device)
    before, after = result["before"], result["after"]
    if not result["changed"]:
        typer.echo(f"device {device.lower()}: unchanged ({after})")
        return
    typer.echo(f"device {device.lower()}: {before} -> {after}")
