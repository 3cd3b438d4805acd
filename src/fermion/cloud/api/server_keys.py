"""``GET /v1/server-keys`` (Fermion): the cloud's public keys, for ``keys server``."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter

from fermion.cloud.api.auth import StoreDep
from fermion.cloud.serverkeys import current_keys
from fermion.keys import Algorithm, fingerprint_der, public_key_pem
from fermion.keys import load_key as _load

router = APIRouter(tags=["fermion"])


@functools.lru_cache(maxsize=16)
def _pem(der: bytes) -> str:
    return public_key_pem(_load(der, "server key").public).decode()


@router.get(
    "/v1/server-keys",
    summary="The cloud's server public keys (no token needed)",
    description=(
        "Current keys first, then previous ones still accepted during a rotation. Devices "
        "need the current key of their transport in their server-key slot."
    ),
)
async def server_keys(store: StoreDep) -> dict[str, Any]:
    async with store.read() as session:
        keys = await current_keys(session)
    return {
        "ok": True,
        "keys": [
            {
                "algorithm": Algorithm(k.algorithm).api_name,
                "state": k.state,
                "fingerprint": fingerprint_der(k.public_der).sha256,
                "public_key": _pem(k.public_der),
                "created_at": k.created_at.isoformat().replace("+00:00", "Z"),
            }
            for k in keys
        ],
    }
