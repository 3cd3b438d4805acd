"""The small shared rules: what a device id is, and what counts as this machine."""

import pytest

from fermion.ids import not_a_device_id, parse_device_id
from fermion.loopback import is_loopback


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0123456789abcdef01234567", "0123456789abcdef01234567"),
        ("  0123456789ABCDEF01234567\n", "0123456789abcdef01234567"),
        ("0123456789abcdef0123456", None),  # 23 digits
        ("0123456789abcdef012345678", None),  # 25 digits
        ("0123456789abcdef0123456g", None),
        ("0123456789abcdef0123456\u0662", None),  # a non-ASCII digit
        ("", None),
    ],
)
def test_parse_device_id(text: str, expected: str | None) -> None:
    assert parse_device_id(text) == expected


def test_refusal_names_the_field_and_cuts_hostile_input_short() -> None:
    message = not_a_device_id("device", "x" * 1000)
    assert message.startswith("device: 'xxx")
    assert message.endswith("is not a device id (24 hex digits)")
    assert len(message) < 100


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected
