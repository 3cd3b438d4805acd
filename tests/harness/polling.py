"""Waiting for something a separate process does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], what: str, timeout: float = 60, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy, and return that. The timeout only
    bounds a hung test (the machine is shared and slow); it asserts no speed."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what} (last: {found!r})")
        time.sleep(interval)
