"""``GET /v1/user``: who the token belongs to."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select

from fermion.cloud.api.auth import CallerDep, StoreDep
from fermion.cloud.store.models import Device, OwnerKind, Transport

router = APIRouter(tags=["user"])


@router.get("/v1/user", summary="The account the token belongs to")
async def get_user(caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    wifi = cellular = 0
    if caller.kind is not OwnerKind.CLIENT:
        owner = (
            Device.owner_user_id == caller.user_id
            if caller.kind is OwnerKind.USER
            else Device.owner_customer_id == caller.customer_id
        )
        async with store.read() as session:
            counts = await session.execute(
                select(Device.transport, func.count()).where(owner).group_by(Device.transport)
            )
            for transport, count in counts:
                if transport == Transport.UDP:
                    cellular += count
                else:
                    wifi += count
    return {
        "username": caller.email or caller.client_name,
        "subscription_ids": [],
        "account_info": {"first_name": "", "last_name": "", "business_account": False},
        "mfa": {"enabled": False},
        "wifi_device_count": wifi,
        "cellular_device_count": cellular,
    }
