from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fermion.cloud.domain.keypolicy import parse_device_public_key, require_fits_device
from fermion.errors import KeyFormatError
from fermion.keys import (
    Algorithm,
    generate_device_key,
    generate_server_key,
    private_key_pem,
    public_key_pem,
)

RSA = generate_device_key(Algorithm.RSA)
EC = generate_device_key(Algorithm.EC)


def test_accepts_rsa_and_ec_public_keys() -> None:
    assert (
        parse_device_public_key(public_key_pem(RSA.public_key()).decode(), "rsa").algorithm
        is Algorithm.RSA
    )
    assert (
        parse_device_public_key(public_key_pem(EC.public_key()).decode(), "ecc").algorithm
        is Algorithm.EC
    )


def test_algorithm_defaults_to_rsa_like_particle_api_js() -> None:
    with pytest.raises(KeyFormatError, match="publicKey: is an ECC key but algorithm is rsa"):
        parse_device_public_key(public_key_pem(EC.public_key()).decode(), None)


def test_refuses_private_keys() -> None:
    with pytest.raises(KeyFormatError, match="publicKey: is a private key"):
        parse_device_public_key(private_key_pem(RSA).decode(), "rsa")


def test_refuses_wrong_rsa_size() -> None:
    big = generate_server_key(Algorithm.RSA)
    with pytest.raises(KeyFormatError, match="2048 bits; device keys are 1024-bit"):
        parse_device_public_key(public_key_pem(big.public_key()).decode(), "rsa")


def test_refuses_unknown_algorithm_name() -> None:
    with pytest.raises(KeyFormatError, match="algorithm: 'dsa' is not one of rsa, ecc"):
        parse_device_public_key(public_key_pem(RSA.public_key()).decode(), "dsa")


def test_key_must_fit_the_device_transport() -> None:
    key = parse_device_public_key(public_key_pem(EC.public_key()).decode(), "ecc")
    with pytest.raises(KeyFormatError, match=r"device abc \(TCP\) uses RSA keys"):
        require_fits_device(key, "abc", "tcp", "publicKey")
    require_fits_device(key, "abc", "udp", "publicKey")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_garbage_gives_a_named_error_never_a_traceback(text: str) -> None:
    with pytest.raises(KeyFormatError) as err:
        parse_device_public_key(text, "rsa")
    assert "publicKey" in str(err.value)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=30, max_value=200))  # into the base64 body
def test_truncated_pem_gives_a_named_error(cut: int) -> None:
    pem = public_key_pem(RSA.public_key()).decode()
    with pytest.raises(KeyFormatError, match="publicKey"):
        parse_device_public_key(pem[: len(pem) - cut], "rsa")
