"""What key a device may be given: pure checks on an uploaded key, with field-naming errors."""

from __future__ import annotations

from fermion.errors import KeyFormatError
from fermion.keys import Algorithm, LoadedKey, load_key, require_device_key_size

TRANSPORT_ALGORITHM = {"tcp": Algorithm.RSA, "udp": Algorithm.EC}
ALGORITHM_TRANSPORT = {Algorithm.RSA: "tcp", Algorithm.EC: "udp"}


def parse_device_public_key(
    text: str, algorithm: str | None, field: str = "publicKey"
) -> LoadedKey:
    """The uploaded key, checked: it parses, is public only, and is of the stated algorithm."""
    try:
        stated = Algorithm.parse(algorithm) if algorithm else Algorithm.RSA
    except KeyFormatError:
        raise KeyFormatError(f"algorithm: {algorithm!r} is not one of rsa, ecc") from None
    loaded = load_key(text.encode("utf-8", "replace"), field)
    if loaded.private is not None:
        raise KeyFormatError(
            f"{field}: is a private key; send only the public key (a private key never "
            "leaves the device)"
        )
    if loaded.algorithm is not stated:
        raise KeyFormatError(
            f"{field}: is an {loaded.algorithm.api_name.upper()} key but algorithm is "
            f"{stated.api_name}"
        )
    require_device_key_size(loaded, field)
    return loaded


def require_fits_device(loaded: LoadedKey, device_id: str, transport: str, field: str) -> None:
    """A TCP device takes RSA keys, a UDP device EC keys."""
    needed = TRANSPORT_ALGORITHM.get(transport, Algorithm.RSA)
    if loaded.algorithm is not needed:
        raise KeyFormatError(
            f"{field}: is an {loaded.algorithm.api_name.upper()} key but device {device_id} "
            f"({transport.upper()}) uses {needed.api_name.upper()} keys"
        )
