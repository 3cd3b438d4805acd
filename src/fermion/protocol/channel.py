"""The AES-128-CBC channel that carries CoAP after the handshake (reference §1.3).

Frame: ``[len_hi][len_lo][ciphertext]``, ``len`` = ciphertext length, a non-zero multiple of 16.
Every message is padded with PKCS#7 (always 1..16 bytes) and encrypted on its own. The IV of the
next message in a direction is the *first* ciphertext block of the previous message in that
direction (not the last, as plain CBC chaining would have it); both directions start from the
session's IV.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fermion.protocol.errors import ProtocolViolation
from fermion.protocol.handshake import Session

BLOCK = 16
LENGTH_PREFIX = 2
MAX_FRAME_LIMIT = 0xFFF0  # the largest multiple of 16 a 2-byte length can carry
# Device OS 5.x announces a 960-byte maximum message; older firmware uses 640-800 byte buffers.
# A Describe can be the largest thing a device sends; 4 KiB leaves room and still bounds memory.
DEFAULT_MAX_FRAME = 4096


def pkcs7_pad(data: bytes) -> bytes:
    pad = BLOCK - len(data) % BLOCK
    return data + bytes([pad]) * pad


def pkcs7_unpad(data: bytes) -> bytes:
    """Strip PKCS#7 padding, checking every pad byte (Device OS only reads the last one)."""
    if not data or len(data) % BLOCK:
        raise ProtocolViolation("encrypted frame is not a whole number of AES blocks")
    pad = data[-1]
    if not 1 <= pad <= BLOCK or data[-pad:] != bytes([pad]) * pad:
        raise ProtocolViolation("encrypted frame has bad PKCS#7 padding (wrong session key?)")
    return data[:-pad]


class Channel:
    """One end of the encrypted channel; the same class serves device and server."""

    __slots__ = ("_algorithm", "_buffer", "_receive_iv", "_send_iv", "max_frame")

    def __init__(self, session: Session, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if not BLOCK <= max_frame <= MAX_FRAME_LIMIT:
            raise ValueError(f"max_frame must be within {BLOCK}..{MAX_FRAME_LIMIT}")
        self._algorithm = algorithms.AES(session.key)
        self._send_iv = session.iv
        self._receive_iv = session.iv
        self._buffer = bytearray()
        self.max_frame = max_frame

    def send(self, plaintext: bytes) -> bytes:
        """Encrypt one message and frame it; returns the bytes to write."""
        padded = pkcs7_pad(plaintext)
        if len(padded) > MAX_FRAME_LIMIT:
            raise ValueError(f"message of {len(plaintext)} bytes does not fit one frame")
        encryptor = Cipher(self._algorithm, modes.CBC(self._send_iv)).encryptor()
        ciphertext = encryptor.update(padded) + encryptor.finalize()
        self._send_iv = ciphertext[:BLOCK]
        return len(ciphertext).to_bytes(LENGTH_PREFIX, "big") + ciphertext

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)

    def next_message(self) -> bytes | None:
        """The next decrypted message, or ``None`` until a whole frame has arrived.

        Raises ``ProtocolViolation`` for a frame longer than ``max_frame``, a length that is not
        a non-zero multiple of 16, or bad padding. The length is checked before the frame's body
        arrives, so a hostile length costs no memory.
        """
        if len(self._buffer) < LENGTH_PREFIX:
            return None
        length = int.from_bytes(self._buffer[:LENGTH_PREFIX], "big")
        if length > self.max_frame:
            raise ProtocolViolation(
                f"frame of {length} bytes is longer than the limit of {self.max_frame}"
            )
        if length == 0 or length % BLOCK:
            raise ProtocolViolation(f"frame length {length} is not a non-zero multiple of 16")
        end = LENGTH_PREFIX + length
        if len(self._buffer) < end:
            return None
        ciphertext = bytes(self._buffer[LENGTH_PREFIX:end])
        del self._buffer[:end]
        decryptor = Cipher(self._algorithm, modes.CBC(self._receive_iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        self._receive_iv = ciphertext[:BLOCK]
        return pkcs7_unpad(padded)
