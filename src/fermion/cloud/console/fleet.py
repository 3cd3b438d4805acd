"""What the fleet-health page shows: each device's key health, counted, filtered, sorted, paged.

The device server records facts (``Device.key_health``, the outcome of the last handshake, the
keys a device presented); this module only groups those facts the way a person triages a fleet,
in SQL so that filters, sorting and paging stay one query whatever the fleet's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from fermion.cloud.devices.registry import parse_outcome_detail
from fermion.cloud.domain.platforms import BY_ID
from fermion.cloud.store.models import (
    CandidateStatus,
    Customer,
    Device,
    DeviceKey,
    HandshakeOutcome,
    KeyCandidate,
    KeyHealth,
    User,
)
from fermion.protocol.errors import Outcome

PER_PAGE = 25
# Enough addresses for any product page; the oldest beyond it are not worth a scan.
MAX_OUTCOME_ROWS = 5000
# The device broke the protocol after its key was accepted, or never finished a step it owes:
# not a key problem, a firmware (or flash) one.
FAULT_OUTCOMES = (Outcome.MALFORMED.value, Outcome.BAD_NONCE.value, Outcome.TIMEOUT.value)


class Health(StrEnum):
    OK = "ok"
    PROVEN = "mismatch_proven"
    UNPROVEN = "mismatch_unproven"
    APPROVED = "approved"
    SERVER_KEY = "server_key"
    NEVER = "never"
    FAULT = "fault"
    OTHER = "other"


@dataclass(frozen=True)
class HealthLabel:
    text: str
    icon: str  # a symbol beside the colour, so the state reads without colour
    tone: str  # css class


LABELS: dict[Health, HealthLabel] = {
    Health.OK: HealthLabel("OK", "✔", "good"),
    Health.PROVEN: HealthLabel("Key mismatch — possession proven", "⚠", "warn"),
    Health.UNPROVEN: HealthLabel("Key mismatch — unproven", "✖", "bad"),
    Health.APPROVED: HealthLabel("Key approved — waiting for reconnect", "↻", "info"),
    Health.SERVER_KEY: HealthLabel("Server key wrong (by address)", "⊘", "bad"),
    Health.NEVER: HealthLabel("Never connected", "○", "muted"),
    Health.FAULT: HealthLabel("Firmware fault", "⚡", "bad"),
    Health.OTHER: HealthLabel("Unknown", "?", "muted"),
}
CARD_ORDER = [
    Health.OK,
    Health.PROVEN,
    Health.UNPROVEN,
    Health.SERVER_KEY,
    Health.NEVER,
    Health.FAULT,
]

_pending_proven = (
    select(KeyCandidate.id)
    .where(
        KeyCandidate.device_id == Device.id,
        KeyCandidate.status == CandidateStatus.PENDING.value,
        KeyCandidate.possession_proven.is_(True),
    )
    .correlate(Device)
    .exists()
)
# A person approved the key the device presented (or repaired with it): the mismatch is settled
# and the device only has to come back.
_approved_current = (
    select(KeyCandidate.id)
    .join(DeviceKey, DeviceKey.fingerprint == KeyCandidate.fingerprint)
    .where(
        KeyCandidate.device_id == Device.id,
        KeyCandidate.status == CandidateStatus.APPROVED.value,
        DeviceKey.id == Device.current_key_id,
    )
    .correlate(Device)
    .exists()
)

HEALTH = case(
    (
        Device.key_health == KeyHealth.MISMATCH.value,
        case(
            (_pending_proven, Health.PROVEN.value),
            (_approved_current, Health.APPROVED.value),
            else_=Health.UNPROVEN.value,
        ),
    ),
    (Device.last_outcome == Outcome.SERVER_KEY_MISMATCH.value, Health.SERVER_KEY.value),
    (Device.last_outcome.in_(FAULT_OUTCOMES), Health.FAULT.value),
    (Device.key_health == KeyHealth.OK.value, Health.OK.value),
    (Device.last_handshake_at.is_(None), Health.NEVER.value),
    else_=Health.OTHER.value,
)
OWNER = func.coalesce(User.email, Customer.email)

SORTS: dict[str, Any] = {
    "id": Device.id,
    "name": Device.name,
    "platform": Device.platform_id,
    "owner": OWNER,
    "online": Device.online,
    "last_handshake": Device.last_handshake_at,
    "health": HEALTH,
}


@dataclass(frozen=True)
class FleetQuery:
    health: Health | None = None
    online: bool | None = None
    q: str = ""
    sort: str = "last_handshake"
    desc: bool = True
    page: int = 1

    @classmethod
    def parse(cls, params: dict[str, str]) -> FleetQuery:
        """Query-string values as a person may have edited them: anything odd is ignored."""
        try:
            health = Health(params.get("health", "")) if params.get("health") else None
        except ValueError:
            health = None
        online = {"online": True, "offline": False}.get(params.get("online", ""))
        sort = params.get("sort", "last_handshake")
        if sort not in SORTS:
            sort = "last_handshake"
        page_text = params.get("page", "1")
        # isascii: str.isdigit() also admits digits int() refuses, such as '²'.
        plain = page_text.isascii() and page_text.isdigit()
        page = int(page_text) if plain and 0 < len(page_text) < 7 else 1
        return cls(
            health=health,
            online=online,
            q=params.get("q", "").strip()[:100],
            sort=sort,
            desc=params.get("dir", "desc" if sort == "last_handshake" else "asc") == "desc",
            page=max(1, page),
        )

    def args(self, **changes: Any) -> dict[str, str]:
        """This query's parameters with ``changes``, for links (None drops a parameter)."""
        values: dict[str, Any] = {
            "health": self.health.value if self.health else None,
            "online": None if self.online is None else ("online" if self.online else "offline"),
            "q": self.q or None,
            "sort": self.sort,
            "dir": "desc" if self.desc else "asc",
            "page": self.page,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v is not None and v != ""}


