"""``GET /metrics``: Prometheus text for the device server (every worker) and the process."""

from __future__ import annotations

from fastapi import APIRouter, Response

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics_endpoint() -> Response:
    from fermion.cloud.devices import metrics

    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
