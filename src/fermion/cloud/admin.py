"""Bootstrap operations behind ``fermion admin``: accounts, products, team roles, clients.

Each is one transaction with its audit event. They take a ``Store`` so the CLI, tests and the
demo setup all go through the same code.
"""

from __future__ import annotations

import re
import secrets

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.credentials import hash_password, new_token
from fermion.cloud.domain.permissions import Role
from fermion.cloud.domain.platforms import platform as parse_platform
from fermion.cloud.store import Store
from fermion.cloud.store.audit import record
from fermion.cloud.store.models import (
    ClientType,
    Customer,
    OAuthClient,
    Product,
    TeamMembership,
    User,
)
from fermion.cloud.store.queries import product_by_id_or_slug
from fermion.errors import FermionError

ADMIN_ACTOR = "admin:cli"
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
    new_role = Role.parse(role)
    async with store.write() as session:
        product = await product_by_id_or_slug(session, product_ref)
        if product is None:
            raise FermionError(f"product: {product_ref} not found")
        user = await _user(session, check_email(email))
        member = await session.scalar(
            select(TeamMembership).where(
                TeamMembership.product_id == product.id, TeamMembership.user_id == user.id
            )
        )
        before = member.role if member else None
        if before == Role.OWNER and new_role is not Role.OWNER:
            raise FermionError(f"{email}: is the product's owner; the owner's role cannot change")
        if member is None:
            session.add(TeamMembership(product_id=product.id, user_id=user.id, role=new_role))
        else:
            member.role = new_role
        record(
            session,
            ADMIN_ACTOR,
            "team.role",
            product_id=product.id,
            detail={"user": user.email, "before": before, "after": new_role.value},
        )


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
        product = await product_by_id_or_slug(session, product_ref)
        if product is None:
            raise FermionError(f"product: {product_ref} not found")
        client_id = f"{_slugify(name)[:40]}-{secrets.token_hex(3)}"
        session.add(
            OAuthClient(
                client_id=client_id,
                product_id=product.id,
                name=name,
                type=ctype.value,
                secret_hash=hashed,
            )
        )
        record(
            session,
            ADMIN_ACTOR,
            "client.create",
            product_id=product.id,
            detail={"client_id": client_id, "type": ctype.value},
        )
    return client_id, secret


async def create_customer(
    store: Store, product_ref: str, email: str, password: str | None = None
) -> Customer:
    email = check_email(email)
    hashed = hash_password(password) if password else None
    try:
        async with store.write() as session:
            product = await product_by_id_or_slug(session, product_ref)
            if product is None:
                raise FermionError(f"product: {product_ref} not found")
            customer = Customer(product_id=product.id, email=email, password_hash=hashed)
            session.add(customer)
            await session.flush()
            record(
                session,
                ADMIN_ACTOR,
                "customer.create",
                product_id=product.id,
                detail={"email": email, "no_password": password is None},
            )
    except IntegrityError:
        raise FermionError(f"email: customer {email} already exists in {product_ref}") from None
    return customer
