"""A product's team: list, invite with a role, change a role, remove.

Managing the team is Administrator and above (the permission table). On top of that nobody
hands out more than they hold: an Administrator may grant up to Administrator, and the Owner
role is never granted, changed or removed here (Particle: the single owner "cannot be changed
or removed"). Fermion has no e-mail invitations: the invited account must exist and joins at once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.api.auth import CallerDep, StoreDep, request_id
from fermion.cloud.api.errors import bad_request, forbidden, not_found
from fermion.cloud.api.fields import body_fields, text_field
from fermion.cloud.api.product_access import Standing, standing
from fermion.cloud.domain.permissions import ROLE_RANK, Action, Role
from fermion.cloud.store.audit import record
from fermion.cloud.store.models import TeamMembership, User
from fermion.errors import FermionError

router = APIRouter(tags=["team"])

# Particle's invite without a role (particle-api-js sends none) gets the least privilege here.
DEFAULT_ROLE = Role.VIEW_ONLY
_ROLES = "Administrator, Developer, Support, View-only"

_INVITE_BODY = {
    "type": "object",
    "required": ["username"],
    "properties": {
        "username": {"type": "string", "maxLength": 254},
        "role": {"type": "string", "enum": ["Administrator", "Developer", "Support", "View-only"]},
    },
}
_ROLE_BODY = {
    "type": "object",
    "required": ["role"],
    "properties": {"role": _INVITE_BODY["properties"]["role"]},  # type: ignore[index]
}


def _doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
        }
    }


def member_json(user: User, role: str) -> dict[str, Any]:
    r = Role(role)
    return {
        "_id": str(user.id),
        "username": user.email,
        "role": {"id": r.value, "name": r.label},
        "is_owner": r is Role.OWNER,
    }


def _grantable(st: Standing, raw: str | None) -> Role:
    """The role asked for, if the caller may hand it out."""
    if raw is None:
        return DEFAULT_ROLE
    try:
        role = Role.parse(raw)
    except FermionError:
        raise bad_request(f"role: {raw!r} is not one of {_ROLES}") from None
    if role is Role.OWNER:
        raise forbidden("role: the Owner role cannot be granted; a product has a single owner")
    if not isinstance(st.actor, Role) or ROLE_RANK[role] > ROLE_RANK[st.actor]:
        held = st.actor.label if isinstance(st.actor, Role) else "none"
        raise forbidden(f"role: granting {role.label} needs that role or above; yours is {held}")
    return role


async def _member(
    session: AsyncSession, st: Standing, username: str
) -> tuple[TeamMembership, User]:
    found = (
        await session.execute(
            select(TeamMembership, User)
            .join(User, User.id == TeamMembership.user_id)
            .where(
                TeamMembership.product_id == st.product.id,
                func.lower(User.email) == username.strip().lower(),
            )
        )
    ).first()
    if found is None:
        raise not_found(f"{username!r} is not on the team of product {st.product.slug}")
    return found[0], found[1]


def _not_owner(membership: TeamMembership, user: User, what: str) -> None:
    if membership.role == Role.OWNER:
        raise forbidden(f"{user.email} is the product's owner; the owner cannot be {what}")


@router.get("/v1/products/{product}/team", summary="The product's team")
async def list_team(product: str, caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    async with store.read() as session:
        st = await standing(session, caller, product, Action.TEAM_VIEW)
        rows = (
            await session.execute(
                select(User, TeamMembership.role)
                .join(TeamMembership, TeamMembership.user_id == User.id)
                .where(TeamMembership.product_id == st.product.id)
                .order_by(TeamMembership.id)
            )
        ).all()
    return {"ok": True, "team": [member_json(user, role) for user, role in rows]}


@router.post(
    "/v1/products/{product}/team",
    summary="Add an existing account to the team with a role",
    openapi_extra=_doc(_INVITE_BODY),
)
async def invite(
    product: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    fields = await body_fields(request)
    username = text_field(fields, "username", required=True, max_len=254)
    assert username is not None
    raw_role = text_field(fields, "role", max_len=40)
    async with store.write() as session:
        st = await standing(session, caller, product, Action.TEAM_MANAGE)
        role = _grantable(st, raw_role)
        user = await session.scalar(
            select(User).where(func.lower(User.email) == username.strip().lower())
        )
        if user is None:
            raise not_found(f"username: no account {username!r}; it must sign up first")
        already = await session.scalar(
            select(TeamMembership.role).where(
                TeamMembership.product_id == st.product.id, TeamMembership.user_id == user.id
            )
        )
        if already is not None:
            raise bad_request(
                f"username: {user.email} is already on the team as {Role(already).label}"
            )
        session.add(TeamMembership(product_id=st.product.id, user_id=user.id, role=role.value))
        record(
            session,
            st.label,
            "team.invite",
            product_id=st.product.id,
            request_id=request_id(request),
            detail={"user": user.email, "role": role.value},
        )
    return {"ok": True, "invited": {"username": user.email, "role": role.label}}


@router.post(
    "/v1/products/{product}/team/{username}",
    summary="Change a team member's role",
    openapi_extra=_doc(_ROLE_BODY),
)
async def change_role(
    product: str, username: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    fields = await body_fields(request)
    raw_role = text_field(fields, "role", required=True, max_len=40)
    async with store.write() as session:
        st = await standing(session, caller, product, Action.TEAM_MANAGE)
        role = _grantable(st, raw_role)
        membership, user = await _member(session, st, username)
        _not_owner(membership, user, "changed")
        before = membership.role
        if before != role.value:
            membership.role = role.value
            record(
                session,
                st.label,
                "team.role",
                product_id=st.product.id,
                request_id=request_id(request),
                detail={"user": user.email, "before": before, "after": role.value},
            )
    return {"ok": True, "updated": member_json(user, role.value)}


@router.delete("/v1/products/{product}/team/{username}", summary="Remove a team member")
async def remove_member(
    product: str, username: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    async with store.write() as session:
        st = await standing(session, caller, product, Action.TEAM_MANAGE)
        membership, user = await _member(session, st, username)
        _not_owner(membership, user, "removed")
        record(
            session,
            st.label,
            "team.remove",
            product_id=st.product.id,
            request_id=request_id(request),
            detail={"user": user.email, "role": membership.role},
        )
        await session.delete(membership)
    return {"ok": True}
