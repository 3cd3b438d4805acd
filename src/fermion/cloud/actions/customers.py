"""A product's customers: create, set a password, delete (revoking its tokens and releasing its
devices, which change hands: ``owner_since`` moves on and their notes go, as ``ownership`` says)."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.actions import By
from fermion.cloud.store.models import AccessToken, Customer, Device, Product, utcnow
from fermion.cloud.tokens import revoke
from fermion.errors import FermionError, NotFound


async def find_customer(session: AsyncSession, product: Product, email: str) -> Customer:
    customer = await session.scalar(
        select(Customer).where(
            Customer.product_id == product.id,
            func.lower(Customer.email) == email.strip().lower(),
        )
    )
    if customer is None:
        raise NotFound(f"customer {email!r} not found in product {product.slug}")
    return customer


async def create_customer(
    session: AsyncSession, product: Product, email: str, password_hash: str | None, by: By
) -> Customer:
    """``password_hash=None``: a two-legged (shadow) customer, reached only through its client."""
    exists = await session.scalar(
        select(Customer.id).where(
            Customer.product_id == product.id, func.lower(Customer.email) == email
        )
    )
    if exists is not None:
        raise FermionError(f"email: customer {email!r} already exists in product {product.slug}")
    customer = Customer(product_id=product.id, email=email, password_hash=password_hash)
    session.add(customer)
    await session.flush()
    by.record(
        session,
        "customer.create",
        product_id=product.id,
        detail={"email": email, "no_password": password_hash is None},
    )
    return customer


def set_password(
    session: AsyncSession, product: Product, customer: Customer, password_hash: str, by: By
) -> None:
    customer.password_hash = password_hash
    by.record(
        session,
        "customer.update",
        product_id=product.id,
        detail={"email": customer.email, "changed": ["password"]},
    )


async def delete_customer(
    session: AsyncSession, product: Product, customer: Customer, by: By
) -> list[str]:
    """Delete the customer; returns the ids of the devices it released."""
    await revoke(
        session,
        AccessToken.customer_id == customer.id,
        actor=by.label,
        request_id=by.request_id,
        product_id=product.id,
    )
    owned = (
        await session.execute(
            select(Device.id, Device.notes)
            .where(Device.owner_customer_id == customer.id)
            .order_by(Device.id)
            .with_for_update()
        )
    ).all()
    released = [device_id for device_id, _ in owned]
    now = utcnow()
    if released:
        await session.execute(
            update(Device)
            .where(Device.id.in_(released))
            .values(owner_customer_id=None, owner_since=now, notes=None, updated_at=now)
        )
    for device_id, notes in owned:
        by.record(
            session,
            "device.unclaim",
            device_id=device_id,
            product_id=product.id,
            at=now,
            detail={
                "owner": f"customer:{customer.email}",
                "reason": "customer deleted",
                **({"notes": "cleared"} if notes else {}),
            },
        )
    by.record(
        session,
        "customer.delete",
        product_id=product.id,
        detail={"email": customer.email, "released_devices": released},
    )
    await session.delete(customer)
    return released
