"""A clock a test moves by hand, for code that takes one (``create_app(clock=...)``, the
protocol's ``clock``) instead of a sleep that waits for real time to pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """Starts at the wall clock's now (so what it stamps looks current) and moves only when
    told: calling it gives the time, as ``utcnow`` does."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
