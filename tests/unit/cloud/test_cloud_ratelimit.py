from __future__ import annotations

from fermion.cloud.api.ratelimit import LoginLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ten_consecutive_failures_block_for_thirty_minutes() -> None:
    clock = Clock()
    limiter = LoginLimiter(clock=clock)
    for _ in range(9):
        limiter.failed("10.0.0.1")
        assert limiter.retry_after("10.0.0.1") == 0
    limiter.failed("10.0.0.1")
    assert 0 < limiter.retry_after("10.0.0.1") <= 1800
    assert limiter.retry_after("10.0.0.2") == 0  # other addresses unaffected
    clock.now += 1799
    assert limiter.retry_after("10.0.0.1") > 0
    clock.now += 2
    assert limiter.retry_after("10.0.0.1") == 0
    limiter.failed("10.0.0.1")  # counting starts afresh after the block
    assert limiter.retry_after("10.0.0.1") == 0


def test_success_resets_the_count() -> None:
    limiter = LoginLimiter(clock=Clock())
    for _ in range(9):
        limiter.failed("a")
    limiter.succeeded("a")
    for _ in range(9):
        limiter.failed("a")
    assert limiter.retry_after("a") == 0