@dataclass(frozen=True)
class FleetDevice:
    id: str
    name: str | None
    platform: str
    owner: str | None
    owner_kind: str | None  # user | customer
    online: bool
    last_handshake_at: datetime | None
    health: Health

    @property
    def label(self) -> HealthLabel:
        return LABELS[self.health]


@dataclass(frozen=True)
class ServerKeyAddress:
    address: str
    attempts: int
    last_seen: datetime


@dataclass(frozen=True)
class Fleet:
    counts: dict[Health, int]
    online: int
    offline: int
    devices: list[FleetDevice]
    total: int
    pages: int
    server_key_addresses: list[ServerKeyAddress]


def platform_name(platform_id: int) -> str:
    found = BY_ID.get(platform_id)
    return found.name.capitalize() if found else f"platform {platform_id}"


def _like_escaped(text: str) -> str:
    """``text`` matched literally inside a LIKE pattern (with ``escape="\\"``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search(q: str) -> Any:
    escaped = _like_escaped(q.lower())
    return or_(
        Device.id.like(escaped + "%", escape="\\"),
        func.lower(Device.name).like("%" + escaped + "%", escape="\\"),
    )


def _host(address: str) -> str:
    """``1.2.3.4:5683`` or ``[::1]:5683`` -> the host alone; a bare host stays as it is."""
    if address.startswith("["):
        return address[1 : address.find("]")] if "]" in address else address
    if address.count(":") == 1:
        return address.split(":", 1)[0]
    return address


def product_fleet(product_id: int) -> ColumnElement[bool]:
    """A product's devices."""
    return Device.product_id == product_id


def personal_fleet(user_id: int) -> ColumnElement[bool]:
    """A user's own devices outside any product (claimed with their account, as on Particle)."""
    return and_(Device.owner_user_id == user_id, Device.product_id.is_(None))


async def load_fleet(session: AsyncSession, scope: ColumnElement[bool], query: FleetQuery) -> Fleet:
    """The fleet of the devices ``scope`` selects (``product_fleet`` or ``personal_fleet``)."""
    in_product = scope
    health = HEALTH.label("health")
    # Grouped over a subquery: the health expression holds correlated subqueries, which
    # PostgreSQL will not group by in place.
    per_device = select(health, Device.online.label("online")).where(in_product).subquery()
    count_rows = await session.execute(
        select(per_device.c.health, per_device.c.online, func.count()).group_by(
            per_device.c.health, per_device.c.online
        )
    )
    counts = dict.fromkeys(Health, 0)
    online = offline = 0
    for value, is_online, n in count_rows:
        counts[Health(value)] += n
        if is_online:
            online += n
        else:
            offline += n

    conditions: list[Any] = [in_product]
    if query.health is not None:
        conditions.append(query.health.value == HEALTH)
    if query.online is not None:
        conditions.append(Device.online.is_(query.online))
    if query.q:
        conditions.append(_search(query.q))
    total = await session.scalar(select(func.count()).select_from(Device).where(and_(*conditions)))
    total = total or 0
    pages = max(1, math.ceil(total / PER_PAGE))
    page = min(query.page, pages)
    order = SORTS[query.sort]
    order_by = [order.desc().nulls_last() if query.desc else order.asc().nulls_last(), Device.id]
    rows = await session.execute(
        select(Device, User.email, Customer.email, health)
        .outerjoin(User, User.id == Device.owner_user_id)
        .outerjoin(Customer, Customer.id == Device.owner_customer_id)
        .where(*conditions)
        .order_by(*order_by)
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
    )
    devices = [
        FleetDevice(
            id=d.id,
            name=d.name,
            platform=platform_name(d.platform_id),
            owner=user_email or customer_email,
            owner_kind="user" if user_email else ("customer" if customer_email else None),
            online=bool(d.online),
            last_handshake_at=d.last_handshake_at,
            health=Health(h),
        )
        for d, user_email, customer_email, h in rows
    ]
    addresses = await _server_key_addresses(session, scope)
    # Such a device cannot say who it is: each address counts as one device of the fleet.
    counts[Health.SERVER_KEY] += len(addresses)
    return Fleet(
        counts=counts,
        online=online,
        offline=offline,
        devices=devices,
        total=total,
        pages=pages,
        server_key_addresses=addresses,
    )


