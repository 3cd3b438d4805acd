"""A product's team: who is on it, with which role; invite, change a role, remove."""

from __future__ import annotations

from fastapi import Request, Response

from fermion.cloud.console.pages.product_forms import (
    delete_item,
    product_action,
    product_page,
    section_path,
)
from fermion.cloud.console.web import SessionDep, area_router, form_of, text
from fermion.cloud.domain.permissions import Action, Role

router = area_router()
ROLE_CHOICES = [r for r in Role if r is not Role.OWNER]


_team = product_page(router, Action.TEAM_VIEW, "team", roles=ROLE_CHOICES)


@router.post("/p/{product}/team/invite")
async def team_invite(request: Request, product: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    data = {"username": text(form.get("username"), 254), "role": text(form.get("role"), 40)}
    path = section_path(product, "team")
    return await product_action(
        request, session, product, "POST", path, "invited", _team, data, "invite"
    )


@router.post("/p/{product}/team/role")
async def team_role(request: Request, product: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    username = text(form.get("username"), 254)
    path = section_path(product, "team", username)
    data = {"role": text(form.get("role"), 40)}
    return await product_action(request, session, product, "POST", path, "role", _team, data)


@router.post("/p/{product}/team/remove")
async def team_remove(request: Request, product: str, session: SessionDep) -> Response:
    return await delete_item(
        request, session, product, _team, "team", "username", 254, "member_removed"
    )
