"""Composition root: everything the cloud's HTTP side needs, built from ``Settings``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from fermion import __version__
from fermion.cloud.api import errors, routers
from fermion.cloud.api.auth import TokenCache
from fermion.cloud.api.middleware import BodyLimit, RequestId
from fermion.cloud.api.ratelimit import LoginLimiter
from fermion.cloud.console import install as install_console
from fermion.cloud.serverkeys import ensure_server_key
from fermion.cloud.settings import Settings
from fermion.cloud.store import Store

if TYPE_CHECKING:
    from fermion.cloud.devices.service import DeviceService


def create_app(settings: Settings, devices: DeviceService | None = None) -> FastAPI:
    """The ASGI app. The database must already be migrated (``fermion serve`` does it first)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.database_url)
        app.state.store = store
        try:
            await ensure_server_key(store)
            if devices is not None:
                await devices.start(store)
            app.state.devices = devices
            yield
        finally:
            if devices is not None:
                await devices.stop()
            await store.close()

    app = FastAPI(
        title="Fermion cloud",
        version=__version__,
        description=(
            "Particle-compatible REST API of a self-hosted device cloud, plus Fermion's own "
            "endpoints for device key history, presented keys, repair, and the audit log."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.login_limiter = LoginLimiter()
    app.state.token_cache = TokenCache()
    errors.install(app)
    for router in routers():
        app.include_router(router)
    from fermion.cloud.devices.http import router as metrics_router

    app.include_router(metrics_router)
    install_console(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestId)
    return app
