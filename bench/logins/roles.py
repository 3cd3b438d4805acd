"""What each caller of ``bench.logins`` does, each in a process of its own (see ``__main__``).

Separate processes so that the flood's own client work, or a device's RSA, never delays the
measurements of another caller on a shared event loop: only the server is shared.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

PASSWORD = "bench-password-1"


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    replies: dict[int, int] = field(default_factory=dict)  # the flood's: status -> count

    def pct(self, q: float) -> float:
        """Nearest-rank percentile in ms."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _wait_for(start: float) -> None:
    """Every caller of a phase starts together, however long its process took to get going."""
    time.sleep(max(0.0, start - time.time()))


async def _api(base: str, token: str, end: float, out: Samples) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        while time.time() < end:
            started = time.perf_counter()
            try:
                reply = await http.get("/v1/user", headers=headers)
                failed = reply.status_code >= 500 or reply.status_code == 401
            except httpx.HTTPError:
                failed = True
            out.latencies.append(time.perf_counter() - started)
            out.errors += failed


def api(base: str, token: str, start: float, end: float, clients: int = 4) -> Samples:
    out = Samples()
    _wait_for(start)

    async def go() -> None:
        await asyncio.gather(*(_api(base, token, end, out) for _ in range(clients)))

    asyncio.run(go())
    return out


def handshakes(
    port: int,
    pems: list[tuple[str, bytes]],
    server_der: bytes,
    first: int,
    start: float,
    end: float,
) -> Samples:
    """Handshakes one after another, each as a device not seen before (``first`` onwards)."""
    from bench.handshake.server import _connect, _load_fleet

    fleet = _load_fleet(pems, server_der)
    out = Samples()
    _wait_for(start)

    async def go() -> None:
        index = first
        while time.time() < end and index < len(fleet.devices):
            started = time.perf_counter()
            try:
                ok = await asyncio.wait_for(_connect(port, fleet, index, False), 30)
            except (OSError, TimeoutError):
                ok = None
            out.latencies.append(time.perf_counter() - started)
            out.errors += ok is None
            index += 1

    asyncio.run(go())
    return out


def logins(base: str, email: str, start: float, end: float) -> Samples:
    """A correct login a second from an address of its own (a person, not a load: argon2 is
    meant to be paid rarely); a 503's wait counts in the latency."""
    out = Samples()
    _wait_for(start)
    form = {"grant_type": "password", "username": email, "password": PASSWORD}

    async def go() -> None:
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=base, transport=transport, timeout=60) as http:
            while time.time() < end:
                started = time.perf_counter()
                status = 0
                for _ in range(20):
                    try:
                        reply = await http.post("/oauth/token", data=form)
                    except httpx.HTTPError:
                        break
                    status = reply.status_code
                    if status != 503:
                        break
                    await asyncio.sleep(float(reply.json().get("retry_after", 1)))
                out.latencies.append(time.perf_counter() - started)
                out.errors += status != 200
                await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - started)))

    asyncio.run(go())
    return out


def flood(base: str, size: int, spread: bool, start: float, end: float, net: int) -> Samples:
    """A wave of ``size`` concurrent wrong logins each second until ``end``: from one address,
    or (``spread``) each from its own address and for its own unknown account. Addresses are
    ``127.<net>.x.y``: a phase of its own ``net`` is not blocked by what an earlier one did."""
    out = Samples()
    _wait_for(start)

    host, port = base.removeprefix("http://").split(":")
    addresses = (
        [f"127.{net}.{1 + i // 250}.{1 + i % 250}" for i in range(size)]
        if spread
        else [f"127.{net}.0.1"]
    )

    async def one(address: str, wave: int, i: int) -> None:
        # A bare HTTP/1.1 request on a connection of its own: a flood client costs the
        # generator little, and its source address is the one asked for.
        body = urlencode(
            {
                "grant_type": "password",
                "username": f"nobody-{net}-{wave}-{i}@example.com",
                "password": "wrong",
            }
        ).encode()
        head = (
            f"POST /oauth/token HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        try:
            reader, writer = await asyncio.open_connection(host, int(port), local_addr=(address, 0))
            writer.write(head + body)
            status = int((await asyncio.wait_for(reader.readline(), 60))[9:12])
            writer.close()
        except (OSError, ValueError, TimeoutError):
            status = 0
        out.replies[status] = out.replies.get(status, 0) + 1

    async def go() -> None:
        tasks: list[asyncio.Task[None]] = []
        wave = 0
        while time.time() < end:
            started = time.monotonic()
            tasks += [
                asyncio.create_task(one(addresses[i % len(addresses)], wave, i))
                for i in range(size)
            ]
            wave += 1
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
        await asyncio.gather(*tasks)

    asyncio.run(go())
    return out


def run(role: str, *args: Any) -> Samples:
    return {"api": api, "handshake": handshakes, "login": logins, "flood": flood}[role](*args)
