"""Every table of the cloud. Import from here; the split into modules is by topic only."""

from fermion.cloud.store.models.base import Base, UTCDateTime, utcnow
from fermion.cloud.store.models.cloud import AuditEvent, ServerKey, ServerKeyState
from fermion.cloud.store.models.devices import (
    CandidateStatus,
    ClaimCode,
    Device,
    DeviceKey,
    HandshakeOutcome,
    KeyCandidate,
    KeyHealth,
    KeySource,
    Transport,
)
from fermion.cloud.store.models.identity import AccessToken, OwnerKind, RefreshToken, User
from fermion.cloud.store.models.products import (
    ClientType,
    Customer,
    OAuthClient,
    Product,
    TeamMembership,
)

__all__ = [
    "AccessToken",
    "AuditEvent",
    "Base",
    "CandidateStatus",
    "ClaimCode",
    "ClientType",
    "Customer",
    "Device",
    "DeviceKey",
    "HandshakeOutcome",
    "KeyCandidate",
    "KeyHealth",
    "KeySource",
    "OAuthClient",
    "OwnerKind",
    "Product",
    "RefreshToken",
    "ServerKey",
    "ServerKeyState",
    "TeamMembership",
    "Transport",
    "UTCDateTime",
    "User",
    "utcnow",
]
