"""Composition root: everything the cloud's HTTP side needs, built from ``Settings``."""

from __future__ import annotations

import ctypes
import hmac
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request

from fermion import __version__
from fermion.cloud import apidocs, secretbox
from fermion.cloud.api import errors, routers
from fermion.cloud.api.auth import TokenCache
from fermion.cloud.api.errors import forbidden, unauthorized
from fermion.cloud.api.fields import checked_parameters
from fermion.cloud.api.middleware import BodyLimit, RequestId
from fermion.cloud.api.ratelimit import LoginLimiter
from fermion.cloud.console import install as install_console
from fermion.cloud.serverkeys import ensure_server_key
from fermion.cloud.settings import Settings
from fermion.cloud.store import Store
from fermion.cloud.store.models import utcnow
from fermion.cloud.tokens import Clock
from fermion.loopback import is_loopback

if TYPE_CHECKING:
    from fermion.cloud.devices.service import DeviceService


# How ``fermion serve --workers N`` tells each worker process what to serve (JSON).
WORKER_ENV = "FERMION_SERVE_WORKER"


@dataclass(frozen=True)
class _Address:
    host: str
    port: int


@dataclass
class DevicesElsewhere:
    """The device server as an API worker process sees it: running in the ``fermion serve``
    parent process, so only its address is known here (and no in-memory device activity)."""

    config: _Address
    running: bool = True
    server: None = field(default=None)

    @property
    def port(self) -> int:
        return self.config.port

    async def start(self, store: Store) -> None:
        return None

    async def stop(self) -> None:
        return None


def worker_app() -> FastAPI:
    """The app of one ``fermion serve --workers N`` process (uvicorn calls it in each)."""
    spec: dict[str, Any] = json.loads(os.environ[WORKER_ENV])
    settings = Settings(**{**spec["settings"], "data_dir": Path(spec["settings"]["data_dir"])})
    where = spec["devices"]
    _end_with_parent()
    return create_app(settings, DevicesElsewhere(_Address(**where)) if where else None)


def _end_with_parent() -> None:
    """Ask Linux for SIGTERM when the supervisor dies (even by SIGKILL): no orphan keeps
    serving the shared socket on its own."""
    PR_SET_PDEATHSIG = 1
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def metrics_allowed(request: Request) -> None:
    """``/metrics`` tells device counts and activity: with ``FERMION_METRICS_TOKEN`` set it
    needs that bearer token from everyone (a local reverse proxy makes every caller look like
    loopback); without one it is open on loopback only, unless ``--metrics-public``."""
    settings: Settings = request.app.state.settings
    if settings.metrics_token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), settings.metrics_token.encode()
        ):
            raise unauthorized("metrics: needs the bearer token FERMION_METRICS_TOKEN names")
        return
    client = request.client.host if request.client else ""
    if settings.metrics_public or is_loopback(client):
        return
    raise forbidden(
        "metrics: open on loopback only; set FERMION_METRICS_TOKEN (or serve --metrics-public) "
        "to allow other addresses"
    )


def create_app(
    settings: Settings,
    devices: DeviceService | DevicesElsewhere | None = None,
    clock: Clock = utcnow,
) -> FastAPI:
    """The ASGI app. The database must already be migrated (``fermion serve`` does it first).
    ``clock``: the time tokens are minted with and judged by (a test's, to skip ahead)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        secretbox.use_key_file(settings.secret_key_file)
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
        # /docs with Swagger UI's files from the package, not a CDN (apidocs); ReDoc, which
        # only loads from a CDN, is off rather than a blank page.
        docs_url=None,
        redoc_url=None,
        # Before any route work, on every route (new ones too): see fields.checked_parameters.
        dependencies=[Depends(checked_parameters)],
    )
    app.state.settings = settings
    app.state.login_limiter = LoginLimiter()
    app.state.token_cache = TokenCache()
    app.state.clock = clock
    errors.install(app)
    for router in routers():
        app.include_router(router)
    from fermion.cloud.devices.http import router as metrics_router

    app.include_router(metrics_router, dependencies=[Depends(metrics_allowed)])
    apidocs.install(app)
    install_console(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestId)
    return app
