"""A product's OAuth client authenticating itself: its credentials from a request (HTTP Basic,
or ``client_id``/``client_secret`` in the body), and the client they prove.

Used by ``POST /oauth/token`` and by the routes a product client may call with its own
credentials instead of a token (customer creation).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.api.errors import ApiError
from fermion.cloud.api.fields import text_field
from fermion.cloud.credentials import verify_password_async
from fermion.cloud.store.models import OAuthClient


def client_credentials(request: Request, fields: dict[str, Any]) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(
                400, "Authorization: malformed Basic credentials", code="invalid_client"
            ) from None
        client_id, _, secret = decoded.partition(":")
        return client_id or None, secret
    return text_field(fields, "client_id", max_len=200), text_field(
        fields, "client_secret", max_len=500
    )


async def product_client(
    session: AsyncSession, client_id: str | None, secret: str | None
) -> OAuthClient | None:
    """The client whose id and secret these are, or None; an unknown id costs a verification
    all the same.

    ``session`` must be a read session: it is closed (its connection given back to the pool)
    before the argon2 wait, and the caller's next statement on it takes a fresh connection.
    The client comes back detached, with its columns loaded.
    """
    if not client_id:
        return None
    client = await session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    # Never hold a pooled connection while waiting for argon2: a flood of logins would drain
    # the pool for every other request (issue #10, item 3).
    await session.close()
    ok = await verify_password_async(client.secret_hash if client else None, secret or "")
    return client if ok and client is not None else None
