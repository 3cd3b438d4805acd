"""Known-answer tests of the RSA handshake, built by hand from the reference's byte layout.

Every expected value here is computed with ``cryptography`` and integer math directly, never
with Fermion's own encoders, so an encoder bug cannot hide behind a matching decoder.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fermion.errors import FermionError
from fermion.protocol import NEED_DATA, Outcome, ProtocolError
from fermion.protocol.handshake import (
    BadNonce,
    DeviceHandshake,
    DeviceIdentified,
    HandshakeState,
    Malformed,
    NonceReceived,
    PeerClosed,
    ServerHandshake,
    ServerKeyMismatch,
    ServerSignatureInvalid,
    Session,
    SessionEstablished,
    SessionKeyUndecryptable,
    device_public_key_block,
)

NONCE = bytes.fromhex(
    "5a1e00c0ffee0123456789abcdeffedcba98765432100f1e2d3c4b5a69788796a5b4c3d2e1f00011"
)
DEVICE_ID = bytes.fromhex("3a0038000747343337373738")
SESSION = bytes.fromhex(
    "000102030405060708090a0b0c0d0e0f"  # AES key
    "101112131415161718191a1b1c1d1e1f"  # IV
    "3412a1a2a3a4a5a6"  # salt: counter starts at 0x1234 (little-endian)
)
SPKI_RSA1024_HEADER = bytes.fromhex("30819f300d06092a864886f70d010101050003818d0030818902818100")


def device_key_der_by_hand(key: rsa.RSAPrivateKey) -> bytes:
    """The 162 bytes Device OS sends: fixed header, 128 modulus bytes, 02 03 01 00 01."""
    n = key.public_key().public_numbers().n
    return SPKI_RSA1024_HEADER + n.to_bytes(128, "big") + bytes.fromhex("0203010001")


def encrypt_to(key: rsa.RSAPrivateKey, plaintext: bytes) -> bytes:
    return key.public_key().encrypt(plaintext, padding.PKCS1v15())


def raw_signature_by_hand(key: rsa.RSAPrivateKey, digest: bytes) -> bytes:
    """PKCS#1 v1.5 type-1 block with no DigestInfo, raised to d: 00 01 FF.. 00 || digest."""
    numbers = key.private_numbers()
    block = b"\x00\x01" + b"\xff" * (256 - 3 - len(digest)) + b"\x00" + digest
    return pow(int.from_bytes(block, "big"), numbers.d, numbers.public_numbers.n).to_bytes(
        256, "big"
    )


def open_signature_by_hand(public: rsa.RSAPublicKey, signature: bytes) -> bytes:
    numbers = public.public_numbers()
    return pow(int.from_bytes(signature, "big"), numbers.e, numbers.n).to_bytes(256, "big")


def identified(server: ServerHandshake, block: bytes) -> object:
    server.receive_data(block)
    return server.next_event()


# ---------------------------------------------------------------------------------------------
# Server side


def test_server_accepts_a_hand_built_block_and_its_reply_decodes_to_the_expected_fields(
    server_key, device_key, script
):
    server = ServerHandshake(server_key, random=script(NONCE, SESSION))
    assert server.initiate() == NONCE

    presented = device_key_der_by_hand(device_key)
    assert presented == device_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    plaintext = NONCE + DEVICE_ID + presented
    assert len(plaintext) == 214
    event = identified(server, encrypt_to(server_key, plaintext))

    assert event == DeviceIdentified(DEVICE_ID, presented, used_previous_server_key=False)
    assert event.device_id_hex == "3a0038000747343337373738"

    reply = server.accept(device_key.public_key())
    assert len(reply) == 384
    session_block, signature = reply[:128], reply[128:]
    assert device_key.decrypt(session_block, padding.PKCS1v15()) == SESSION
    expected_hmac = hmac.new(SESSION, session_block, hashlib.sha1).digest()
    opened = open_signature_by_hand(server_key.public_key(), signature)
    assert opened == b"\x00\x01" + b"\xff" * 233 + b"\x00" + expected_hmac
    # The signature is deterministic, so it must equal the one computed with the private
    # exponent by hand, byte for byte.
    assert signature == raw_signature_by_hand(server_key, expected_hmac)

    assert server.session == Session(SESSION[:16], SESSION[16:32], SESSION[32:])
    assert server.session.first_message_id == 0x1234
    assert server.state is HandshakeState.DONE


