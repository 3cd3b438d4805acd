"""Known-answer tests of the AES-128-CBC channel, expected bytes computed with AES directly."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fermion.errors import FermionError
from fermion.protocol.channel import Channel
from fermion.protocol.errors import ProtocolViolation
from fermion.protocol.handshake import Session

KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
IV = bytes.fromhex("101112131415161718191a1b1c1d1e1f")
SESSION = Session(KEY, IV, bytes(8))

DEVICE_TO_SERVER = [b"", b"0123456789abcdef", b"a message longer than one block, 41 bytes"]
SERVER_TO_DEVICE = [b"\x50\x02\x12\x34\xb1h", b"x" * 15, b"y" * 33]


def frames_by_hand(messages: list[bytes]) -> list[bytes]:
    """PKCS#7 (1..16 bytes), CBC from the session IV, next IV = FIRST block of the previous."""
    iv = IV
    frames = []
    for message in messages:
        pad = 16 - len(message) % 16
        padded = message + bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(KEY), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(padded) + encryptor.finalize()
        frames.append(len(ciphertext).to_bytes(2, "big") + ciphertext)
        iv = ciphertext[:16]
    return frames


@pytest.mark.parametrize("messages", [DEVICE_TO_SERVER, SERVER_TO_DEVICE])
def test_three_messages_encrypt_to_the_hand_computed_frames(messages):
    sender = Channel(SESSION)
    assert [sender.send(m) for m in messages] == frames_by_hand(messages)


def test_both_directions_chain_independently_and_decrypt():
    device, server = Channel(SESSION), Channel(SESSION)
    up, down = frames_by_hand(DEVICE_TO_SERVER), frames_by_hand(SERVER_TO_DEVICE)
    # Interleave the directions: each keeps its own IV chain from the same starting IV.
    for i in range(3):
        assert device.send(DEVICE_TO_SERVER[i]) == up[i]
        server.receive_data(up[i])
        assert server.next_message() == DEVICE_TO_SERVER[i]
        assert server.send(SERVER_TO_DEVICE[i]) == down[i]
        device.receive_data(down[i])
        assert device.next_message() == SERVER_TO_DEVICE[i]


def test_an_empty_message_is_a_whole_block_of_padding():
    frame = Channel(SESSION).send(b"")
    assert frame[:2] == b"\x00\x10" and len(frame) == 18


def test_frames_split_byte_by_byte_or_merged_arrive_whole():
    stream = b"".join(frames_by_hand(DEVICE_TO_SERVER))
    split = Channel(SESSION)
    got = []
    for byte in stream:
        split.receive_data(bytes((byte,)))
        while (message := split.next_message()) is not None:
            got.append(message)
    assert got == DEVICE_TO_SERVER

    merged = Channel(SESSION)
    merged.receive_data(stream)
    assert [merged.next_message() for _ in range(3)] == DEVICE_TO_SERVER
    assert merged.next_message() is None


def test_a_frame_longer_than_the_limit_is_refused_before_its_body_arrives():
    channel = Channel(SESSION, max_frame=64)
    channel.receive_data(b"\x00\x50")
    with pytest.raises(ProtocolViolation, match="longer than the limit of 64"):
        channel.next_message()


@pytest.mark.parametrize("length", [0, 15, 17])
def test_lengths_that_are_not_whole_blocks_are_refused(length):
    channel = Channel(SESSION)
    channel.receive_data(length.to_bytes(2, "big") + bytes(length))
    with pytest.raises(ProtocolViolation, match="multiple of 16"):
        channel.next_message()


def test_bad_padding_is_a_protocol_error_and_a_fermion_error():
    # A block encrypted under the right key whose last byte is not valid PKCS#7 padding.
    encryptor = Cipher(algorithms.AES(KEY), modes.CBC(IV)).encryptor()
    ciphertext = encryptor.update(b"A" * 15 + b"\x05") + encryptor.finalize()
    channel = Channel(SESSION)
    channel.receive_data(b"\x00\x10" + ciphertext)
    with pytest.raises(FermionError, match="padding"):
        channel.next_message()


def test_a_message_too_large_for_one_frame_is_refused_on_send():
    with pytest.raises(ValueError):
        Channel(SESSION).send(bytes(70000))
