"""Small asyncio pieces shared by the device server and the simulator.

Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that arrives in the same loop
iteration as the awaited result (gh-86296, fixed in 3.12). A task that swallows its
cancellation never ends, so whoever awaits it after ``cancel()`` waits forever. Fermion uses
``asyncio.timeout`` for deadlines and :func:`cancel_and_wait` to stop tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]], grace: float = 5.0) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again if one lingers.

    Each round cancels what is still running and waits up to one second; after ``grace``
    seconds the stragglers are logged and left behind rather than hanging the caller.
    """
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(1.0, max(0.0, deadline - loop.time())))
        if pending and loop.time() >= deadline:
            log.warning(
                "%d task(s) did not stop within %.0f s: %s",
                len(pending),
                grace,
                ", ".join(t.get_name() for t in pending),
            )
            return