def test_server_accepts_the_older_52_byte_form_without_a_key(server_key, device_key, script):
    server = ServerHandshake(server_key, random=script(NONCE, SESSION))
    server.initiate()
    event = identified(server, encrypt_to(server_key, NONCE + DEVICE_ID))
    assert event == DeviceIdentified(DEVICE_ID, None, used_previous_server_key=False)
    reply = server.accept(device_key.public_key())
    assert device_key.decrypt(reply[:128], padding.PKCS1v15()) == SESSION


def test_server_accepts_a_device_on_the_previous_key_and_signs_with_it(
    server_key, previous_server_key, device_key, script
):
    server = ServerHandshake(server_key, previous_server_key, random=script(NONCE, SESSION))
    server.initiate()
    block = encrypt_to(previous_server_key, NONCE + DEVICE_ID + device_key_der_by_hand(device_key))
    event = identified(server, block)
    assert isinstance(event, DeviceIdentified)
    assert event.used_previous_server_key is True
    reply = server.accept(device_key.public_key())
    expected_hmac = hmac.new(SESSION, reply[:128], hashlib.sha1).digest()
    assert reply[128:] == raw_signature_by_hand(previous_server_key, expected_hmac)


def test_block_for_another_clouds_key_is_a_server_key_mismatch(
    server_key, previous_server_key, other_cloud_key, device_key, script
):
    server = ServerHandshake(server_key, previous_server_key, random=script(NONCE))
    server.initiate()
    block = encrypt_to(other_cloud_key, NONCE + DEVICE_ID + device_key_der_by_hand(device_key))
    event = identified(server, block)
    assert isinstance(event, ServerKeyMismatch)
    assert event.outcome is Outcome.SERVER_KEY_MISMATCH
    assert server.state is HandshakeState.FAILED


def test_replayed_block_is_a_bad_nonce(server_key, device_key, script):
    other_nonce = bytes(40)
    server = ServerHandshake(server_key, random=script(NONCE))
    server.initiate()
    block = encrypt_to(server_key, other_nonce + DEVICE_ID + device_key_der_by_hand(device_key))
    event = identified(server, block)
    assert isinstance(event, BadNonce)
    assert event.outcome is Outcome.BAD_NONCE


def test_plaintext_too_small_for_an_id_is_malformed(server_key, script):
    server = ServerHandshake(server_key, random=script(NONCE))
    server.initiate()
    event = identified(server, encrypt_to(server_key, NONCE + DEVICE_ID[:5]))
    assert isinstance(event, Malformed)
    assert "too small" in event.reason


def test_truncated_block_then_hangup_is_malformed_and_silence_is_peer_closed(server_key):
    server = ServerHandshake(server_key)
    server.initiate()
    server.receive_data(b"\x01" * 100)
    assert server.next_event() is NEED_DATA
    server.receive_data(b"")
    event = server.next_event()
    assert isinstance(event, Malformed)
    assert "100 of 256" in event.reason

    quiet = ServerHandshake(server_key)
    quiet.initiate()
    quiet.receive_data(b"")
    assert isinstance(quiet.next_event(), PeerClosed)


def test_block_split_into_single_bytes_and_followed_by_channel_bytes(
    server_key, device_key, script
):
    server = ServerHandshake(server_key, random=script(NONCE, SESSION))
    server.initiate()
    block = encrypt_to(server_key, NONCE + DEVICE_ID + device_key_der_by_hand(device_key))
    for byte in block[:-1]:
        server.receive_data(bytes((byte,)))
        assert server.next_event() is NEED_DATA
    server.receive_data(block[-1:] + b"\x00\x10early")
    assert isinstance(server.next_event(), DeviceIdentified)
    server.accept(device_key.public_key())
    assert server.trailing_data() == b"\x00\x10early"


def test_accept_refuses_a_key_the_device_cannot_use(server_key, script):
    server = ServerHandshake(server_key, random=script(NONCE))
    server.initiate()
    identified(server, encrypt_to(server_key, NONCE + DEVICE_ID))
    with pytest.raises(FermionError, match="RSA-1024"):
        server.accept(server_key.public_key())


