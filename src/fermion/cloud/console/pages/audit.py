"""A product's audit trail, filtered as the API filters it, a hundred events a page."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import Request, Response

from fermion.cloud.console import apicall
from fermion.cloud.console.pages.product_forms import product_of
from fermion.cloud.console.web import PRODUCT_NAV, SessionDep, area_router, permitted, render
from fermion.cloud.domain.permissions import Action

router = area_router()
_AUDIT_FILTERS = ("device_id", "actor", "action", "since", "until", "before_id")


@router.get("/p/{product}/audit")
async def audit(request: Request, product: str, session: SessionDep) -> Response:
    st = await product_of(request, session, product, Action.AUDIT_VIEW)
    filters = {k: request.query_params.get(k, "").strip()[:300] for k in _AUDIT_FILTERS}
    params = {k: v for k, v in filters.items() if v}
    params["product_id"] = str(st.product.id)
    params["limit"] = "100"
    reply = await apicall.call(request, "GET", "/v1/audit", token=session.token, params=params)
    events = reply.body.get("events", []) if reply.ok and isinstance(reply.body, dict) else []
    older = None
    if len(events) == 100:
        older_args = {k: v for k, v in filters.items() if v and k != "before_id"}
        older_args["before_id"] = str(events[-1]["id"])
        older = f"/console/p/{quote(st.product.slug)}/audit?{urlencode(older_args)}"
    return render(
        request,
        "audit.html",
        status=200 if reply.ok else reply.status,
        session=session,
        product=st.product,
        role=st.actor,
        can=permitted(st.actor, PRODUCT_NAV),
        section="audit",
        events=events,
        filters=filters,
        error=None if reply.ok else reply.message,
        older=older,
    )
