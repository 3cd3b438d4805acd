"""Bounds that keep a hostile or broken network from using up the device server."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from fermion.protocol.channel import DEFAULT_MAX_FRAME


@dataclass(frozen=True)
class DeviceServerConfig:
    """How the device server listens and what it tolerates.

    Timeouts are per state: a device that got the nonce has ``block_timeout`` to send its
    256-byte block (Device OS waits 20 s for the nonce, so a live device answers at once); one
    that got the session key has ``hello_timeout`` to send its Hello; a connected device that
    is silent for ``idle_timeout`` is gone (it pings every 15 s).
    """

    host: str = "127.0.0.1"
    port: int = 5683
    block_timeout: float = 10.0
    hello_timeout: float = 10.0
    idle_timeout: float = 45.0
    max_frame: int = DEFAULT_MAX_FRAME
    max_handshakes: int = 2000
    failure_limit: int = 30
    failure_window: float = 60.0
    sweep_interval: float = 0.5
    key_poll_interval: float = 2.0
    events_kept: int = 10
    event_data_kept: int = 1024
    activity_devices: int = 20_000
    # After a crowd has left: how long the keys of devices that did not come back stay cached.
    key_cache_linger: float = 30.0
    reuse_port: bool = False
    # Single node: devices marked online by a server that is no longer running are not.
    reset_presence: bool = True


@dataclass
class _Window:
    start: float
    count: int = 0


@dataclass
class FailureLimiter:
    """Failed handshakes per address in fixed windows; over the limit, connections are refused
    before any RSA work is spent on them."""

    limit: int
    window: float
    max_addresses: int = 100_000
    _windows: dict[str, _Window] = field(default_factory=dict)
    _order: deque[str] = field(default_factory=deque)

    def allowed(self, address: str, now: float) -> bool:
        entry = self._windows.get(address)
        if entry is None or now - entry.start >= self.window:
            return True
        return entry.count < self.limit

    def failed(self, address: str, now: float) -> None:
        entry = self._windows.get(address)
        if entry is None or now - entry.start >= self.window:
            if entry is None:
                self._order.append(address)
            self._windows[address] = _Window(now, 1)
            self._trim()
            return
        entry.count += 1

    def _trim(self) -> None:
        # Forget the oldest addresses first; a flood of fresh addresses cannot grow memory.
        while len(self._windows) > self.max_addresses and self._order:
            self._windows.pop(self._order.popleft(), None)
