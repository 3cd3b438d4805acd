"""What the device page shows, read from the store once the caller's standing allows it."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.api.access import device_standing
from fermion.cloud.api.audit import device_trail
from fermion.cloud.api.auth import Caller
from fermion.cloud.api.views import candidate_addresses, candidate_summary, fp
from fermion.cloud.console.fleet import HEALTH, LABELS, Health, HealthLabel, platform_name
from fermion.cloud.console.web import permitted, when
from fermion.cloud.domain.permissions import Action, Actor
from fermion.cloud.store.models import (
    AuditEvent,
    CandidateStatus,
    Device,
    DeviceKey,
    HandshakeOutcome,
    KeyCandidate,
    Product,
)
from fermion.cloud.store.queries import DeviceRow

RECENT = 10
# The audit actions that change a device's key; their detail may carry a reason.
KEY_ACTIONS = ("key.upload", "key.candidate.approve", "key.restore", "key.repair", "key.import")
SHOWN_ACTIONS = (
    Action.KEY_VIEW,
    Action.KEY_APPROVE,
    Action.KEY_REPAIR,
    Action.DEVICE_EDIT,
    Action.DEVICE_UNCLAIM,
    Action.DEVICE_REMOVE,
    Action.AUDIT_VIEW,
    # product navigation
    Action.TEAM_VIEW,
    Action.CUSTOMER_VIEW,
    Action.CLIENT_VIEW,
)


@dataclass(frozen=True)
class KeyVersion:
    version: int
    fingerprint: str
    algorithm: str
    source: str
    created_by: str
    created_at: datetime
    current: bool
    reason: str | None


@dataclass(frozen=True)
class Decision:
    fingerprint: str
    status: str
    decided_by: str | None
    decided_at: datetime | None


@dataclass
class DeviceView:
    row: DeviceRow
    product: Product | None
    health: Health
    can: set[Action]
    role: Actor | None = None
    candidate: KeyCandidate | None = None
    # Every key waiting for a decision (the most recent is ``candidate``), and what they add up
    # to (api.views.candidate_summary): how many keys, from how many addresses.
    pending: list[KeyCandidate] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    keys: list[KeyVersion] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    outcomes: list[HandshakeOutcome] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    key_hex: list[str] = field(default_factory=list)  # SHA-256 hex of its keys and decided ones
    describe: str | None = None
    # What the device itself published lately: (when, name, data as text, private).
    device_events: list[tuple[datetime, str, str, bool]] = field(default_factory=list)
    activity_known: bool = False  # False: the device server runs in other processes, or not

    @property
    def timeline(self) -> list[tuple[datetime, str, Any]]:
        """Handshakes, the device's own events and the audit trail, newest first."""
        items: list[tuple[datetime, str, Any]] = [(o.at, "handshake", o) for o in self.outcomes]
        items += [(e[0], "event", e) for e in self.device_events]
        items += [(a.at, "audit", a) for a in self.events]
        return sorted(items, key=lambda item: item[0], reverse=True)

    @staticmethod
    def addresses_of(candidate: KeyCandidate) -> list[str]:
        return candidate_addresses(candidate)

    @property
    def can_change(self) -> bool:
        changes = {
            Action.DEVICE_EDIT,
            Action.KEY_REPAIR,
            Action.DEVICE_UNCLAIM,
            Action.DEVICE_REMOVE,
        }
        return bool(self.can & changes)

    @property
    def device(self) -> Device:
        return self.row.device

    @property
    def label(self) -> HealthLabel:
        return LABELS[self.health]

    @property
    def platform(self) -> str:
        return platform_name(self.device.platform_id)

    @property
    def owner_kind(self) -> str | None:
        if self.device.owner_customer_id is not None:
            return "customer"
        return "user" if self.device.owner_user_id is not None else None

    @property
    def key_fingerprint(self) -> str | None:
        return fp(self.row.key_fingerprint)

    @property
    def known_fingerprints(self) -> list[str]:
        """Full hex digests of the keys this page names, to write the device server's
        shortened ones in full (``web.outcome_detail``)."""
        found = [self.row.key_fingerprint or ""]
        found += [o.fingerprint or "" for o in self.outcomes]
        found += [c.fingerprint for c in self.pending]
        found += self.key_hex
        return [f for f in found if f]

    def status(self) -> dict[str, Any]:
        """What the page polls for, to turn a device green without a reload: the badges and the
        facts beside them, written as the page writes them."""
        d = self.device
        return {
            "id": d.id,
            "online": bool(d.online),
            "health": self.health.value,
            "health_text": self.label.text,
            "health_icon": self.label.icon,
            "health_tone": self.label.tone,
            "key_fingerprint": self.key_fingerprint,
            "candidate_id": self.candidate.id if self.candidate else None,
            "last_handshake_at": d.last_handshake_at.isoformat() if d.last_handshake_at else None,
            "facts": {
                "last_handshake": when(d.last_handshake_at),
                "last_address": d.last_ip_address or "—",
                "last_outcome": d.last_outcome or "—",
            },
        }


