"""Noticing that a device's key changed, so that its open session is dropped.

In the process that made the change: every key change goes through
``keyops.append_key_version`` (the one key write), which calls :func:`key_changed`; once its
transaction commits, every device server in the process is told. The API's approve/restore/send
code needs no knowledge of the device server. (There is no ORM hook: a key written any other way
would be a second key write, and would be seen only by the poll below.)

Across processes (``--device-workers``): each device server polls the store for key versions
with a higher id than the last it saw (``key_poll_interval``, 2 s by default). See
docs/scaling.md for why polling and not LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from fermion.cloud.store.direct import Runner

Listener = Callable[[set[str]], None]

_listeners: list[tuple[asyncio.AbstractEventLoop, Listener]] = []


def subscribe(loop: asyncio.AbstractEventLoop, listener: Listener) -> Callable[[], None]:
    entry = (loop, listener)
    _listeners.append(entry)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            _listeners.remove(entry)

    return unsubscribe


def key_changed(runner: Runner, device_id: str) -> None:
    """Tell the device servers in this process, once ``runner`` commits, that the key changed."""
    runner.after_commit(lambda: _announce_to_all({device_id}))


def _announce_to_all(changed: set[str]) -> None:
    for loop, listener in list(_listeners):
        with contextlib.suppress(RuntimeError):  # the loop closed
            loop.call_soon_threadsafe(listener, set(changed))
