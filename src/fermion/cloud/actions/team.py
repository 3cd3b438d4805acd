"""A product's team: add an account, change a member's role, remove a member."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.actions import By
from fermion.cloud.domain.permissions import Role
from fermion.cloud.store.models import Product, TeamMembership, User
from fermion.errors import FermionError, NotAllowed, NotFound


async def find_member(
    session: AsyncSession, product: Product, email: str
) -> tuple[TeamMembership, User]:
    found = (
        await session.execute(
            select(TeamMembership, User)
            .join(User, User.id == TeamMembership.user_id)
            .where(
                TeamMembership.product_id == product.id,
                func.lower(User.email) == email.strip().lower(),
            )
        )
    ).first()
    if found is None:
        raise NotFound(f"{email!r} is not on the team of product {product.slug}")
    return found[0], found[1]


async def add_member(
    session: AsyncSession, product: Product, user: User, role: Role, by: By
) -> None:
    single_owner(role)
    already = await session.scalar(
        select(TeamMembership.role).where(
            TeamMembership.product_id == product.id, TeamMembership.user_id == user.id
        )
    )
    if already is not None:
        held = Role(already).label
        raise FermionError(f"username: {user.email} is already on the team as {held}")
    session.add(TeamMembership(product_id=product.id, user_id=user.id, role=role.value))
    by.record(
        session,
        "team.invite",
        product_id=product.id,
        detail={"user": user.email, "role": role.value},
    )


def single_owner(role: Role) -> None:
    """Refuse the Owner role: it comes only with the product (Particle: it "cannot be changed")."""
    if role is Role.OWNER:
        raise NotAllowed("role: the Owner role cannot be granted; a product has a single owner")


def _not_owner(membership: TeamMembership, user: User, what: str) -> None:
    if membership.role == Role.OWNER:
        raise NotAllowed(f"{user.email} is the product's owner; the owner cannot be {what}")


def set_role(
    session: AsyncSession,
    product: Product,
    membership: TeamMembership,
    user: User,
    role: Role,
    by: By,
) -> None:
    single_owner(role)
    _not_owner(membership, user, "changed")
    before = membership.role
    if before == role.value:
        return
    membership.role = role.value
    by.record(
        session,
        "team.role",
        product_id=product.id,
        detail={"user": user.email, "before": before, "after": role.value},
    )


async def remove_member(
    session: AsyncSession, product: Product, membership: TeamMembership, user: User, by: By
) -> None:
    _not_owner(membership, user, "removed")
    by.record(
        session,
        "team.remove",
        product_id=product.id,
        detail={"user": user.email, "role": membership.role},
    )
    await session.delete(membership)
