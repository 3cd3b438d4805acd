"""Numbers typed by people: only ASCII digits are numbers (str.isdigit() admits '²', which
int() refuses, and '٣', which it reads as 3)."""

from __future__ import annotations

import pytest

from fermion.cloud.domain.platforms import platform
from fermion.cloud.store.queries import _as_product_id
from fermion.errors import FermionError


@pytest.mark.parametrize("text", ["²", "٣", "１"])
def test_unicode_digits_are_not_platform_ids(text: str) -> None:
    with pytest.raises(FermionError, match="platform"):
        platform(text)


@pytest.mark.parametrize("text", ["²", "٣", "１", "1234567890", ""])
def test_unicode_digits_are_not_product_ids(text: str) -> None:
    assert _as_product_id(text) is None


def test_ascii_digits_are() -> None:
    assert platform("6").name == "photon"
    assert _as_product_id("42") == 42
