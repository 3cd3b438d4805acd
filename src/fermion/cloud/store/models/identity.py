"""Accounts and the tokens that act for them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fermion.cloud.store.models.base import Base, UTCDateTime, utcnow


class OwnerKind(StrEnum):
    """Who a token acts for."""

    USER = "user"
    CUSTOMER = "customer"
    CLIENT = "client"  # a product OAuth client: the token acts for the product


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    # argon2id; None for an account that cannot log in with a password yet.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


_ONE_OWNER = (
    "(owner_kind = 'user' AND user_id IS NOT NULL AND customer_id IS NULL "
    "AND oauth_client_id IS NULL) OR "
    "(owner_kind = 'customer' AND customer_id IS NOT NULL AND user_id IS NULL) OR "
    "(owner_kind = 'client' AND oauth_client_id IS NOT NULL AND user_id IS NULL "
    "AND customer_id IS NULL)"
)


class AccessToken(Base):
    """A bearer token. Only its SHA-256 is stored: a copy of the table grants nothing."""

    __tablename__ = "access_tokens"
    __table_args__ = (CheckConstraint(_ONE_OWNER, name="one_owner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    owner_kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    # The product OAuth client that minted it (customer and client tokens).
    oauth_client_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    # Denormalised from the customer or client so a request needs one lookup, not three.
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    client_name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RefreshToken(Base):
    """Renews an access token for the same owner; stored hashed like access tokens."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    access_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("access_tokens.id", ondelete="SET NULL"), index=True
    )
    owner_kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    oauth_client_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE")
    )
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    client_name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
