"""Random, truncated and garbage input to the key parsers: a clear error, never a traceback."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fermion.errors import FermionError
from fermion.keys import Algorithm, generate_device_key, load_key, private_key_der, public_key_pem
from fermion.keys.serverfile import decode_address_block, decode_server_key_file

_RSA = generate_device_key(Algorithm.RSA)
_EC = generate_device_key(Algorithm.EC)
VALID = [private_key_der(_RSA), private_key_der(_EC), public_key_pem(_RSA.public_key())]

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parses_or_fails_cleanly(parser, data: bytes) -> None:  # type: ignore[no-untyped-def]
    try:
        parser(data, "fuzz-input")
    except FermionError as exc:
        message = str(exc)
        assert "fuzz-input" in message
        assert "\n" not in message


@FUZZ
@given(st.binary(max_size=2048))
def test_load_key_on_garbage(data: bytes) -> None:
    _parses_or_fails_cleanly(load_key, data)


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_load_key_on_truncated_and_flipped(valid: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(valid)))
    _parses_or_fails_cleanly(load_key, valid[:cut])
    position = data.draw(st.integers(0, len(valid) - 1))
    flipped = bytearray(valid)
    flipped[position] ^= data.draw(st.integers(1, 255))
    _parses_or_fails_cleanly(load_key, bytes(flipped))


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=600),
        st.binary(min_size=320, max_size=320),
        st.binary(min_size=512, max_size=512),
    )
)
def test_server_key_file_on_garbage(data: bytes) -> None:
    _parses_or_fails_cleanly(decode_server_key_file, data)


@FUZZ
@given(st.binary(min_size=128, max_size=128))
def test_address_block_never_crashes(block: bytes) -> None:
    address = decode_address_block(block)
    if address is not None:
        assert address.host
