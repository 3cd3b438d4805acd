"""The cloud's own keys and the audit trail."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from fermion.cloud.store.models.base import Base, UTCDateTime, utcnow


class ServerKeyState(StrEnum):
    CURRENT = "current"
    PREVIOUS = "previous"  # still accepted during a rotation
    RETIRED = "retired"


class ServerKey(Base):
    __tablename__ = "server_keys"
    # One current key per algorithm, whatever number of processes start at once (migration 0002).
    __table_args__ = (
        Index(
            "uq_server_keys_current",
            "algorithm",
            unique=True,
            sqlite_where=text("state = 'current'"),
            postgresql_where=text("state = 'current'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(3))
    private_pem: Mapped[str] = mapped_column(Text)
    public_der: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=ServerKeyState.CURRENT)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    """Append-only: written in the same transaction as the change it records."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(300), index=True)  # e.g. user:a@b.c
    action: Mapped[str] = mapped_column(String(64))
    # Plain values, not foreign keys: the trail outlives what it mentions.
    device_id: Mapped[str | None] = mapped_column(String(24), index=True)
    product_id: Mapped[int | None] = mapped_column(Integer, index=True)
    before_fingerprint: Mapped[str | None] = mapped_column(String(64))
    after_fingerprint: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
