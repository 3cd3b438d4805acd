"""Devices, the append-only history of their keys, and keys they presented that did not match."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from fermion.cloud.store.models.base import Base, UTCDateTime, utcnow


class Transport(StrEnum):
    TCP = "tcp"  # RSA device keys
    UDP = "udp"  # EC P-256 device keys


class KeySource(StrEnum):
    PROVISIONING = "provisioning"  # POST /v1/provisioning
    APPROVAL = "approval"  # a presented key approved by a person
    RESTORE = "restore"  # an older version made current again
    IMPORT = "import"
    REPAIR = "repair"  # the atomic repair of a customer-owned device


class CandidateStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    # The device handshook with its current key after this key was presented: whoever holds
    # this key is not the device, or the device was repaired. Kept as history, not pending.
    SUPERSEDED = "superseded"


class KeyHealth(StrEnum):
    UNKNOWN = "unknown"  # never handshaken
    OK = "ok"
    MISMATCH = "mismatch"  # presented a key the cloud does not hold
    NO_KEY = "no_key"  # the cloud holds no key for it


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)  # 24 lower-case hex digits
    platform_id: Mapped[int] = mapped_column(Integer, default=6)
    transport: Mapped[str] = mapped_column(String(3), default=Transport.TCP)
    product_id: Mapped[int | None] = mapped_column(
        ForeignKey("products.id", ondelete="SET NULL"), index=True
    )
    owner_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    owner_customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    # When the current owner (user or customer) got the device: a non-team caller's view of
    # its audit trail starts here, so a next owner never reads the previous one's history.
    owner_since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_handshake_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_ip_address: Mapped[str | None] = mapped_column(String(64))
    last_heard: Mapped[datetime | None] = mapped_column(UTCDateTime)
    key_health: Mapped[str] = mapped_column(String(16), default=KeyHealth.UNKNOWN)
    last_outcome: Mapped[str | None] = mapped_column(String(64))
    # The key in force; the history in device_keys is never rewritten.
    current_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_keys.id", use_alter=True, ondelete="SET NULL")
    )
    # JSON list: the last few addresses it handshook from with its current key.
    known_addresses: Mapped[str | None] = mapped_column(Text)
    # Presented keys not kept: the device already had its share pending (registry).
    candidates_dropped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeviceKey(Base):
    """One version of a device's public key. Rows are only ever inserted."""

    __tablename__ = "device_keys"
    __table_args__ = (UniqueConstraint("device_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    algorithm: Mapped[str] = mapped_column(String(3))  # fermion.keys.Algorithm value: rsa | ec
    der: Mapped[bytes] = mapped_column(LargeBinary)  # SubjectPublicKeyInfo
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)  # SHA-256 hex of the DER
    source: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(300))  # an actor label, e.g. user:a@b.c
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeyCandidate(Base):
    """A key a device presented that the cloud did not hold, waiting for a person's decision."""

    __tablename__ = "key_candidates"
    __table_args__ = (UniqueConstraint("device_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    algorithm: Mapped[str] = mapped_column(String(3))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    count: Mapped[int] = mapped_column(Integer, default=1)
    remote_address: Mapped[str | None] = mapped_column(String(64))
    # True once the device signed a challenge with the matching private key.
    possession_proven: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=CandidateStatus.PENDING)
    # JSON list: the distinct addresses that presented it (the last few).
    addresses: Mapped[str | None] = mapped_column(Text)
    # Presented from an address the device never handshook from with its current key.
    new_address: Mapped[bool | None] = mapped_column(Boolean)
    decided_by: Mapped[str | None] = mapped_column(String(300))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class HandshakeOutcome(Base):
    """How a handshake ended, per device when the id is known, else per remote address."""

    __tablename__ = "handshake_outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No foreign key: a device id nobody registered is worth recording too.
    device_id: Mapped[str | None] = mapped_column(String(24), index=True)
    remote_address: Mapped[str | None] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ClaimCode(Base):
    """A claim code (``POST /v1/device_claims``): whoever holds it and the device claims the
    device for the code's owner. Only its SHA-256 is stored; single use, short-lived."""

    __tablename__ = "claim_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # A product's code is its customer's (deleting the customer revokes its codes).
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    created_by: Mapped[str] = mapped_column(String(300))  # an actor label
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    device_id: Mapped[str | None] = mapped_column(String(24))  # the device that presented it
