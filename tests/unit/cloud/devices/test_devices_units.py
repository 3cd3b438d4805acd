"""Pure parts of the device server: limits, shares, activity memory, the key cache."""

from __future__ import annotations

from fermion.cloud.devices.limits import FailureLimiter, HandshakeShares, prefix_of
from fermion.cloud.devices.server import ActivityLog


def test_failed_handshakes_over_the_limit_refuse_the_address_for_the_window() -> None:
    limiter = FailureLimiter(limit=3, window=60)
    for _ in range(3):
        assert limiter.allowed("10.0.0.1", 0)
        limiter.failed("10.0.0.1", 0)
    assert not limiter.allowed("10.0.0.1", 1)
    assert limiter.allowed("10.0.0.2", 1)  # other addresses are not affected
    assert limiter.allowed("10.0.0.1", 61)  # a new window


def test_prefixes_are_a_24_or_a_64_and_mapped_ipv4_counts_as_ipv4() -> None:
    assert prefix_of("203.0.113.77") == "203.0.113.0/24"
    assert prefix_of("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert prefix_of("::ffff:203.0.113.77") == "203.0.113.0/24"
    assert prefix_of("fe80::1%eth0") == "fe80::/64"
    assert prefix_of("?") == "?"


def test_handshake_shares_per_address_and_prefix_and_given_back() -> None:
    shares = HandshakeShares(per_address=2, per_prefix=3)
    a = shares.take("10.0.0.1")
    b = shares.take("::ffff:10.0.0.1")  # the same host over a dual-stack socket
    assert isinstance(a, tuple) and isinstance(b, tuple)
    assert shares.take("10.0.0.1") == "address_busy"
    c = shares.take("10.0.0.2")
    assert isinstance(c, tuple)
    assert shares.take("10.0.0.3") == "prefix_busy"
    assert isinstance(shares.take("10.0.1.1"), tuple)  # another /24
    for slot in (a, b, c):
        shares.give_back(slot)
    assert shares.of_address("10.0.0.1") == 0 and shares.of_prefix("10.0.0.9") == 0
    assert shares._addresses.keys() == {"10.0.1.1"}  # nothing kept for gone handshakes


def test_the_limiter_forgets_the_oldest_addresses_first() -> None:
    limiter = FailureLimiter(limit=1, window=60, max_addresses=100)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}", 0)
    assert len(limiter._windows) <= 100
    assert limiter.allowed("10.0.0.0", 1)  # forgotten
    assert not limiter.allowed("10.0.3.231", 1)  # recent


def test_activity_is_bounded_per_device_and_in_devices() -> None:
    log = ActivityLog(max_devices=2, events_kept=3, data_kept=4)
    for i in range(10):
        log.event("a", f"e{i}", b"0123456789", False)
    entry = log.get("a")
    assert entry is not None
    assert [e[1] for e in entry.events] == ["e7", "e8", "e9"]
    assert all(e[2] == b"0123" for e in entry.events)
    log.describe("b", 1, b"{}")
    log.describe("c", 2, b"{}")
    assert log.get("a") is None  # least recently heard dropped
    assert log.get("c") is not None and log.get("c").describe == {2: b"{}"}  # type: ignore[union-attr]


def test_after_a_crowd_leaves_keys_stay_cached_for_the_linger_then_only_connected_ones() -> None:
    from collections import OrderedDict
    from types import SimpleNamespace

    from fermion.cloud.devices.limits import DeviceServerConfig
    from fermion.cloud.devices.server import Housekeeping, _CachedKey

    cache = OrderedDict((f"{i:024x}", _CachedKey(None, None)) for i in range(6000))
    connected = f"{10:024x}"
    cache.move_to_end(connected)  # looked up when it connected
    server = SimpleNamespace(
        _key_cache=cache,
        sessions={connected: object()},
        links=set(),
        config=DeviceServerConfig(key_cache_linger=30.0),
        owns_store=False,
    )
    housekeeping = Housekeeping()
    housekeeping.high = 6000  # the crowd was here; now it has left
    housekeeping.tick(server)  # type: ignore[arg-type]
    assert len(server._key_cache) == 1 + Housekeeping.KEY_CACHE_RECENT  # a blip comes back fast
    housekeeping.tick(server)  # type: ignore[arg-type]
    assert len(server._key_cache) == 1 + Housekeeping.KEY_CACHE_RECENT
    assert housekeeping.left_at is not None
    housekeeping.left_at -= 31.0  # the linger is over: those that did not come back are dropped
    housekeeping.tick(server)  # type: ignore[arg-type]
    assert list(server._key_cache) == [connected]
