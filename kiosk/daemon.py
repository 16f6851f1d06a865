"""The long-running daemon: one asyncio loop serving the admin API (and, later, the cabinet).

Start-up and shutdown are events in the audit log, so a gap in the daemon's life (a crash,
a power cut) is visible as a start without a preceding stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn

from api.app import create_admin_app
from kiosk.audit import NewEvent
from kiosk.config import Settings
from kiosk.runtime import Runtime
from kiosk.store.db import describe_database

log = logging.getLogger("kiosk.daemon")


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after serving, which would kill us before the shutdown
    event is logged and the locks are secured; the daemon owns signals instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: Settings) -> None:
    runtime = Runtime.open(settings)
    runtime.audit.append(
        NewEvent(
            type="daemon.started",
            payload={"simulate": settings.simulate, "database": runtime.engine.dialect.name},
        )
    )
    app = create_admin_app(runtime)
    config = uvicorn.Config(
        app,
        host=settings.admin_host,
        port=settings.admin_port,
        log_level=settings.log_level.lower(),
        lifespan="on",
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.handle_exit, sig, None)
    print(
        f"kiosk: cabinet {settings.cabinet_id}, database {describe_database(runtime.engine)}\n"
        f"kiosk: admin API on http://{settings.admin_host}:{settings.admin_port}/api/v1/health"
        f" (docs at /api/v1/docs)",
        flush=True,
    )
    try:
        await server.serve()
    finally:
        runtime.audit.append(NewEvent(type="daemon.stopped"))
        runtime.close()


def run(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    asyncio.run(serve(settings))
