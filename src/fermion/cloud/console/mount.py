"""Mounting the console on the cloud's app: each area's pages, its static files, the icon."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from fermion.cloud.console.pages import AREAS
from fermion.cloud.console.web import HERE

FAVICON = "/console/static/favicon.svg"


def install(app: FastAPI) -> None:
    """Pages under /console, and / sends people there."""
    for area in AREAS:
        app.include_router(area.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console", status_code=307)

    # Browsers ask for /favicon.ico on any page that names no icon (the API's JSON, /docs):
    # answer with the console's, not a 404 in the log.
    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> RedirectResponse:
        return RedirectResponse(FAVICON, status_code=308)
