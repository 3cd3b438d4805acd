"""Particle's login limit: 10 consecutive failures from one address block it for 30 minutes.

Kept in the process: each ``fermion serve --workers`` process and each node counts its own
failures, so an attacker whose connections land on n processes gets at most 10*n tries per
block period (docs/scaling.md); still far from a useful guess rate against argon2id-hashed
passwords.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_FAILURES = 10
BLOCK_SECONDS = 30 * 60
_MAX_TRACKED = 100_000


@dataclass
class _Entry:
    failures: int = 0
    blocked_until: float = 0.0


class LoginLimiter:
    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        block_seconds: float = BLOCK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.block_seconds = block_seconds
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try again; 0 when it may now."""
        entry = self._entries.get(address)
        if entry is None:
            return 0
        left = entry.blocked_until - self._clock()
        if left <= 0:
            if entry.blocked_until:
                del self._entries[address]  # the block ran out: start counting afresh
            return 0
        return math.ceil(left)

    def failed(self, address: str) -> None:
        if len(self._entries) >= _MAX_TRACKED and address not in self._entries:
            self._evict()
        entry = self._entries.setdefault(address, _Entry())
        entry.failures += 1
        if entry.failures >= self.max_failures:
            entry.blocked_until = self._clock() + self.block_seconds

    def succeeded(self, address: str) -> None:
        self._entries.pop(address, None)

    def _evict(self) -> None:
        now = self._clock()
        for addr in [a for a, e in self._entries.items() if e.blocked_until < now]:
            del self._entries[addr]
