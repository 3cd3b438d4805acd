"""A product's customers: list, create (with a password or two-legged), delete."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from fermion.cloud.console.pages.product_forms import (
    delete_item,
    product_action,
    product_page,
    section_path,
)
from fermion.cloud.console.web import SessionDep, area_router, form_of, text
from fermion.cloud.domain.permissions import Action

router = area_router()


_customers = product_page(router, Action.CUSTOMER_VIEW, "customers")


@router.post("/p/{product}/customers/create")
async def customer_create(request: Request, product: str, session: SessionDep) -> Response:
    form = await form_of(request, session)
    data: dict[str, Any] = {"email": text(form.get("email"), 254)}
    password = text(form.get("password"))
    if password:
        data["password"] = password
    else:
        data["no_password"] = "true"
    path = section_path(product, "customers")
    return await product_action(
        request, session, product, "POST", path, "customer_created", _customers, data, "create"
    )


@router.post("/p/{product}/customers/delete")
async def customer_delete(request: Request, product: str, session: SessionDep) -> Response:
    return await delete_item(
        request, session, product, _customers, "customers", "email", 254, "customer_deleted"
    )
