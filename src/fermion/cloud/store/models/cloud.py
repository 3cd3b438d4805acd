"""The cloud's own keys and the audit trail."""

from __future__ import annotations

import base64
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Integer, LargeBinary, String, Text, TypeDecorator, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column

from fermion.cloud import secretbox
from fermion.cloud.store.models.base import Base, UTCDateTime, utcnow

SEALED_PREFIX = "fsb1:"


class SealedText(TypeDecorator[str]):
    """Text sealed by ``fermion.cloud.secretbox`` on the way in and opened on the way out,
    so that every reader (the API, the device server) sees plaintext and the database holds
    none. ``purpose`` is the AAD: a blob copied to another sealed column does not open there.
    A row still holding plaintext (written before sealing existed) reads as it is, and
    ``serverkeys.seal_plaintext_keys`` seals it at start."""

    impl = Text
    cache_ok = True

    def __init__(self, purpose: str) -> None:
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or value.startswith(SEALED_PREFIX):
            return value
        blob = secretbox.seal(value.encode(), self.purpose.encode())
        return SEALED_PREFIX + base64.b64encode(blob).decode()

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if not isinstance(value, str) or not value.startswith(SEALED_PREFIX):
            return value
        blob = base64.b64decode(value[len(SEALED_PREFIX) :])
        return secretbox.open(blob, self.purpose.encode()).decode()


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
    private_pem: Mapped[str] = mapped_column(SealedText("server_keys.private_pem"))
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
