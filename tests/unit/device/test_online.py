"""The simulator's ``--cloud`` address: loopback only, with Device OS's default port."""

from __future__ import annotations

import pytest

from fermion.device.online import parse_cloud
from fermion.errors import DeviceError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5999", ("127.0.0.1", 5999)),
        ("localhost", ("localhost", 5683)),
        ("[::1]:6000", ("::1", 6000)),
    ],
)
def test_cloud_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_cloud(text) == expected


@pytest.mark.parametrize(
    "text", ["device.spark.io:5683", "8.8.8.8:5683", "127.0.0.1:x", "::1:70000"]
)
def test_cloud_addresses_refused(text: str) -> None:
    with pytest.raises(DeviceError):
        parse_cloud(text)
