"""What the pages of a product's settings share (team, customers, OAuth clients): each shows the
API's own listing, and each form is the API's call, its refusal shown next to the form."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse

from fermion.cloud.api.product_access import Standing, load_product
from fermion.cloud.console import apicall
from fermion.cloud.console.session import ConsoleSession, LoginRequired
from fermion.cloud.console.web import PRODUCT_NAV, error_page, permitted, redirect, render
from fermion.cloud.domain.permissions import Action


async def product_of(
    request: Request, session: ConsoleSession, ref: str, action: Action
) -> Standing:
    """The product ``ref`` names, with the caller's standing in it, checked against ``action``."""
    async with request.app.state.store.read() as db:
        return await load_product(db, session.caller, ref, action)


async def product_page(
    request: Request,
    session: ConsoleSession,
    product: str,
    action: Action,
    section: str,
    api_path: str,
    template: str,
    status: int = 200,
    **ctx: Any,
) -> HTMLResponse:
    st = await product_of(request, session, product, action)
    reply = await apicall.call(
        request, "GET", api_path.format(p=quote(st.product.slug)), token=session.token
    )
    if not reply.ok:
        return error_page(request, reply.status, reply.message)
    return render(
        request,
        template,
        status=status,
        session=session,
        product=st.product,
        role=st.actor,
        can=permitted(st.actor, PRODUCT_NAV),
        section=section,
        data=reply.body,
        **ctx,
    )


async def product_action(
    request: Request,
    session: ConsoleSession,
    product: str,
    method: str,
    api_path: str,
    done: str,
    page: Callable[..., Awaitable[HTMLResponse]],
    data: dict[str, Any] | None = None,
    field: str | None = None,
) -> Response:
    reply = await apicall.call(request, method, api_path, token=session.token, data=data)
    if reply.ok:
        return redirect(f"{request.url.path.rsplit('/', 1)[0]}?done={done}")
    if reply.status == 401:
        raise LoginRequired(request.url.path.rsplit("/", 1)[0])
    errors = {field or "form": reply.message}
    return await page(request, session, product, status=reply.status, errors=errors)
