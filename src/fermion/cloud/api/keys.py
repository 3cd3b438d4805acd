"""Fermion's key endpoints: history, presented keys (approve/reject), restore, atomic repair."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from fermion.cloud.api.access import load_device
from fermion.cloud.api.auth import CallerDep, StoreDep, request_id
from fermion.cloud.api.errors import ApiError, bad_request, not_found
from fermion.cloud.api.fields import body_fields, text_field
from fermion.cloud.api.provisioning import BODY
from fermion.cloud.api.views import candidate_json, candidate_summary, fp, key_json
from fermion.cloud.domain.keypolicy import parse_device_public_key, require_fits_device
from fermion.cloud.domain.permissions import Action
from fermion.cloud.keyhistory import EarlierVersion, earlier_versions
from fermion.cloud.keyops import set_device_key, settle_candidate
from fermion.cloud.store.audit import record
from fermion.cloud.store.direct import SessionRunner
from fermion.cloud.store.models import CandidateStatus, DeviceKey, KeyCandidate, KeySource, utcnow
from fermion.keys import load_key

router = APIRouter(tags=["fermion"])


@router.get(
    "/v1/devices/{device_id}/keys",
    summary="Key history of a device (every version, newest first)",
)
async def key_history(device_id: str, caller: CallerDep, store: StoreDep) -> dict[str, Any]:
    async with store.read() as session:
        row = await load_device(session, caller, device_id, Action.KEY_VIEW)
        keys = await session.scalars(
            select(DeviceKey)
            .where(DeviceKey.device_id == row.device.id)
            .order_by(DeviceKey.version.desc())
        )
        current = row.device.current_key_id
        return {
            "ok": True,
            "device_id": row.device.id,
            "current_fingerprint": fp(row.key_fingerprint),
            "keys": [key_json(k, current) for k in keys],
        }


@router.get(
    "/v1/devices/{device_id}/keys/candidates",
    summary="Keys the device presented that the cloud does not hold",
)
async def list_candidates(
    device_id: str,
    caller: CallerDep,
    store: StoreDep,
    status: CandidateStatus | None = Query(
        None, description="pending, approved, rejected or superseded"
    ),
) -> dict[str, Any]:
    async with store.read() as session:
        row = await load_device(session, caller, device_id, Action.KEY_VIEW)
        stmt = select(KeyCandidate).where(KeyCandidate.device_id == row.device.id)
        every = list(await session.scalars(stmt.order_by(KeyCandidate.last_seen.desc())))
        found = [c for c in every if status is None or c.status == status.value]
        earlier = await earlier_versions(session, row.device.id, [c.fingerprint for c in found])
        return {
            "ok": True,
            "candidates": [_candidate(c, earlier) for c in found],
            "summary": candidate_summary(every, row.device.candidates_dropped or 0),
        }


def _candidate(c: KeyCandidate, earlier: dict[str, EarlierVersion]) -> dict[str, Any]:
    """A candidate, with ``restored_from`` (version, created_at, restore path, message) when it
    is an earlier version of the device's key, else null."""
    match = earlier.get(c.fingerprint)
    return {**candidate_json(c), "restored_from": match.to_json() if match else None}


async def _decide(
    device_id: str,
    candidate_id: int,
    approve: bool,
    request: Request,
    caller: CallerDep,
    store: StoreDep,
) -> dict[str, Any]:
    async with store.write() as session:
        row = await load_device(session, caller, device_id, Action.KEY_APPROVE, for_update=True)
        candidate = await session.get(KeyCandidate, candidate_id)
        if candidate is None or candidate.device_id != row.device.id:
            raise not_found(f"candidate {candidate_id} of device {row.device.id} not found")
        if candidate.status != CandidateStatus.PENDING:
            raise ApiError(409, f"candidate {candidate_id} is already {candidate.status}")
        now = utcnow()
        rid = request_id(request)
        detail = {
            "candidate_id": candidate.id,
            "possession_proven": candidate.possession_proven,
            "remote_address": candidate.remote_address,
        }
        if approve:
            key = load_key(candidate.der, f"candidate {candidate.id}")
            require_fits_device(key, row.device.id, row.device.transport, "candidate")
            new = await set_device_key(
                session,
                row.device,
                key,
                source=KeySource.APPROVAL,
                actor=caller.label,
                action="key.candidate.approve",
                request_id=rid,
                current_fingerprint=row.key_fingerprint,
                detail=detail,
            )
            if new is None:  # already the current key: nothing appended, so nothing settled
                await settle_candidate(
                    SessionRunner(session),
                    row.device.id,
                    candidate.fingerprint,
                    actor=caller.label,
                    at=now,
                )
            # keyops settled the row with a Core statement: read back what it wrote.
            await session.refresh(candidate)
        else:
            candidate.status = CandidateStatus.REJECTED
            candidate.decided_by = caller.label
            candidate.decided_at = now
            record(
                session,
                caller.label,
                "key.candidate.reject",
                device_id=row.device.id,
                product_id=row.device.product_id,
                before=row.key_fingerprint,
                after=row.key_fingerprint,
                request_id=rid,
                detail={**detail, "fingerprint": fp(candidate.fingerprint)},
            )
        await session.flush()
        return {"ok": True, "candidate": candidate_json(candidate)}


