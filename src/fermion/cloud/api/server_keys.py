"""``GET /v1/server-keys`` (Fermion): the cloud's public keys, for ``keys server``."""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Request

from fermion.cloud.api.auth import StoreDep
from fermion.cloud.api.views import spki_pem
from fermion.cloud.serverkeys import current_keys
from fermion.keys import Algorithm, fingerprint_der

router = APIRouter(tags=["fermion"])


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def device_server_address(request: Request) -> dict[str, Any] | None:
    """Where devices should dial the device server, or None when it is not running.

    The advertised host (``--device-advertise-host`` / ``FERMION_DEVICE_HOST``) wins; else the
    bind address, unless it is a wildcard, which no device can dial: then the host the client
    used to reach this API.
    """
    devices = getattr(request.app.state, "devices", None)
    if devices is None or not devices.running:
        return None
    settings = request.app.state.settings
    host = settings.device_host or devices.config.host
    if _is_wildcard(host):
        host = request.url.hostname or host
    # The device server speaks TCP only (RSA keys); UDP devices have no port to dial here.
    return {"host": host, "tcp_port": devices.port}


@router.get(
    "/v1/server-keys",
    summary="The cloud's server public keys and device server address (no token needed)",
    description=(
        "Current keys first, then previous ones still accepted during a rotation. Devices "
        "need the current key of their transport in their server-key slot, and the address "
        "beside it (`address`: host and port, null when no device server speaks that "
        "transport) in their server-address slot. `device_server` is that address for the "
        "TCP device server, or null when it is off."
    ),
)
async def server_keys(request: Request, store: StoreDep) -> dict[str, Any]:
    async with store.read() as session:
        keys = await current_keys(session)
    device_server = device_server_address(request)
    tcp_address = (
        {"host": device_server["host"], "port": device_server["tcp_port"]}
        if device_server
        else None
    )
    return {
        "ok": True,
        "device_server": device_server,
        "keys": [
            {
                "algorithm": Algorithm(k.algorithm).api_name,
                "state": k.state,
                "fingerprint": fingerprint_der(k.public_der).sha256,
                "public_key": spki_pem(k.public_der),
                "address": tcp_address if Algorithm(k.algorithm) is Algorithm.RSA else None,
                "created_at": k.created_at.isoformat().replace("+00:00", "Z"),
            }
            for k in keys
        ],
    }
