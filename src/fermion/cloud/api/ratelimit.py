"""Particle's login limit (10 failures, then 30 minutes blocked), per address and per account.

An attempt counts when it starts, not when its argon2 check ends: ``begin`` reserves a place
under the address's limit and ``Attempt.account`` one under the account's, before any
verification runs, so 60 concurrent guesses from one address get at most 10 checks between them
(the others are refused at once), and at most ``MAX_RUNNING_PER_ADDRESS`` of one address run at
once, so that one address never fills the argon2 queue. A finished attempt turns its
reservation into a failure, or into a success that clears the address's count and that
account's count; one that was not checked (refused, argon2 queue full) gives its place back.

Two counters, because one is not enough:

- the address: 10 consecutive failures from it block it (a success from it starts it again, as
  Particle's does for an office behind one NAT);
- the account (``user:<email>``, ``customer:<product>:<email>``, ``client:<client id>``, named
  whether or not the account exists, so a refusal tells nothing about existence): 10 failures on
  it, from any addresses, block password logins to it; only a success on that same account
  clears it. Guessing at a victim and logging in to one's own account in between resets the
  address's count, not the victim's.

Blocking an account is what stops guessing spread over many addresses; its price is that anyone
can keep an account's password logins blocked by failing 10 times in 30 minutes. Tokens already
issued keep working, and the block lifts on its own.

Kept in the process: each ``fermion serve --workers`` process and each node counts its own
attempts, so an attacker whose connections land on n processes gets at most 10*n tries per
block period (docs/scaling.md; issue #15 makes it cluster-wide).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fermion.cloud.credentials import ARGON2_MAX_IN_FLIGHT

MAX_FAILURES = 10
BLOCK_SECONDS = 30 * 60
# Attempts of one address running at once: half the argon2 queue, so that one address can
# never fill it and leave nobody else a place (the rest are refused at once, 429).
MAX_RUNNING_PER_ADDRESS = ARGON2_MAX_IN_FLIGHT // 2
_MAX_TRACKED = 100_000
# What a refusal says when the limit is reached only by attempts still running: they end
# within about a second, as failures (then the block) or a success (then room again).
_PENDING_RETRY_SECONDS = 1


@dataclass
class _Entry:
    failures: int = 0
    pending: int = 0
    blocked_until: float = 0.0


class LoginRefused(Exception):
    """The address or the account has reached its limit; ``who`` names which, for the reply."""

    def __init__(self, who: str, retry_after: int, what: str = "failed logins") -> None:
        super().__init__(f"too many {what} {who}; try again in {retry_after} seconds")
        self.who = who
        self.retry_after = retry_after


class _Counters:
    def __init__(self, max_failures: int, block_seconds: float, clock: Callable[[], float]):
        self.max_failures = max_failures
        self.block_seconds = block_seconds
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def wait(self, key: str) -> int:
        """Seconds before ``key`` may start an attempt; 0 when it may now."""
        entry = self._entries.get(key)
        if entry is None:
            return 0
        if entry.blocked_until:
            left = entry.blocked_until - self._clock()
            if left > 0:
                return math.ceil(left)
            entry.blocked_until = 0.0  # the block ran out: start counting afresh
            entry.failures = 0
        if entry.failures + entry.pending >= self.max_failures:
            return _PENDING_RETRY_SECONDS
        return 0

    def running(self, key: str) -> int:
        entry = self._entries.get(key)
        return entry.pending if entry else 0

    def reserve(self, key: str) -> int:
        """Reserve a place for an attempt; 0, or the seconds to wait when there is none."""
        wait = self.wait(key)
        if wait:
            return wait
        if len(self._entries) >= _MAX_TRACKED and key not in self._entries:
            self._evict()
        self._entries.setdefault(key, _Entry()).pending += 1
        return 0

    def finish(self, key: str, outcome: bool | None) -> None:
        """End a reserved attempt: True a success, False a failure, None neither (not checked)."""
        entry = self._entries.get(key)
        if entry is None:  # evicted meanwhile
            return
        entry.pending = max(0, entry.pending - 1)
        if outcome is True:
            entry.failures = 0
            entry.blocked_until = 0.0
        elif outcome is False:
            entry.failures += 1
            if entry.failures >= self.max_failures and not entry.blocked_until:
                entry.blocked_until = self._clock() + self.block_seconds
        if not entry.failures and not entry.pending and not entry.blocked_until:
            del self._entries[key]

    def _evict(self) -> None:
        now = self._clock()
        for key in [k for k, e in self._entries.items() if not e.pending and e.blocked_until < now]:
            del self._entries[key]


@dataclass
class Attempt:
    """One login attempt: its address's reservation, and its account's once known."""

    limiter: LoginLimiter
    address: str
    accounts: list[str] = field(default_factory=list)

    def account(self, key: str) -> None:
        """Reserve under ``key``'s limit before its secret is verified; ``LoginRefused`` if full."""
        wait = self.limiter.accounts.reserve(key)
        if wait:
            raise LoginRefused("for this account", wait)
        self.accounts.append(key)

    def finish(self, outcome: bool | None) -> None:
        self.limiter.addresses.finish(self.address, outcome)
        for key in self.accounts:
            self.limiter.accounts.finish(key, outcome)
        self.accounts.clear()


class LoginLimiter:
    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        block_seconds: float = BLOCK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_running: int | None = MAX_RUNNING_PER_ADDRESS,
    ) -> None:
        self.max_failures = max_failures
        self.block_seconds = block_seconds
        self.max_running = max_running
        self.addresses = _Counters(max_failures, block_seconds, clock)
        self.accounts = _Counters(max_failures, block_seconds, clock)

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may start an attempt; 0 when it may now."""
        return self.addresses.wait(address)

    def begin(self, address: str) -> Attempt:
        """Reserve an attempt from ``address``; ``LoginRefused`` when it has no room left."""
        if self.max_running is not None and self.addresses.running(address) >= self.max_running:
            raise LoginRefused(f"from {address}", _PENDING_RETRY_SECONDS, "logins in progress")
        wait = self.addresses.reserve(address)
        if wait:
            raise LoginRefused(f"from {address}", wait)
        return Attempt(self, address)