@router.post(
    "/v1/devices/{device_id}/keys/candidates/{candidate_id}/approve",
    summary="Approve a presented key: it becomes the current key (Developer or above; audited)",
)
async def approve_candidate(
    device_id: str, candidate_id: int, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    return await _decide(device_id, candidate_id, True, request, caller, store)


@router.post(
    "/v1/devices/{device_id}/keys/candidates/{candidate_id}/reject",
    summary="Reject a presented key (Developer or above; audited)",
)
async def reject_candidate(
    device_id: str, candidate_id: int, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    return await _decide(device_id, candidate_id, False, request, caller, store)


@router.post(
    "/v1/devices/{device_id}/keys/{version}/restore",
    summary="Make an older key version current again (a restored key, e.g. DeviceKeyHelperRK)",
)
async def restore_version(
    device_id: str, version: int, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    async with store.write() as session:
        row = await load_device(session, caller, device_id, Action.KEY_UPLOAD, for_update=True)
        old = await session.scalar(
            select(DeviceKey).where(
                DeviceKey.device_id == row.device.id, DeviceKey.version == version
            )
        )
        if old is None:
            raise not_found(f"version {version} of device {row.device.id}'s key not found")
        new = await set_device_key(
            session,
            row.device,
            load_key(old.der, f"key version {version}"),
            source=KeySource.RESTORE,
            actor=caller.label,
            action="key.restore",
            request_id=request_id(request),
            current_fingerprint=row.key_fingerprint,
            detail={"restored_version": version},
        )
    return {"ok": True, "key_version": new.version if new else None, "changed": new is not None}


@router.post(
    "/v1/devices/{device_id}/keys/repair",
    summary="Atomic key repair: replace the key and keep the claim (Developer or above)",
    description=(
        "For a product device claimed by a customer (two-legged included), this does in one "
        "transaction what the seed's procedure does in four calls (unclaim, send the key, mint "
        "a customer token, claim back): the key is replaced, the customer keeps the device, "
        "and one audit event records it. Works for any device the caller may repair."
    ),
    openapi_extra=BODY,
)
async def repair(
    device_id: str, request: Request, caller: CallerDep, store: StoreDep
) -> dict[str, Any]:
    fields = await body_fields(request)
    text = text_field(fields, "publicKey", required=True, max_len=16_384)
    assert text is not None
    key = parse_device_public_key(text, text_field(fields, "algorithm", max_len=20))
    async with store.write() as session:
        row = await load_device(session, caller, device_id, Action.KEY_REPAIR, for_update=True)
        device = row.device
        require_fits_device(key, device.id, device.transport, "publicKey")
        if text_field(fields, "deviceID", max_len=100) not in (None, device.id):
            raise bad_request("deviceID: does not match the device id in the path")
        new = await set_device_key(
            session,
            device,
            key,
            source=KeySource.REPAIR,
            actor=caller.label,
            action="key.repair",
            request_id=request_id(request),
            current_fingerprint=row.key_fingerprint,
            detail={"owner": row.owner_email, "claim_kept": True},
        )
    return {
        "ok": True,
        "deviceID": device.id,
        "owner": row.owner_email,
        "fingerprint": fp(key.fingerprint.hex),
        "key_version": new.version if new else None,
        "changed": new is not None,
    }
