"""What can go wrong on the wire, named twice: as the cloud records it and as a device reports it.

``Outcome`` is the fact the cloud keeps about a handshake or connection (per device, or per
address when the id is unknowable). ``ProtocolError`` is Device OS's own numbering
(``communication/inc/protocol_defs.h``), which a simulated device shows the way a real one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum

from fermion.errors import FermionError


class Outcome(StrEnum):
    """How a device connection ended up; the device server records one per attempt."""

    OK = "ok"
    UNKNOWN_DEVICE = "unknown_device"
    KEY_MISMATCH = "key_mismatch"
    # The 256-byte block does not open with any server key we hold: the device has another
    # cloud's public key. The device id is inside the block, so only the address is known.
    SERVER_KEY_MISMATCH = "server_key_mismatch"
    BAD_NONCE = "bad_nonce"
    MALFORMED = "malformed"
    TIMEOUT = "timeout"
    # The peer hung up before the step it owed us.
    DISCONNECTED = "disconnected"


class ProtocolError(IntEnum):
    """Device OS ``ProtocolError`` values this package produces (device side).

    The numbers are positional in Device OS's enum; the source comments there are off by one
    from 21 on (two entries are both commented 21), so these are the real values.
    """

    NO_ERROR = 0
    PING_TIMEOUT = 1
    IO_ERROR = 2
    INVALID_STATE = 3
    MALFORMED_MESSAGE = 5
    DECRYPTION_ERROR = 6
    ENCRYPTION_ERROR = 7
    AUTHENTICATION_ERROR = 8
    MESSAGE_TIMEOUT = 10
    IO_ERROR_LIGHTSSL_BLOCKING_RECEIVE = 23
    IO_ERROR_LIGHTSSL_RECEIVE = 24
    IO_ERROR_LIGHTSSL_HANDSHAKE_NONCE = 25
    IO_ERROR_LIGHTSSL_HANDSHAKE_RECV_KEY = 26


class ProtocolViolation(FermionError):
    """The peer sent bytes this protocol does not allow; the connection must be closed.

    ``outcome`` is what the cloud records, ``protocol_error`` what a device would report.
    """

    def __init__(
        self,
        reason: str,
        outcome: Outcome = Outcome.MALFORMED,
        protocol_error: ProtocolError = ProtocolError.MALFORMED_MESSAGE,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.outcome = outcome
        self.protocol_error = protocol_error


@dataclass(frozen=True)
class Failure:
    """Event: the connection cannot continue; close it and record ``outcome``.

    The handshake's specific failures (``ServerKeyMismatch``, ``BadNonce``...) subclass it.
    """

    reason: str
    outcome: Outcome = Outcome.MALFORMED
    protocol_error: ProtocolError = ProtocolError.MALFORMED_MESSAGE

    @classmethod
    def from_violation(cls, violation: ProtocolViolation) -> Failure:
        return cls(violation.reason, violation.outcome, violation.protocol_error)


class _NeedData(Enum):
    NEED_DATA = "need_data"

    def __repr__(self) -> str:
        return "NEED_DATA"


# Returned by every ``next_event()`` when the buffered bytes do not yet make a whole event.
NEED_DATA = _NeedData.NEED_DATA
NeedData = _NeedData
