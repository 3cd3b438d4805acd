"""The Particle TCP (Gen 2, RSA) handshake as two sans-IO state machines.

Wire sequence (reference/particle-protocol.md §1.2)::

    server -> device   40-byte nonce (raw)
    device -> server   256 bytes: RSA-2048 PKCS#1 v1.5 of nonce(40) || id(12) [|| pubkey DER(162)]
    server -> device   384 bytes: RSA-1024 PKCS#1 v1.5 of session(40)  (128)
                                  || raw PKCS#1 v1.5 type-1 signature, no DigestInfo,
                                     over HMAC-SHA1(key=session, msg=those 128 bytes)  (256)

Both machines buffer whatever ``receive_data`` is given (a step may arrive split across reads)
and hand back bytes that arrived after their last step via ``trailing_data()``, so the
channel that follows starts exactly where the handshake ended.

RSA work per handshake, server side: one RSA-2048 decrypt (two while a rotation is in progress
and the device still holds the previous key), one RSA-1024 encrypt, one RSA-2048 sign. Keys are
passed in as loaded objects; nothing here parses a key.

OpenSSL 3.2+ applies *implicit rejection* to PKCS#1 v1.5 decryption: a block that does not
decrypt gives a pseudo-random plaintext instead of an error. So "can this key open the block"
is answered by "does the plaintext start with the nonce we sent", and a block that opens but
carries another nonce is recognised by its shape (the fixed DER header of the device key).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo

from fermion.errors import KeyFormatError
from fermion.keys import DEVICE_RSA_BITS, SERVER_RSA_BITS
from fermion.protocol.errors import NEED_DATA, Failure, NeedData, Outcome, ProtocolError

NONCE_SIZE = 40
DEVICE_ID_SIZE = 12
SESSION_SIZE = 40
DEVICE_BLOCK_SIZE = 256  # RSA-2048 ciphertext
SESSION_BLOCK_SIZE = 128  # RSA-1024 ciphertext
SIGNATURE_SIZE = 256
REPLY_SIZE = SESSION_BLOCK_SIZE + SIGNATURE_SIZE
SHORT_PLAINTEXT_SIZE = NONCE_SIZE + DEVICE_ID_SIZE  # the older form without the public key
DEVICE_PUBLIC_KEY_SIZE = 162
FULL_PLAINTEXT_SIZE = SHORT_PLAINTEXT_SIZE + DEVICE_PUBLIC_KEY_SIZE
HMAC_SIZE = 20
# A device is silent between its key block and the server's reply; allow one frame's worth.
DEFAULT_MAX_EARLY_DATA = 4096 + 2

# Device OS writes these 29 bytes, then 128 modulus bytes, then 02 03 01 00 01: the SPKI DER of an
# RSA-1024 key with e=65537 (DO-HS ``extract_public_rsa_key``).
DEVICE_PUBLIC_KEY_HEADER = bytes.fromhex(
    "30819f300d06092a864886f70d010101050003818d0030818902818100"
)
DEVICE_PUBLIC_KEY_TRAILER = bytes.fromhex("0203010001")
# Offset of the modulus inside a PKCS#1 RSAPrivateKey DER of a 1024-bit key.
_PKCS1_MODULUS_OFFSET = 11

RandomSource = Callable[[int], bytes]

_PKCS1 = padding.PKCS1v15()


@dataclass(frozen=True, slots=True)
class Session:
    """The 40 session bytes the server chose, split the way both ends use them."""

    key: bytes  # AES-128 key, session[0:16]
    iv: bytes  # initial IV of both directions, session[16:32]
    salt: bytes  # session[32:40]; seeds the device's CoAP message ids

    @classmethod
    def from_bytes(cls, material: bytes) -> Session:
        if len(material) != SESSION_SIZE:
            raise ValueError(f"session material is {len(material)} bytes, expected 40")
        return cls(key=material[:16], iv=material[16:32], salt=material[32:40])

    def to_bytes(self) -> bytes:
        return self.key + self.iv + self.salt

    @property
    def first_message_id(self) -> int:
        """The device's message-id counter before its first message (salt[0:2], little-endian).

        Device OS does ``*(uint16_t*)salt`` on a little-endian ARM; each message it sends then
        carries ``++counter``, so its Hello has this value plus one.
        """
        return int.from_bytes(self.salt[:2], "little")

    def __repr__(self) -> str:  # never print key material
        return "Session(<40 bytes>)"


# ---------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True, slots=True)
class DeviceIdentified:
    """The server opened the device's block; the caller now chooses the key to answer with."""

    device_id: bytes
    presented_public_key_der: bytes | None
    used_previous_server_key: bool

    @property
    def device_id_hex(self) -> str:
        return self.device_id.hex()


