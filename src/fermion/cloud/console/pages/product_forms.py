"""What the pages of a product's settings share (team, customers, OAuth clients): each shows the
API's own listing, and each form is the API's call, its refusal shown next to the form."""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from fermion.cloud.api.product_access import Standing, load_product
from fermion.cloud.console import apicall
from fermion.cloud.console.session import ConsoleSession
from fermion.cloud.console.web import (
    PRODUCT_NAV,
    SessionDep,
    error_page,
    form_of,
    permitted,
    redirect,
    render,
    text,
)
from fermion.cloud.domain.permissions import Action


async def product_of(
    request: Request, session: ConsoleSession, ref: str, action: Action
) -> Standing:
    """The product ``ref`` names, with the caller's standing in it, checked against ``action``."""
    async with request.app.state.store.read() as db:
        return await load_product(db, session.caller, ref, action)


def section_path(product: str, section: str, item: str | None = None) -> str:
    """The API's path of a product's ``section`` (``team``, ``customers``, ``clients``), or of
    one ``item`` in it: a username, an email or a client id, any of which may hold a ``/``."""
    path = f"/v1/products/{quote(product)}/{section}"
    return path if item is None else f"{path}/{quote(item, safe='')}"


class ProductPage(Protocol):
    """One settings page, drawn again after a form: with the API's refusal, or what it made."""

    async def __call__(
        self,
        request: Request,
        session: ConsoleSession,
        product: str,
        status: int = 200,
        errors: dict[str, str] | None = None,
        **ctx: Any,
    ) -> HTMLResponse: ...


def product_page(router: APIRouter, action: Action, section: str, **fixed: Any) -> ProductPage:
    """The page of ``section`` (``team``, ``customers``, ``clients``), served at
    ``/console/p/{product}/<section>`` on ``router``: ``<section>.html`` over the API's own listing
    at ``/v1/products/{slug}/<section>``, for a caller whose standing allows ``action``. ``fixed``
    is the page's own context; the returned page is what its forms draw again."""

    async def page(
        request: Request,
        session: ConsoleSession,
        product: str,
        status: int = 200,
        errors: dict[str, str] | None = None,
        **ctx: Any,
    ) -> HTMLResponse:
        st = await product_of(request, session, product, action)
        listing = section_path(st.product.slug, section)
        reply = await apicall.call(request, "GET", listing, token=session.token)
        if not reply.ok:
            return error_page(request, reply.status, reply.message)
        return render(
            request,
            f"{section}.html",
            status=status,
            session=session,
            product=st.product,
            role=st.actor,
            can=permitted(st.actor, PRODUCT_NAV),
            section=section,
            data=reply.body,
            errors=errors or {},
            **fixed,
            **ctx,
        )

    async def get(request: Request, product: str, session: SessionDep) -> Response:
        return await page(request, session, product)

    router.add_api_route(f"/p/{{product}}/{section}", get, methods=["GET"], name=section)
    return page


async def product_action(
    request: Request,
    session: ConsoleSession,
    product: str,
    method: str,
    api_path: str,
    done: str,
    page: ProductPage,
    data: dict[str, Any] | None = None,
    field: str | None = None,
) -> Response:
    back = request.url.path.rsplit("/", 1)[0]  # the form's own page
    reply = await apicall.form_call(request, session, method, api_path, back=back, data=data)
    if reply.ok:
        return redirect(f"{back}?done={done}")
    errors = {field or "form": reply.message}
    return await page(request, session, product, status=reply.status, errors=errors)


async def delete_item(
    request: Request,
    session: ConsoleSession,
    product: str,
    page: ProductPage,
    section: str,
    field: str,
    limit: int,
    done: str,
) -> Response:
    """A form that deletes one item of ``section``: the one its ``field`` names."""
    form = await form_of(request, session)
    path = section_path(product, section, text(form.get(field), limit))
    return await product_action(request, session, product, "DELETE", path, done, page)
