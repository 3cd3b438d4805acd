"""Claim codes: claiming a device by something only the person setting it up holds.

Claiming by id alone proves nothing (ids are printed on boxes and logged); a claim code is
issued to an account (``POST /v1/device_claims``) and handed to the device during setup, which
stores it in its DCT (offset 1762, 63 bytes) and presents it to the cloud after its handshake
(the ``spark/device/claim/code`` event). The device then belongs to the code's owner. Codes are
stored as SHA-256, used once, and expire after ``CLAIM_CODE_TTL``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.actions import By, devices
from fermion.cloud.credentials import hash_token
from fermion.cloud.store.audit import record
from fermion.cloud.store.models import ClaimCode, Customer, Device, User, utcnow

CLAIM_CODE_TTL = timedelta(hours=1)
CLAIM_CODE_MAX = 63  # the DCT's claim_code field


def new_claim_code() -> str:
    # 48 URL-safe characters (288 bits): fits the DCT's 63 bytes with room to spare.
    return secrets.token_urlsafe(36)


async def issue(
    session: AsyncSession,
    *,
    actor: str,
    user_id: int | None = None,
    customer_id: int | None = None,
    product_id: int | None = None,
    request_id: str | None = None,
) -> str:
    """A new claim code for a user, or for a customer of ``product_id``; audited (not the code)."""
    assert (user_id is None) != (customer_id is None)
    code = new_claim_code()
    now = utcnow()
    session.add(
        ClaimCode(
            code_hash=hash_token(code),
            user_id=user_id,
            customer_id=customer_id,
            product_id=product_id,
            created_by=actor,
            created_at=now,
            expires_at=now + CLAIM_CODE_TTL,
        )
    )
    record(
        session,
        actor,
        "claim_code.create",
        product_id=product_id,
        request_id=request_id,
        at=now,
        detail={"expires_at": (now + CLAIM_CODE_TTL).isoformat()},
    )
    return code


@dataclass(frozen=True)
class Redeemed:
    device_id: str
    owner: str  # the audit trail's name for the new owner


async def redeem(
    session: AsyncSession, device_id: str, code: str, *, now: datetime | None = None
) -> Redeemed | None:
    """The device ``device_id`` presented ``code``: claim it for the code's owner, once.

    None (and nothing changed) when the code is unknown, used, expired, or cannot apply: the
    device is owned already, or a product's code meets a device outside that product, or a
    user's code meets a product device (its team claims those). For the device server, which
    calls it when a connected device publishes its claim code.
    """
    now = now or utcnow()
    if not code or len(code) > CLAIM_CODE_MAX:
        return None
    claim = await session.scalar(
        select(ClaimCode).where(ClaimCode.code_hash == hash_token(code)).with_for_update()
    )
    if claim is None or claim.used_at is not None or claim.expires_at <= now:
        return None
    device = await session.get(Device, device_id, with_for_update=True)
    if device is None or device.owner_user_id is not None or device.owner_customer_id is not None:
        return None
    if device.product_id != claim.product_id:
        return None
    claim.used_at = now
    claim.device_id = device_id
    if claim.customer_id is not None:
        email = await session.scalar(select(Customer.email).where(Customer.id == claim.customer_id))
        owner = f"customer:{email}@product:{claim.product_id}"
    else:
        email = await session.scalar(select(User.email).where(User.id == claim.user_id))
        owner = f"user:{email}"
    devices.claim(
        session,
        device,
        By(f"device:{device_id}"),
        owner=owner,
        user_id=claim.user_id,
        customer_id=claim.customer_id,
        at=now,
        via="claim_code",
        code_by=claim.created_by,
    )
    return Redeemed(device_id, owner)
