from __future__ import annotations

import pytest

from fermion.cloud.api.ratelimit import LoginLimiter, LoginRefused


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(limiter: LoginLimiter, address: str, account: str | None = None) -> None:
    attempt = limiter.begin(address)
    if account is not None:
        attempt.account(account)
    attempt.finish(False)


def succeed(limiter: LoginLimiter, address: str, account: str | None = None) -> None:
    attempt = limiter.begin(address)
    if account is not None:
        attempt.account(account)
    attempt.finish(True)


def test_ten_consecutive_failures_block_for_thirty_minutes() -> None:
    clock = Clock()
    limiter = LoginLimiter(clock=clock)
    for _ in range(9):
        fail(limiter, "10.0.0.1")
        assert limiter.retry_after("10.0.0.1") == 0
    fail(limiter, "10.0.0.1")
    assert 0 < limiter.retry_after("10.0.0.1") <= 1800
    assert limiter.retry_after("10.0.0.2") == 0  # other addresses unaffected
    clock.now += 1799
    assert limiter.retry_after("10.0.0.1") > 0
    clock.now += 2
    assert limiter.retry_after("10.0.0.1") == 0
    fail(limiter, "10.0.0.1")  # counting starts afresh after the block
    assert limiter.retry_after("10.0.0.1") == 0


def test_success_resets_the_address_count() -> None:
    limiter = LoginLimiter(clock=Clock())
    for _ in range(9):
        fail(limiter, "a")
    succeed(limiter, "a")
    for _ in range(9):
        fail(limiter, "a")
    assert limiter.retry_after("a") == 0


def test_attempts_count_when_they_start() -> None:
    limiter = LoginLimiter(clock=Clock(), max_running=None)
    running = [limiter.begin("a") for _ in range(10)]
    with pytest.raises(LoginRefused) as refused:
        limiter.begin("a")
    assert refused.value.retry_after == 1  # only running attempts fill it: not blocked yet
    for attempt in running:
        attempt.finish(False)
    assert limiter.retry_after("a") > 1000


def test_one_address_runs_only_a_few_attempts_at_once() -> None:
    limiter = LoginLimiter(clock=Clock(), max_running=4)
    running = [limiter.begin("a") for _ in range(4)]
    with pytest.raises(LoginRefused) as refused:
        limiter.begin("a")
    assert refused.value.retry_after == 1 and "in progress" in str(refused.value)
    limiter.begin("b").finish(None)  # other addresses are not held up
    running.pop().finish(False)
    limiter.begin("a")  # a place is free again


def test_an_attempt_that_was_not_checked_gives_its_place_back() -> None:
    limiter = LoginLimiter(clock=Clock())
    for _ in range(20):
        limiter.begin("a").finish(None)
    assert limiter.retry_after("a") == 0


def test_another_accounts_success_does_not_clear_the_victims_count() -> None:
    limiter = LoginLimiter(clock=Clock())
    for _ in range(3):
        for _ in range(3):
            fail(limiter, "attacker", "user:victim@x")
        succeed(limiter, "attacker", "user:own@x")
    attempt = limiter.begin("attacker")
    attempt.account("user:victim@x")  # the 10th guess is still allowed...
    attempt.finish(False)
    attempt = limiter.begin("elsewhere")
    with pytest.raises(LoginRefused) as refused:
        attempt.account("user:victim@x")  # ...and then none, from any address
    assert refused.value.retry_after > 1000
    assert "account" in str(refused.value)
    attempt.finish(None)
    succeed(limiter, "elsewhere", "user:own@x")  # other accounts are not blocked


def test_a_success_on_the_account_clears_it() -> None:
    limiter = LoginLimiter(clock=Clock())
    for _ in range(9):
        fail(limiter, f"10.0.0.{_}", "user:v@x")
    succeed(limiter, "10.0.1.1", "user:v@x")
    for _ in range(9):
        fail(limiter, f"10.0.2.{_}", "user:v@x")
    succeed(limiter, "10.0.3.1", "user:v@x")
