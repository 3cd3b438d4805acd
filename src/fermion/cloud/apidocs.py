"""The API's browsable reference at /docs, served with its own assets.

FastAPI's default /docs page loads Swagger UI from a CDN, so on a machine without internet (an
air-gapped site, common for a self-hosted cloud) it stays blank. The page here is FastAPI's
own (``get_swagger_ui_html``, as its docs on self-hosting the docs' JavaScript and CSS show),
with Swagger UI's files taken from the ``swagger-ui-py`` package (Apache-2.0, its LICENSE
beside them), which ships Swagger UI 5: the first to read OpenAPI 3.1, which FastAPI writes.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS = "/docs"
ASSETS = "/docs/assets"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def swagger_ui_dir() -> Path:
    """Where the installed package keeps Swagger UI's dist files."""
    return Path(str(files("swagger_ui") / "static"))


def install(app: FastAPI) -> None:
    """Serve /docs from the package (the app is made with ``docs_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_dir()), name="docs-assets")

    @app.get(DOCS, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} · API reference",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=OAUTH2_REDIRECT,
        )

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