async def _server_key_addresses(
    session: AsyncSession, scope: ColumnElement[bool]
) -> list[ServerKeyAddress]:
    """Handshakes refused because the device holds another cloud's server key.

    The device id is inside the block the cloud could not open, so only the address is known.
    A fleet sees an address only when it is tied to the fleet's own devices: a device of the
    fleet was last seen there, no device outside it was (on a shared address the refused device
    may be anybody's: another account's repair must not turn this fleet red, nor its refusal
    show here), and a device of the fleet there has not handshaken since the last refusal (the
    one that was refused came back: the refusal is history, not a device to fix).
    """
    seen_at: dict[str, list[datetime | None]] = {}
    ours = await session.execute(
        select(Device.last_ip_address, Device.last_handshake_at).where(
            scope, Device.last_ip_address.is_not(None)
        )
    )
    for address, last_handshake in ours:
        if address:
            seen_at.setdefault(_host(address), []).append(last_handshake)
    if not seen_at:
        return []
    # The device server keeps one row per address and outcome, with a running count in its
    # detail (see ``registry``), so a flood of refusals never grows the table.
    rows = await session.execute(
        select(HandshakeOutcome.remote_address, HandshakeOutcome.detail, HandshakeOutcome.at)
        .where(
            HandshakeOutcome.outcome == Outcome.SERVER_KEY_MISMATCH.value,
            HandshakeOutcome.device_id.is_(None),
            HandshakeOutcome.remote_address.is_not(None),
        )
        .order_by(HandshakeOutcome.at.desc())
        .limit(MAX_OUTCOME_ROWS)
    )
    by_host: dict[str, ServerKeyAddress] = {}
    for address, detail, last_seen in rows:
        host = _host(address)
        if host not in seen_at:
            continue
        count = parse_outcome_detail(detail).get("count", 1)
        attempts = count if isinstance(count, int) and count > 0 else 1
        seen = by_host.get(host)
        if seen is None:
            by_host[host] = ServerKeyAddress(host, attempts, last_seen)
        else:
            by_host[host] = ServerKeyAddress(
                host, seen.attempts + attempts, max(seen.last_seen, last_seen)
            )
    # Only the refused addresses are looked up outside the fleet (a fleet may have been seen
    # at thousands), a bounded number at a time.
    elsewhere = await _seen_outside(session, scope, list(by_host))
    return sorted(
        (
            a
            for a in by_host.values()
            if a.address not in elsewhere and _still_refused(a, seen_at[a.address])
        ),
        key=lambda a: a.last_seen,
        reverse=True,
    )


# Hosts per query when looking for devices outside a fleet: three terms each, well inside
# SQLite's expression depth (1000) and any bound-parameter limit.
HOSTS_PER_QUERY = 100


async def _seen_outside(
    session: AsyncSession, scope: ColumnElement[bool], hosts: list[str]
) -> set[str]:
    """Which of ``hosts`` a device outside the fleet was last seen at."""
    found: set[str] = set()
    for start in range(0, len(hosts), HOSTS_PER_QUERY):
        chunk = hosts[start : start + HOSTS_PER_QUERY]
        addresses = await session.scalars(
            select(Device.last_ip_address).where(
                # not in the fleet (a NULL column must not hide a device from NOT)
                Device.id.not_in(select(Device.id).where(scope)),
                or_(*(_at_host(host) for host in chunk)),
            )
        )
        found.update(_host(a) for a in addresses if a)
    return found


def _at_host(host: str) -> ColumnElement[bool]:
    """A device last seen at ``host``, with or without a port (as ``_host`` reads it)."""
    column = Device.last_ip_address
    escaped = _like_escaped(host)
    return or_(
        column == host,
        column.like(escaped + ":%", escape="\\"),
        column.like("[" + escaped + "]:%", escape="\\"),
    )


def _still_refused(address: ServerKeyAddress, handshakes: list[datetime | None]) -> bool:
    """Some device of the fleet at the address has not handshaken since its last refusal."""
    last = _naive(address.last_seen)
    return any(at is None or _naive(at) < last for at in handshakes)


def _naive(at: datetime) -> datetime:
    # SQLite hands back naive UTC datetimes, PostgreSQL aware ones: compare them alike.
    return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at
