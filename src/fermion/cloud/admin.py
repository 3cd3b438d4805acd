"""Bootstrap operations behind ``fermion admin``: accounts, products, team roles, clients.

Each is one transaction with its audit event. They take a ``Store`` so the CLI, tests and the
demo setup all go through the same code.
"""

from __future__ import annotations

import re
import secrets
from enum import Enum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.actions import ADMIN, clients, customers, team
from fermion.cloud.credentials import hash_password, new_token
from fermion.cloud.domain.permissions import Role
from fermion.cloud.domain.platforms import platform as parse_platform
from fermion.cloud.ownership import change_owner, clear_notes
from fermion.cloud.store import Store
from fermion.cloud.store.audit import record
from fermion.cloud.store.models import (
    ClientType,
    Customer,
    Device,
    Product,
    TeamMembership,
    User,
    utcnow,
)
from fermion.cloud.store.queries import product_by_id_or_slug
from fermion.errors import FermionError, NotFound
from fermion.ids import not_a_device_id, parse_device_id

ADMIN_ACTOR = ADMIN.label
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
MIN_PASSWORD = 8


def check_email(email: str, field: str = "email") -> str:
    cleaned = email.strip().lower()
    if not _EMAIL.match(cleaned) or len(cleaned) > 254:
        raise FermionError(f"{field}: {email!r} is not an email address")
    return cleaned


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise FermionError(f"password: must be at least {MIN_PASSWORD} characters")


async def create_user(store: Store, email: str, password: str | None) -> User:
    email = check_email(email)
    if password is not None:
        check_password(password)
    hashed = hash_password(password) if password is not None else None
    async with store.write() as session:
        if await session.scalar(select(User.id).where(func.lower(User.email) == email)):
            raise FermionError(f"email: a user {email} already exists")
        user = User(email=email, password_hash=hashed)
        session.add(user)
        await session.flush()
        record(session, ADMIN_ACTOR, "user.create", detail={"email": email})
    return user


def _slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")
    return slug[:80] or "product"


async def _product(session: AsyncSession, ref: str) -> Product:
    product = await product_by_id_or_slug(session, ref)
    if product is None:
        raise NotFound(f"product: {ref} not found")
    return product


async def _user(session: AsyncSession, email: str) -> User:
    user = await session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if user is None:
        raise FermionError(f"{email}: no such user (create it with `fermion admin create-user`)")
    return user


async def create_product(
    store: Store, name: str, owner_email: str, platform: str = "photon"
) -> Product:
    if not name.strip():
        raise FermionError("name: must not be empty")
    plat = parse_platform(platform)
    async with store.write() as session:
        owner = await _user(session, check_email(owner_email, "owner"))
        base = _slugify(name)
        slug = base
        while await session.scalar(select(Product.id).where(Product.slug == slug)):
            slug = f"{base}-{secrets.token_hex(2)}"
        product = Product(name=name.strip(), slug=slug, platform_id=plat.id, description="")
        session.add(product)
        await session.flush()
        session.add(TeamMembership(product_id=product.id, user_id=owner.id, role=Role.OWNER))
        record(
            session,
            ADMIN_ACTOR,
            "product.create",
            product_id=product.id,
            detail={"name": product.name, "slug": slug, "platform": plat.name},
        )
        record(
            session,
            ADMIN_ACTOR,
            "team.role",
            product_id=product.id,
            detail={"user": owner.email, "before": None, "after": Role.OWNER.value},
        )
    return product


async def set_member_role(store: Store, product_ref: str, email: str, role: str) -> None:
    """Add ``email`` to the product's team with ``role``, or change the role it has."""
    new_role = Role.parse(role)
    async with store.write() as session:
        product = await _product(session, product_ref)
        user = await _user(session, check_email(email))
        try:
            membership, _ = await team.find_member(session, product, user.email)
        except NotFound:
            await team.add_member(session, product, user, new_role, ADMIN)
        else:
            team.set_role(session, product, membership, user, new_role, ADMIN)


