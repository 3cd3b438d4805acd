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

from fermion.cloud.actions import team
from fermion.cloud.api.auth import CallerDep, StoreDep, action_by
from fermion.cloud.api.errors import bad_request, forbidden, not_found
from fermion.cloud.api.fields import body_doc, body_fields, text_field
from fermion.cloud.api.product_access import Standing, load_product
from fermion.cloud.domain.permissions import ROLE_RANK, Action, Role
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
    team.single_owner(role)
    if not isinstance(st.actor, Role) or ROLE_RANK[role] > ROLE_RANK[st.actor]:
        held = st.actor.label if isinstance(st.actor, Role) else "none"
        raise forbidden(f"role: granting {role.label} needs that role or above; yours is {held}")
    return role


@router.get("/v1/products/{product}/team", summary="The product's team")
async def list_team(product: str, caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    async with store.read() as session:
        st = await load_product(session, caller, product, Action.TEAM_VIEW)
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
    openapi_extra=body_doc(_INVITE_BODY),
)
async def invite(
    product: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    fields = await body_fields(request)
    username = text_field(fields, "username", required=True, max_len=254)
    assert username is not None
    raw_role = text_field(fields, "role", max_len=40)
    async with store.write() as session:
        st = await load_product(session, caller, product, Action.TEAM_MANAGE)
        role = _grantable(st, raw_role)
        user = await session.scalar(
            select(User).where(func.lower(User.email) == username.strip().lower())
        )
        if user is None:
            raise not_found(f"username: no account {username!r}; it must sign up first")
        await team.add_member(session, st.product, user, role, action_by(st, request))
    return {"ok": True, "invited": {"username": user.email, "role": role.label}}


@router.post(
    "/v1/products/{product}/team/{username}",
    summary="Change a team member's role",
    openapi_extra=body_doc(_ROLE_BODY),
)
async def change_role(
    product: str, username: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    fields = await body_fields(request)
    raw_role = text_field(fields, "role", required=True, max_len=40)
    async with store.write() as session:
        st = await load_product(session, caller, product, Action.TEAM_MANAGE)
        role = _grantable(st, raw_role)
        membership, user = await team.find_member(session, st.product, username)
        team.set_role(session, st.product, membership, user, role, action_by(st, request))
    return {"ok": True, "updated": member_json(user, role.value)}


@router.delete("/v1/products/{product}/team/{username}", summary="Remove a team member")
async def remove_member(
    product: str, username: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    async with store.write() as session:
        st = await load_product(session, caller, product, Action.TEAM_MANAGE)
        membership, user = await team.find_member(session, st.product, username)
        await team.remove_member(session, st.product, membership, user, action_by(st, request))
    return {"ok": True}
