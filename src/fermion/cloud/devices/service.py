"""Running the device server next to the API: in the API process, or in worker processes.

``--device-workers 0`` (the default) runs it in the API's event loop. ``N >= 1`` starts N
processes that each bind the device port with ``SO_REUSEPORT``, so the kernel spreads devices
over them and the RSA work uses N cores; the API stays in the main process. Each worker has its
own store connection, drops sessions on key changes by polling the store, and reports metrics
through prometheus-client's multiprocess directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
from dataclasses import asdict, replace
from typing import Any

from fermion.cloud.devices.limits import DeviceServerConfig
from fermion.errors import FermionError

log = logging.getLogger("fermion.devices")


def use_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def _worker_main(database_url: str, config: dict[str, Any], ready: Any) -> None:
    use_uvloop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_worker(database_url, DeviceServerConfig(**config), ready))


async def _worker(database_url: str, config: DeviceServerConfig, ready: Any) -> None:
    from fermion.cloud.devices.server import DeviceServer
    from fermion.cloud.store import Store

    store = Store(database_url)
    server = DeviceServer(store, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    # What start-up allocated (SQLAlchemy, cryptography, the app's modules) lives as long as
    # the process: keep it out of the collector, whose full passes would walk it all.
    gc.collect()
    gc.freeze()
    ready.set()
    try:
        await stop.wait()
    finally:
        await server.stop()
        await store.close()


class WorkerPool:
    """N device-server processes sharing one port."""

    def __init__(self, database_url: str, config: DeviceServerConfig, count: int) -> None:
        self.database_url = database_url
        # Workers share the port: every one must set SO_REUSEPORT; presence is reset once, here.
        self.config = replace(config, reuse_port=True, reset_presence=False)
        self.count = count
        self.processes: list[Any] = []

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        events = []
        for _ in range(self.count):
            ready = context.Event()
            process = context.Process(
                target=_worker_main,
                args=(self.database_url, asdict(self.config), ready),
                daemon=True,
            )
            process.start()
            self.processes.append(process)
            events.append(ready)
        for process, ready in zip(self.processes, events, strict=True):
            while not ready.wait(0.2):
                if not process.is_alive():
                    self.stop()
                    raise FermionError(
                        f"device worker exited at start (port {self.config.port} in use?)"
                    )

    def stop(self) -> None:
        from fermion.cloud.devices import metrics

        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
            if process.pid is not None:
                metrics.mark_process_dead(process.pid)
        self.processes = []


class DeviceService:
    """What the app lifespan starts and stops."""

    def __init__(
        self,
        config: DeviceServerConfig,
        workers: int,
        database_url: str,
        *,
        optional: bool = False,
    ) -> None:
        # optional: the port was not asked for explicitly; if it is taken, run without devices.
        self.optional = optional
        self.config = config
        self.workers = workers
        self.database_url = database_url
        self.server: Any = None
        self.pool: WorkerPool | None = None

    @property
    def running(self) -> bool:
        return self.server is not None or self.pool is not None

    @property
    def port(self) -> int:
        """The port devices reach (the bound one when ``config.port`` was 0)."""
        if self.server is not None and self.server.port:
            return int(self.server.port)
        return self.config.port

    async def start(self, store: Any) -> None:
        try:
            await self._start(store)
        except (OSError, FermionError) as exc:
            if not self.optional:
                raise FermionError(
                    f"device server: cannot listen on {self.config.host}:{self.config.port} ({exc})"
                ) from None
            log.warning(
                "device server off: port %s is taken (%s); pass --device-port to choose one",
                self.config.port,
                exc,
            )
            self.server = None
            self.pool = None

    async def _start(self, store: Any) -> None:
        if self.workers <= 0:
            from fermion.cloud.devices.server import DeviceServer

            server = DeviceServer(store, self.config)
            try:
                await server.start()
            except BaseException:
                await server.stop()
                raise
            self.server = server
            return
        from fermion.cloud.devices import registry

        if self.config.reset_presence:
            await registry.mark_all_offline(store)
        self.pool = WorkerPool(self.database_url, self.config, self.workers)
        await asyncio.to_thread(self.pool.start)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self.pool is not None:
            await asyncio.to_thread(self.pool.stop)
            self.pool = None