async def load_device_view(session: AsyncSession, caller: Caller, row: DeviceRow) -> DeviceView:
    device = row.device
    actor, also = await device_standing(session, caller, device)
    can = permitted(actor, SHOWN_ACTIONS, also=also)
    health = await session.scalar(select(HEALTH).where(Device.id == device.id))
    product = await session.get(Product, device.product_id) if device.product_id else None
    view = DeviceView(row, product, Health(health or Health.OTHER.value), can, actor)
    if Action.KEY_VIEW in can:
        # Bounded per device by the device server (DeviceServerConfig.max_pending_candidates).
        view.pending = list(
            await session.scalars(
                select(KeyCandidate)
                .where(
                    KeyCandidate.device_id == device.id,
                    KeyCandidate.status == CandidateStatus.PENDING.value,
                )
                .order_by(KeyCandidate.last_seen.desc(), KeyCandidate.id.desc())
            )
        )
        view.candidate = view.pending[0] if view.pending else None
        view.summary = candidate_summary(view.pending, device.candidates_dropped or 0)
        view.keys, view.key_hex = await _key_history(session, device)
        decided = await session.scalars(
            select(KeyCandidate)
            .where(
                KeyCandidate.device_id == device.id,
                KeyCandidate.status != CandidateStatus.PENDING.value,
            )
            .order_by(KeyCandidate.decided_at.desc())
            .limit(RECENT)
        )
        decided_list = list(decided)
        view.decisions = [
            Decision(fp(c.fingerprint) or "", c.status, c.decided_by, c.decided_at)
            for c in decided_list
        ]
        # A rejected key is named by the device server's reasons too ("presented key ... was
        # rejected"): known in full, it is written as the rest of the page writes keys.
        view.key_hex += [c.fingerprint for c in decided_list]
    view.outcomes = list(
        await session.scalars(
            select(HandshakeOutcome)
            .where(
                HandshakeOutcome.device_id == device.id,
                # Where a personal device connected from before its owner got it is not theirs.
                HandshakeOutcome.at >= device.owner_since if device.product_id is None else true(),
            )
            .order_by(HandshakeOutcome.at.desc(), HandshakeOutcome.id.desc())
            .limit(RECENT)
        )
    )
    if Action.AUDIT_VIEW in can:
        view.events = list(
            await session.scalars(
                select(AuditEvent)
                .where(device_trail(device, caller))  # not the previous owners' history
                .order_by(AuditEvent.id.desc())
                .limit(RECENT)
            )
        )
    return view


async def _key_history(session: AsyncSession, device: Device) -> tuple[list[KeyVersion], list[str]]:
    keys = list(
        await session.scalars(
            select(DeviceKey)
            .where(DeviceKey.device_id == device.id)
            .order_by(DeviceKey.version.desc())
        )
    )
    events = await session.scalars(
        select(AuditEvent)
        .where(AuditEvent.device_id == device.id, AuditEvent.action.in_(KEY_ACTIONS))
        .order_by(AuditEvent.id)
    )
    reasons: dict[str, str] = {}
    for event in events:
        if event.after_fingerprint:
            reasons[event.after_fingerprint] = _reason(event)
    versions = [
        KeyVersion(
            version=k.version,
            fingerprint=fp(k.fingerprint) or "",
            algorithm=k.algorithm,
            source=k.source,
            created_by=k.created_by,
            created_at=k.created_at,
            current=k.id == device.current_key_id,
            reason=reasons.get(k.fingerprint),
        )
        for k in keys
    ]
    return versions, [k.fingerprint for k in keys]


def _reason(event: AuditEvent) -> str:
    detail = event.detail or {}
    given = detail.get("reason")
    if isinstance(given, str) and given:
        return given
    if event.action == "key.candidate.approve":
        proven = "possession proven" if detail.get("possession_proven") else "unproven"
        return f"presented key approved ({proven})"
    if event.action == "key.restore":
        return f"restored version {detail.get('restored_version')}"
    if event.action == "key.repair":
        return "atomic repair, claim kept"
    if event.action == "key.upload":
        return "key uploaded"
    return event.action


def add_activity(view: DeviceView, devices: Any) -> None:
    """The latest Describe and the events the device published, which the device server keeps
    in memory. Only reachable when it runs inside this process (``--device-workers 0``)."""
    server = getattr(devices, "server", None)
    activity = getattr(server, "activity", None)
    if activity is None:
        return
    view.activity_known = True
    entry = activity.get(view.device.id)
    if entry is None:
        return
    parts = []
    for flags, payload in sorted(entry.describe.items()):
        text = payload.decode("utf-8", "replace")
        with contextlib.suppress(ValueError):
            text = json.dumps(json.loads(text), indent=2, sort_keys=True)
        parts.append(text if len(entry.describe) == 1 else f"flags {flags}:\n{text}")
    view.describe = "\n\n".join(parts) or None
    view.device_events = [
        (datetime.fromtimestamp(at, UTC), name, data.decode("utf-8", "replace"), private)
        for at, name, data, private in reversed(entry.events)
    ][:RECENT]
