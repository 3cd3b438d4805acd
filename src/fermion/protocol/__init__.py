"""The Particle device protocol, sans-IO: bytes in, bytes and events out (like h11 for HTTP).

- ``handshake``: ``ServerHandshake`` / ``DeviceHandshake`` (the RSA handshake, reference §1.2)
- ``channel``: ``Channel`` (AES-128-CBC frames with Particle's IV rule, §1.3)
- ``coap``: ``Message`` codec and the message catalogue (§1.4, §5)
- ``connection``: ``ServerConnection`` / ``DeviceConnection`` tying the three together
- ``errors``: ``Outcome`` (what the cloud records), ``ProtocolError`` (Device OS numbers),
  ``ProtocolViolation`` (a ``FermionError``), ``Failure`` (the terminal event), ``NEED_DATA``

Nothing here opens a socket, awaits, or touches the store. See docs/protocol.md.
"""

from fermion.protocol.channel import Channel
from fermion.protocol.connection import DeviceConnection, ServerConnection
from fermion.protocol.errors import (
    NEED_DATA,
    Failure,
    Outcome,
    ProtocolError,
    ProtocolViolation,
)
from fermion.protocol.handshake import DeviceHandshake, ServerHandshake, Session

__all__ = [
    "NEED_DATA",
    "Channel",
    "DeviceConnection",
    "DeviceHandshake",
    "Failure",
    "Outcome",
    "ProtocolError",
    "ProtocolViolation",
    "ServerConnection",
    "ServerHandshake",
    "Session",
]