@dataclass(frozen=True)
class NonceReceived:
    """The device has the server's nonce; call ``DeviceHandshake.identify()`` to answer."""

    nonce: bytes


@dataclass(frozen=True)
class SessionEstablished:
    """The device checked the server's reply; both ends now hold ``session``."""

    session: Session


@dataclass(frozen=True)
class ServerKeyMismatch(Failure):
    """No server key we hold opens the block: the device has another cloud's public key."""

    outcome: Outcome = Outcome.SERVER_KEY_MISMATCH


@dataclass(frozen=True)
class BadNonce(Failure):
    """The block opens but echoes another nonce (a replayed block)."""

    outcome: Outcome = Outcome.BAD_NONCE


@dataclass(frozen=True)
class Malformed(Failure):
    """Bytes of the wrong size or shape."""

    outcome: Outcome = Outcome.MALFORMED


@dataclass(frozen=True)
class PeerClosed(Failure):
    """The peer hung up before sending what this step needs."""

    outcome: Outcome = Outcome.DISCONNECTED
    protocol_error: ProtocolError = ProtocolError.IO_ERROR


@dataclass(frozen=True)
class SessionKeyUndecryptable(Failure):
    """Device side: the session block is not for this device key (Device OS error 6)."""

    outcome: Outcome = Outcome.KEY_MISMATCH
    protocol_error: ProtocolError = ProtocolError.DECRYPTION_ERROR


@dataclass(frozen=True)
class ServerSignatureInvalid(Failure):
    """Device side: the reply is not signed by the server key we hold (Device OS error 8)."""

    outcome: Outcome = Outcome.SERVER_KEY_MISMATCH
    protocol_error: ProtocolError = ProtocolError.AUTHENTICATION_ERROR


ServerHandshakeEvent = DeviceIdentified | Failure | NeedData
DeviceHandshakeEvent = NonceReceived | SessionEstablished | Failure | NeedData


class HandshakeState(Enum):
    SEND_NONCE = auto()  # server: initiate() not called yet
    AWAIT_NONCE = auto()  # device
    NONCE_RECEIVED = auto()  # device: identify() not called yet
    AWAIT_BLOCK = auto()  # server
    IDENTIFIED = auto()  # server: accept() not called yet
    AWAIT_REPLY = auto()  # device
    DONE = auto()
    FAILED = auto()


class HandshakeStateError(RuntimeError):
    """A method was called in a state where it makes no sense (a bug in the caller)."""


def session_signature_input(session_block: bytes, material: bytes) -> bytes:
    """HMAC-SHA1 keyed with the 40 session bytes over the 128-byte session block."""
    return hmac.new(material, session_block, hashlib.sha1).digest()


def device_public_key_block(private_key_der: bytes) -> bytes:
    """The 162 bytes Device OS sends for its key, built the way it builds them.

    Device OS does no ASN.1 parsing: it copies 128 bytes from offset 11 of whatever sits in the
    private-key slot between a fixed header and exponent. A non-RSA or corrupt slot therefore
    gives a well-shaped but wrong "RSA" key, which is exactly what a simulator must reproduce.
    """
    modulus = private_key_der[_PKCS1_MODULUS_OFFSET : _PKCS1_MODULUS_OFFSET + 128]
    modulus = modulus.ljust(128, b"\xff")  # an erased slot reads as 0xFF
    return DEVICE_PUBLIC_KEY_HEADER + modulus + DEVICE_PUBLIC_KEY_TRAILER


