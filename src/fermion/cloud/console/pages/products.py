"""The fleets: the product list, a product's fleet health, and every user's own devices.

A user's personal devices (claimed with their account, in no product) are a fleet of their
own, "My devices", shown with the same cards and table as a product's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import ColumnElement

from fermion.cloud.console import apicall
from fermion.cloud.console.fleet import (
    CARD_ORDER,
    Fleet,
    FleetQuery,
    load_fleet,
    personal_fleet,
    product_fleet,
)
from fermion.cloud.console.pages.product_forms import product_of
from fermion.cloud.console.session import ConsoleSession
from fermion.cloud.console.web import (
    PRODUCT_NAV,
    SessionDep,
    area_router,
    permitted,
    redirect,
    render,
)
from fermion.cloud.domain.permissions import Action

router = area_router()
MINE = "/console/mine"


async def _products(request: Request, session: ConsoleSession) -> list[dict[str, Any]]:
    reply = await apicall.call(request, "GET", "/v1/user/products", token=session.token)
    return reply.body.get("products", []) if reply.ok and isinstance(reply.body, dict) else []


@router.get("")
async def home(request: Request, session: SessionDep) -> Response:
    products = await _products(request, session)
    if not request.query_params.get("all"):
        # Straight to the one fleet there is to look at.
        if not products:
            return redirect(MINE)
        if len(products) == 1 and not await _has_personal_devices(request, session):
            return redirect(f"/console/p/{quote(products[0]['slug'])}")
    return render(request, "home.html", session=session, products=products)


async def _has_personal_devices(request: Request, session: ConsoleSession) -> bool:
    data = await _fleet_of(request, _personal(session), FleetQuery())
    return data.total > 0


def _personal(session: ConsoleSession) -> ColumnElement[bool]:
    # A console session is always a user's (session.current_session refuses other tokens).
    return personal_fleet(session.caller.user_id or 0)


async def _fleet_of(request: Request, scope: ColumnElement[bool], query: FleetQuery) -> Fleet:
    async with request.app.state.store.read() as db:
        return await load_fleet(db, scope, query)


def _fleet_page(
    request: Request, session: ConsoleSession, base: str, data: Fleet, query: FleetQuery, **ctx
) -> Response:
    def link(**changes: Any) -> str:
        return base + "?" + urlencode(query.args(**changes))

    return render(
        request,
        "fleet.html",
        session=session,
        section="fleet",
        fleet=data,
        query=query,
        link=link,
        base=base,
        cards=CARD_ORDER,
        **ctx,
    )


def _counts(data: Fleet) -> JSONResponse:
    return JSONResponse(
        {
            "counts": {h.value: n for h, n in data.counts.items()},
            "online": data.online,
            "offline": data.offline,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/mine")
async def my_devices(request: Request, session: SessionDep) -> Response:
    query = FleetQuery.parse(dict(request.query_params))
    data = await _fleet_of(request, _personal(session), query)
    products = await _products(request, session)
    return _fleet_page(request, session, MINE, data, query, mine=True, products=products)


@router.get("/mine/health.json")
async def my_counts(request: Request, session: SessionDep) -> Response:
    return _counts(await _fleet_of(request, _personal(session), FleetQuery()))


@router.get("/p/{product}")
async def fleet(request: Request, product: str, session: SessionDep) -> Response:
    st = await product_of(request, session, product, Action.PRODUCT_VIEW)
    query = FleetQuery.parse(dict(request.query_params))
    data = await _fleet_of(request, product_fleet(st.product.id), query)
    return _fleet_page(
        request,
        session,
        f"/console/p/{quote(st.product.slug)}",
        data,
        query,
        product=st.product,
        role=st.actor,
        can=permitted(st.actor, PRODUCT_NAV),
    )


@router.get("/p/{product}/health.json")
async def fleet_counts(request: Request, product: str, session: SessionDep) -> Response:
    st = await product_of(request, session, product, Action.PRODUCT_VIEW)
    return _counts(await _fleet_of(request, product_fleet(st.product.id), FleetQuery()))
