"""Bounds that keep a hostile or broken network from using up the device server."""

from __future__ import annotations

import ipaddress
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
    # Handshakes in progress from one address, and from one prefix (IPv4 /24, IPv6 /64), counted
    # from accept: silent connections cost a slot until ``block_timeout``, so without a share one
    # address could hold every slot. 5 % and 10 % of ``max_handshakes``: a fleet behind one NAT
    # address still has 100 handshakes in flight, more than one core completes in a third of a
    # second (~3 ms of RSA each), and a device refused retries within seconds.
    max_handshakes_per_address: int = 100
    max_handshakes_per_prefix: int = 200
    ipv4_prefix: int = 24
    ipv6_prefix: int = 64
    # Store rows a stranger can add at will: outcomes of connections that named no registered
    # device (kept per address, the least recently seen folded into per-outcome totals).
    max_unidentified_outcomes: int = 1000
    # Presented keys waiting for a decision, per device (registry.write_facts says which stay).
    max_pending_candidates: int = 5
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


def prefix_of(address: str, ipv4_prefix: int = 24, ipv6_prefix: int = 64) -> str:
    """The network an address belongs to, as text (``127.0.0.0/24``); an IPv4-mapped IPv6
    address counts as its IPv4 address, so a dual-stack listener shares one budget per host."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address  # not an IP (a Unix socket, "?"): its own prefix
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = ipv4_prefix if ip.version == 4 else ipv6_prefix
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def host_of(address: str) -> str:
    """The address as the shares count it: an IPv4-mapped IPv6 address as IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@dataclass
class HandshakeShares:
    """Handshakes in progress per address and per prefix.

    Counted from accept to the end of the handshake (success, failure, timeout or hang-up), so
    a connection that never sends a byte holds its share at once, not after its timeout. Memory
    is bounded by the global cap: an entry exists only while one of its handshakes is open.
    """

    per_address: int
    per_prefix: int
    ipv4_prefix: int = 24
    ipv6_prefix: int = 64
    _addresses: dict[str, int] = field(default_factory=dict)
    _prefixes: dict[str, int] = field(default_factory=dict)

    def take(self, address: str) -> tuple[str, str] | str:
        """The (host, prefix) slot taken, or the reason it was refused: ``"address_busy"`` or
        ``"prefix_busy"``."""
        host = host_of(address)
        prefix = prefix_of(host, self.ipv4_prefix, self.ipv6_prefix)
        if self._addresses.get(host, 0) >= self.per_address:
            return "address_busy"
        if self._prefixes.get(prefix, 0) >= self.per_prefix:
            return "prefix_busy"
        self._addresses[host] = self._addresses.get(host, 0) + 1
        self._prefixes[prefix] = self._prefixes.get(prefix, 0) + 1
        return host, prefix

    def give_back(self, slot: tuple[str, str]) -> None:
        host, prefix = slot
        for table, key in ((self._addresses, host), (self._prefixes, prefix)):
            left = table.get(key, 0) - 1
            if left > 0:
                table[key] = left
            else:
                table.pop(key, None)

    def of_address(self, address: str) -> int:
        return self._addresses.get(host_of(address), 0)

    def of_prefix(self, address: str) -> int:
        return self._prefixes.get(
            prefix_of(host_of(address), self.ipv4_prefix, self.ipv6_prefix), 0
        )