def _looks_like_device_plaintext(plaintext: bytes) -> bool:
    """Whether a plaintext has the shape a device block has (as opposed to decryption noise)."""
    if len(plaintext) == SHORT_PLAINTEXT_SIZE:
        return True
    return (
        len(plaintext) == FULL_PLAINTEXT_SIZE
        and plaintext[SHORT_PLAINTEXT_SIZE : SHORT_PLAINTEXT_SIZE + len(DEVICE_PUBLIC_KEY_HEADER)]
        == DEVICE_PUBLIC_KEY_HEADER
    )


class ServerHandshake:
    """Server side: send a nonce, open the device's block, answer with the session key.

    ``server_key`` is the current RSA-2048 private key; ``previous_server_key`` the one being
    rotated out (devices that still hold its public key are accepted and told so through
    ``DeviceIdentified.used_previous_server_key``). ``random`` is injectable for tests.

    A device sends nothing after its block until it has the reply, so bytes beyond the block
    are passed on to the channel (``trailing_data``) but bounded by ``max_early_data``: more
    than that before ``accept`` is a ``Malformed`` failure, not a growing buffer.
    """

    __slots__ = (
        "_buffer",
        "_eof",
        "_keys",
        "_max_early_data",
        "_nonce",
        "_random",
        "_signing_key",
        "failure",
        "identified",
        "session",
        "state",
    )

    def __init__(
        self,
        server_key: rsa.RSAPrivateKey,
        previous_server_key: rsa.RSAPrivateKey | None = None,
        *,
        random: RandomSource = os.urandom,
        max_early_data: int = DEFAULT_MAX_EARLY_DATA,
    ) -> None:
        self._keys = [server_key]
        if previous_server_key is not None:
            self._keys.append(previous_server_key)
        for key in self._keys:
            # Devices read exactly 256 bytes of signature and encrypt to a 256-byte modulus.
            if getattr(key, "key_size", None) != SERVER_RSA_BITS:
                raise KeyFormatError(
                    f"server key: the TCP handshake needs an RSA-2048 key, this one has "
                    f"{getattr(key, 'key_size', None)} bits"
                )
        self._random = random
        self._max_early_data = max_early_data
        self._buffer = bytearray()
        self._eof = False
        self._nonce = b""
        self._signing_key: rsa.RSAPrivateKey = server_key
        self.state = HandshakeState.SEND_NONCE
        self.session: Session | None = None
        self.identified: DeviceIdentified | None = None
        self.failure: Failure | None = None

    def initiate(self) -> bytes:
        """The 40-byte nonce to write first."""
        if self.state is not HandshakeState.SEND_NONCE:
            raise HandshakeStateError(f"initiate() in state {self.state.name}")
        self._nonce = self._random(NONCE_SIZE)
        if len(self._nonce) != NONCE_SIZE:
            raise ValueError("random source returned the wrong number of bytes")
        self.state = HandshakeState.AWAIT_BLOCK
        return self._nonce

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the device; ``b""`` means the device closed its side."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    def trailing_data(self) -> bytes:
        """Bytes that arrived after the 256-byte block (the start of the encrypted channel)."""
        if self.state is HandshakeState.AWAIT_BLOCK:
            return b""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    def next_event(self) -> ServerHandshakeEvent:
        if self.state is HandshakeState.AWAIT_BLOCK:
            if len(self._buffer) >= DEVICE_BLOCK_SIZE:
                block = bytes(self._buffer[:DEVICE_BLOCK_SIZE])
                del self._buffer[:DEVICE_BLOCK_SIZE]
                return self._settle(self._open(block))
            if self._eof:
                if not self._buffer:
                    return self._settle(PeerClosed("device closed before sending its key block"))
                return self._settle(
                    Malformed(
                        f"key block truncated: device sent {len(self._buffer)} of "
                        f"{DEVICE_BLOCK_SIZE} bytes, then closed"
                    )
                )
        elif self.state is HandshakeState.IDENTIFIED and len(self._buffer) > self._max_early_data:
            return self._settle(
                Malformed(
                    f"device sent {len(self._buffer)} bytes after its key block, "
                    "before the server's reply"
                )
            )
        return NEED_DATA

    def _settle(self, event: DeviceIdentified | Failure) -> DeviceIdentified | Failure:
        if isinstance(event, Failure):
            self.state = HandshakeState.FAILED
            self.failure = event
        else:
            self.state = HandshakeState.IDENTIFIED
            self.identified = event
        return event

    def _open(self, block: bytes) -> DeviceIdentified | Failure:
        opened: list[bytes] = []
        for index, key in enumerate(self._keys):
            try:
                plaintext = key.decrypt(block, _PKCS1)
            except ValueError:
                # Explicit rejection (an OpenSSL without implicit rejection, or a block whose
                # integer value is not below the modulus).
                continue
            if hmac.compare_digest(plaintext[:NONCE_SIZE], self._nonce):
                if len(plaintext) < SHORT_PLAINTEXT_SIZE:
                    return Malformed(
                        f"key block plaintext is {len(plaintext)} bytes, "
                        f"too small for nonce and device id ({SHORT_PLAINTEXT_SIZE})"
                    )
                self._signing_key = key
                device_id = plaintext[NONCE_SIZE:SHORT_PLAINTEXT_SIZE]
                presented = plaintext[SHORT_PLAINTEXT_SIZE:] or None
                return DeviceIdentified(device_id, presented, used_previous_server_key=index > 0)
            opened.append(plaintext)
        if any(_looks_like_device_plaintext(p) for p in opened):
            return BadNonce("key block echoes a nonce this connection did not send (replayed)")
        return ServerKeyMismatch(
            "key block does not open with the server key"
            + ("s" if len(self._keys) > 1 else "")
            + " (the device holds another cloud's public key, or sent garbage)"
        )

    def accept(self, device_public_key: rsa.RSAPublicKey) -> bytes:
        """Answer the identified device, encrypting the session key to ``device_public_key``.

        Returns the 384 bytes to write. ``self.session`` then holds the channel's keys.
        """
        if self.state is not HandshakeState.IDENTIFIED:
            raise HandshakeStateError(f"accept() in state {self.state.name}")
        # Duck-typed on purpose: callers (and tests counting RSA operations) may wrap the key.
        size = getattr(device_public_key, "key_size", None)
        if size != DEVICE_RSA_BITS:
            raise KeyFormatError(
                f"device key: the TCP handshake needs an RSA-1024 key, this one has {size} bits"
            )
        material = self._random(SESSION_SIZE)
        session_block = device_public_key.encrypt(material, _PKCS1)
        digest = session_signature_input(session_block, material)
        signature = self._signing_key.sign(digest, _PKCS1, NoDigestInfo())
        self.session = Session.from_bytes(material)
        self.state = HandshakeState.DONE
        return session_block + signature

    def reject(self, failure: Failure) -> None:
        """Give up on an identified device (unknown id, refused key); nothing is sent."""
        self.state = HandshakeState.FAILED
        self.failure = failure


