"""A device, as the cloud's tests need one: an id, a key, and a handshake on a real socket."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fermion.keys import Algorithm, generate_device_key, public_key_pem
from fermion.protocol import NEED_DATA, coap
from fermion.protocol.connection import Connected, DeviceConnection


def new_device_id() -> str:
    return secrets.token_hex(12)


def device_pub_pem(algorithm: Algorithm = Algorithm.RSA) -> str:
    """The public key (PEM) of a fresh device key."""
    return public_key_pem(generate_device_key(algorithm).public_key()).decode()


async def device_handshake(
    port: int,
    device_key: Any,
    device_id: str,
    server_key: Any,
    source: str = "127.0.0.1",
    on_connected: Callable[[DeviceConnection], None] | None = None,
    hold: Callable[[], Awaitable[None]] | None = None,
    hello: coap.Hello | None = None,
) -> bool:
    """A device's full TCP handshake from ``source``: True when the server answered the Hello
    (online). Then what ``on_connected`` queues on the connection (a publish, say) is sent, and
    the connection stays open until ``hold`` returns. ``hello``: what the device says it is
    (default: ``coap.Hello()``'s)."""
    conn = DeviceConnection(device_key, bytes.fromhex(device_id), server_key, hello or coap.Hello())
    async with asyncio.timeout(60):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        try:
            while True:
                try:
                    data = await reader.read(4096)
                except ConnectionResetError:
                    data = b""
                conn.receive_data(data)
                while (event := conn.next_event()) is not NEED_DATA:
                    if isinstance(event, Connected):
                        if on_connected is not None:
                            on_connected(conn)
                            writer.write(conn.data_to_send())
                        if hold is not None:
                            await hold()
                        return True
                writer.write(conn.data_to_send())
                if not data or conn.closed:
                    return False
        finally:
            writer.close()