class Counting:
    """Wraps a key and counts the RSA operations the state machine asks of it."""

    def __init__(self, key: object, counts: dict[str, int]) -> None:
        self._key, self._counts = key, counts

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self._key, name)
        if name in {"decrypt", "sign", "encrypt"}:

            def counted(*args: object) -> object:
                self._counts[name] = self._counts.get(name, 0) + 1
                return attribute(*args)

            return counted
        return attribute


def test_server_does_exactly_one_decrypt_one_sign_and_one_encrypt(
    server_key, previous_server_key, device_key
):
    counts: dict[str, int] = {}
    server = ServerHandshake(Counting(server_key, counts), Counting(previous_server_key, counts))  # type: ignore[arg-type]
    nonce = server.initiate()
    identified(server, encrypt_to(server_key, nonce + DEVICE_ID))
    server.accept(Counting(device_key.public_key(), counts))  # type: ignore[arg-type]
    assert counts == {"decrypt": 1, "sign": 1, "encrypt": 1}


# ---------------------------------------------------------------------------------------------
# Device side


def server_reply_by_hand(server_key: rsa.RSAPrivateKey, device_public: rsa.RSAPublicKey) -> bytes:
    session_block = device_public.encrypt(SESSION, padding.PKCS1v15())
    digest = hmac.new(SESSION, session_block, hashlib.sha1).digest()
    return session_block + raw_signature_by_hand(server_key, digest)


def device_after_nonce(device_key, server_key) -> tuple[DeviceHandshake, bytes]:
    device = DeviceHandshake(device_key, DEVICE_ID, server_key.public_key())
    device.receive_data(NONCE)
    assert device.next_event() == NonceReceived(NONCE)
    return device, device.identify()


def test_device_block_carries_nonce_id_and_key_and_a_hand_built_reply_gives_the_session(
    server_key, device_key
):
    device, block = device_after_nonce(device_key, server_key)
    assert len(block) == 256
    assert server_key.decrypt(block, padding.PKCS1v15()) == (
        NONCE + DEVICE_ID + device_key_der_by_hand(device_key)
    )
    reply = server_reply_by_hand(server_key, device_key.public_key())
    for byte in reply[:200]:
        device.receive_data(bytes((byte,)))
    assert device.next_event() is NEED_DATA
    device.receive_data(reply[200:])
    event = device.next_event()
    assert isinstance(event, SessionEstablished)
    assert event.session.to_bytes() == SESSION


def test_device_sends_the_short_form_or_a_blindly_copied_key(server_key, device_key):
    short = DeviceHandshake(device_key, DEVICE_ID, server_key.public_key(), send_public_key=False)
    short.receive_data(NONCE)
    short.next_event()
    assert server_key.decrypt(short.identify(), padding.PKCS1v15()) == NONCE + DEVICE_ID

    pkcs1 = device_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert device_public_key_block(pkcs1) == device_key_der_by_hand(device_key)
    # An erased slot (all 0xFF) gives the fixed header around 0xFF bytes, as on a device.
    assert device_public_key_block(b"\xff" * 612)[29:157] == b"\xff" * 128


def test_reply_for_another_device_key_is_decryption_error_6(
    server_key, device_key, other_device_key
):
    device, _ = device_after_nonce(device_key, server_key)
    device.receive_data(server_reply_by_hand(server_key, other_device_key.public_key()))
    event = device.next_event()
    assert isinstance(event, SessionKeyUndecryptable)
    assert event.protocol_error == ProtocolError.DECRYPTION_ERROR == 6


def test_reply_signed_by_another_cloud_is_authentication_error_8(
    server_key, other_cloud_key, device_key
):
    device, _ = device_after_nonce(device_key, server_key)
    device.receive_data(server_reply_by_hand(other_cloud_key, device_key.public_key()))
    event = device.next_event()
    assert isinstance(event, ServerSignatureInvalid)
    assert event.protocol_error == ProtocolError.AUTHENTICATION_ERROR == 8


def test_hangup_before_the_key_block_is_error_26(server_key, device_key):
    device, _ = device_after_nonce(device_key, server_key)
    device.receive_data(b"\x00" * 100)
    device.receive_data(b"")
    event = device.next_event()
    assert isinstance(event, PeerClosed)
    assert event.protocol_error == ProtocolError.IO_ERROR_LIGHTSSL_HANDSHAKE_RECV_KEY == 26


def test_a_server_key_of_the_wrong_size_is_refused_up_front(device_key):
    with pytest.raises(FermionError, match="RSA-2048"):
        ServerHandshake(device_key)