class DeviceHandshake:
    """Device side: read the nonce, send the key block, check the server's reply.

    ``public_key_der`` overrides the 162 bytes sent for the device key (a simulator passes
    ``device_public_key_block(slot)`` to send what a corrupt slot would give); with
    ``send_public_key=False`` the device sends the older 52-byte form.
    """

    __slots__ = (
        "_buffer",
        "_device_id",
        "_device_key",
        "_eof",
        "_nonce",
        "_public_key_der",
        "_server_key",
        "failure",
        "session",
        "state",
    )

    def __init__(
        self,
        device_key: rsa.RSAPrivateKey,
        device_id: bytes,
        server_public_key: rsa.RSAPublicKey,
        *,
        public_key_der: bytes | None = None,
        send_public_key: bool = True,
    ) -> None:
        if len(device_id) != DEVICE_ID_SIZE:
            raise ValueError(f"device id is {len(device_id)} bytes, expected {DEVICE_ID_SIZE}")
        self._device_key = device_key
        self._device_id = device_id
        self._server_key = server_public_key
        if not send_public_key:
            self._public_key_der = b""
        elif public_key_der is not None:
            self._public_key_der = public_key_der
        else:
            self._public_key_der = device_key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        self._buffer = bytearray()
        self._eof = False
        self._nonce = b""
        self.state = HandshakeState.AWAIT_NONCE
        self.session: Session | None = None
        self.failure: Failure | None = None

    def receive_data(self, data: bytes) -> None:
        if data:
            self._buffer += data
        else:
            self._eof = True

    def trailing_data(self) -> bytes:
        """Bytes that arrived after the 384-byte reply."""
        if self.state is not HandshakeState.DONE:
            return b""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    def next_event(self) -> DeviceHandshakeEvent:
        if self.state is HandshakeState.AWAIT_NONCE:
            if len(self._buffer) >= NONCE_SIZE:
                self._nonce = bytes(self._buffer[:NONCE_SIZE])
                del self._buffer[:NONCE_SIZE]
                self.state = HandshakeState.NONCE_RECEIVED
                return NonceReceived(self._nonce)
            if self._eof:
                return self._fail(
                    PeerClosed(
                        "server closed before sending its nonce",
                        protocol_error=ProtocolError.IO_ERROR_LIGHTSSL_HANDSHAKE_NONCE,
                    )
                )
        elif self.state is HandshakeState.AWAIT_REPLY:
            if len(self._buffer) >= REPLY_SIZE:
                reply = bytes(self._buffer[:REPLY_SIZE])
                del self._buffer[:REPLY_SIZE]
                return self._check_reply(reply)
            if self._eof:
                return self._fail(
                    PeerClosed(
                        "server closed before sending the session key block",
                        protocol_error=ProtocolError.IO_ERROR_LIGHTSSL_HANDSHAKE_RECV_KEY,
                    )
                )
        return NEED_DATA

    def identify(self) -> bytes:
        """The 256-byte key block to write after the nonce."""
        if self.state is not HandshakeState.NONCE_RECEIVED:
            raise HandshakeStateError(f"identify() in state {self.state.name}")
        plaintext = self._nonce + self._device_id + self._public_key_der
        block = self._server_key.encrypt(plaintext, _PKCS1)
        self.state = HandshakeState.AWAIT_REPLY
        return block

    def _fail(self, failure: Failure) -> Failure:
        self.state = HandshakeState.FAILED
        self.failure = failure
        return failure

    def _check_reply(self, reply: bytes) -> SessionEstablished | Failure:
        session_block = reply[:SESSION_BLOCK_SIZE]
        signature = reply[SESSION_BLOCK_SIZE:]
        try:
            material: bytes | None = self._device_key.decrypt(session_block, _PKCS1)
        except ValueError:
            material = None
        if material is None or len(material) != SESSION_SIZE:
            return self._fail(
                SessionKeyUndecryptable("session key block does not decrypt with the device key")
            )
        try:
            signed = self._server_key.recover_data_from_signature(signature, _PKCS1, None)
        except (InvalidSignature, ValueError):
            return self._fail(
                ServerSignatureInvalid("session key block is not signed by the server key we hold")
            )
        if not hmac.compare_digest(signed, session_signature_input(session_block, material)):
            # The server key did sign this reply, so the signature is genuine; the HMAC then
            # disagrees only because ``material`` is implicit-rejection noise: the session key
            # was encrypted to another device key (Device OS fails the decrypt there: error 6).
            return self._fail(
                SessionKeyUndecryptable("session key block does not decrypt with the device key")
            )
        self.session = Session.from_bytes(material)
        self.state = HandshakeState.DONE
        return SessionEstablished(self.session)