async def create_client(
    store: Store, product_ref: str, name: str, client_type: str = "server"
) -> tuple[str, str]:
    """A product OAuth client; returns (client_id, secret). The secret is not stored."""
    try:
        ctype = ClientType(client_type)
    except ValueError:
        raise FermionError(f"type: {client_type!r} is not one of installed, web, server") from None
    secret = new_token()
    hashed = hash_password(secret)
    async with store.write() as session:
        product = await _product(session, product_ref)
        client = await clients.create_client(
            session, product, name=name, client_type=ctype, secret_hash=hashed, by=ADMIN
        )
        client_id = client.client_id
    return client_id, secret


async def create_customer(
    store: Store, product_ref: str, email: str, password: str | None = None
) -> Customer:
    email = check_email(email)
    hashed = hash_password(password) if password else None
    async with store.write() as session:
        product = await _product(session, product_ref)
        customer = await customers.create_customer(session, product, email, hashed, ADMIN)
    return customer


class Keep(Enum):
    """``assign_device``: leave this (product or owner) as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


async def assign_device(
    store: Store,
    device_ref: str,
    *,
    product_ref: str | Keep | None = KEEP,
    owner_email: str | Keep | None = KEEP,
    reason: str | None = None,
) -> dict[str, Any]:
    """Move a device into a product (``product_ref=None``: out of any) and/or give it to a user
    (``owner_email=None``: to nobody), as the cloud administrator; audited.

    The way back for a rightful party the API must refuse: a device someone squatted by
    uploading a key for its id first, or a personal device wanted in a product whose owner
    cannot import it. What is given changes, the rest is kept. Returns before and after.
    """
    device_id = parse_device_id(device_ref)
    if device_id is None:
        raise FermionError(not_a_device_id("device", device_ref))
    if product_ref is KEEP and owner_email is KEEP:
        raise FermionError("device: give --product, --no-product, --owner or --release")
    async with store.write() as session:
        device = await session.get(Device, device_id, with_for_update=True)
        if device is None:
            raise FermionError(f"device: {device_id} not found")
        before = await _holder(session, device)
        product_id = device.product_id
        if product_ref is None:
            product_id = None
        elif not isinstance(product_ref, Keep):
            product = await _product(session, product_ref)
            if product.platform_id != device.platform_id:
                raise FermionError(
                    f"product: {product.slug} is for platform {product.platform_id}; "
                    f"device {device_id} is platform {device.platform_id}"
                )
            product_id = product.id
        user_id, customer_id = device.owner_user_id, device.owner_customer_id
        if owner_email is None:
            user_id, customer_id = None, None
        elif not isinstance(owner_email, Keep):
            user_id = (await _user(session, check_email(owner_email, "owner"))).id
            customer_id = None
        elif customer_id is not None and product_id != device.product_id:
            raise FermionError(
                f"device: {device_id} is claimed by a customer of product {device.product_id}, "
                "who cannot own it elsewhere; add --release or --owner"
            )
        now = utcnow()
        detail: dict[str, Any] = {}
        if product_id != device.product_id:
            device.product_id = product_id
            device.updated_at = now
            if clear_notes(device):
                detail["notes"] = "cleared"  # they belong to the product or owner it left
        _, released = change_owner(device, user_id=user_id, customer_id=customer_id, now=now)
        detail.update(released)
        await session.flush()
        after = await _holder(session, device)
        if after == before:
            return {"before": before, "after": after, "changed": False}
        record(
            session,
            ADMIN_ACTOR,
            "device.assign",
            device_id=device_id,
            # Named in the product it joins, else the one it left: that team sees the event.
            product_id=product_id if product_id is not None else before["product_id"],
            at=now,
            detail={"before": before, "after": after, "reason": reason, **detail},
        )
    return {"before": before, "after": after, "changed": True}


async def _holder(session: AsyncSession, device: Device) -> dict[str, Any]:
    """Who holds ``device``: its product id and its owner, named as the audit trail does."""
    owner = None
    if device.owner_user_id is not None:
        email = await session.scalar(select(User.email).where(User.id == device.owner_user_id))
        owner = f"user:{email}"
    elif device.owner_customer_id is not None:
        email = await session.scalar(
            select(Customer.email).where(Customer.id == device.owner_customer_id)
        )
        owner = f"customer:{email}"
    return {"product_id": device.product_id, "owner": owner}
