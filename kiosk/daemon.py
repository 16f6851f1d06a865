"""The long-running daemon: one asyncio loop running the cabinet, the admin API listener
and the kiosk screen listener (loopback only).

Start-up and shutdown are events in the audit log, so a gap in the daemon's life (a crash,
a power cut) is visible as a start without a preceding stop. On the way out, every lock is
driven locked whatever else failed.

Under systemd (``deploy/kiosk.service``, ``Type=notify``) the daemon reports READY once the
cabinet has started and both listeners accept connections, and sends watchdog keep-alives
from this event loop, so a hung loop gets the daemon restarted (``kiosk.systemd``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.kiosk.app import create_kiosk_app
from api.liveness import LivenessAnswer
from kiosk.audit import NewEvent
from kiosk.cabinet import Cabinet, calendar_from, options_from
from kiosk.config import Settings
from kiosk.demo import load_demo, register_simulated_slots, try_it
from kiosk.fleet import state as fleet_state
from kiosk.heap import freeze_startup_heap
from kiosk.notify.dispatcher import run_notifications
from kiosk.runlock import hold
from kiosk.runtime import Runtime
from kiosk.scheduler import run_scheduler
from kiosk.store.db import describe_database
from kiosk.store.models import Person
from kiosk.systemd import Notifier
from kiosk.tls import TlsFiles, admin_tls
from kiosk.wiring import (
    ReaderPump,
    RealHardware,
    SimulatedHardware,
    build_real,
    build_simulated,
    door_swing_s,
    reader_fault_logger,
    sim_baud,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import Receive, Scope, Send

    from kiosk.fleet.link import FleetLink

log = logging.getLogger("kiosk.daemon")
KIOSK_HOST = "127.0.0.1"  # the screen's endpoints never leave the machine


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after serving, which would kill us before the shutdown
    event is logged and the locks are secured; the daemon owns signals instead."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AdminOnFirstRequest:
    """The admin listener's app, made by its first request rather than at start.

    The admin API's routes, their models and prometheus-client cost the daemon about
    12 MB (bench/results/memory.json: idle, then after the admin's first request), and a cabinet may go days without an administrator;
    the kiosk screen, the sensors and the locks need none of it (issue 15, item 4). The
    listener is bound at start as before; its first request imports ``api.app`` in a worker
    thread (off the event loop the cabinet runs on), makes the app exactly as an eager start
    would and passes that request and every later one to it. The app's own lifespan runs from
    then until the listener stops. Its console stays lazy behind it (``lazy_console``).
    The public liveness check (``GET /api/v1/health``) is answered without it
    (``api.liveness``), so a monitor's polls do not make it.
    """

    def __init__(self, build: Callable[[], FastAPI],
                 liveness: LivenessAnswer | None = None) -> None:
        self._build = build
        self._liveness = liveness
        self.app: FastAPI | None = None
        self._lock = asyncio.Lock()
        self._lifespan: AbstractAsyncContextManager[Any] | None = None
        self._failed: BaseException | None = None

    async def _made(self) -> FastAPI:
        async with self._lock:  # two first requests at once make it once
            if self._failed is not None:
                raise RuntimeError("the admin API could not be made") from self._failed
            if self.app is None:
                try:
                    await asyncio.to_thread(importlib.import_module, "api.app")
                    app = self._build()
                    lifespan = app.router.lifespan_context(app)
                    await lifespan.__aenter__()
                except Exception as exc:
                    # An eager start would have stopped the daemon; here the cabinet goes on
                    # serving the screen and the locks, so say it loudly once and keep the
                    # failure: every later admin request fails at once (a 500), and no retry
                    # half-builds the app again (each try would add listeners to the log).
                    log.critical("the admin API could not be made: %s", exc, exc_info=True)
                    self._failed = exc
                    raise
                self.app, self._lifespan = app, lifespan
        assert self.app is not None
        return self.app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
            return
        if self.app is None and self._liveness is not None and self._liveness.answers(scope):
            # a monitor's liveness poll does not make the admin API (``api.liveness``)
            await self._liveness(scope, receive, send)
            return
        app = self.app if self.app is not None else await self._made()
        await app(scope, receive, send)

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        """Start at once; at shutdown, end the made app's lifespan (if a request made it)."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._lifespan is not None:
                    await self._lifespan.__aexit__(None, None, None)
                await send({"type": "lifespan.shutdown.complete"})
                return


def _admin_app(runtime: Runtime, cabinet: Cabinet) -> FastAPI:
    from api.app import create_admin_app

    # the console is loaded by its first request: an idle cabinet need not hold it
    return create_admin_app(runtime, cabinet=cabinet, lazy_console=True)


MAX_CONNECTIONS = 256
"""uvicorn's own backstop per listener (connections and tasks): beyond it, a bare 503.
The apps' ``ConcurrencyLimit`` answers sooner, with a problem document."""


def _server(app: object, host: str, port: int, settings: Settings,
            tls: TlsFiles | None = None, *, trusted_proxies: tuple[str, ...] = ()) -> _Server:
    # A screen long-poll may be pending at shutdown: do not wait for it to run out.
    # Neither app speaks WebSocket (the screen long-polls, the event stream is SSE), so
    # uvicorn need not load a WebSocket library into the daemon.
    # X-Forwarded-For is believed only from the configured proxies: uvicorn's default trusts
    # it from 127.0.0.1, which lets any local process pick its audited address (issue 16).
    return _Server(uvicorn.Config(app, host=host, port=port,  # type: ignore[arg-type]
                                  log_level=settings.log_level.lower(), lifespan="on",
                                  timeout_graceful_shutdown=2, ws="none",
                                  proxy_headers=bool(trusted_proxies),
                                  forwarded_allow_ips=list(trusted_proxies) or None,
                                  limit_concurrency=MAX_CONNECTIONS,
                                  ssl_certfile=str(tls.cert_file) if tls else None,
                                  ssl_keyfile=str(tls.key_file) if tls else None))


async def _ready_then_watchdog(notifier: Notifier, servers: list[_Server], status: str) -> None:
    """READY=1 once every listener is accepting connections, then keep-alives from this loop."""
    while not all(server.started for server in servers):
        await asyncio.sleep(0.05)
    log.info("start-up objects frozen out of full collections: %d", freeze_startup_heap())
    notifier.ready(status)
    await notifier.watchdog()


async def serve(settings: Settings, config: Path | None = None) -> None:
    notifier = Notifier()
    notifier.status("starting: opening the database")
    with hold(settings.data_dir):  # one daemon per data folder; `kiosk restore` checks it
        await _serve(settings, notifier, config)
    notifier.close()


async def _serve(settings: Settings, notifier: Notifier, config: Path | None) -> None:
    tls = admin_tls(settings)  # a bad certificate stops the start before anything moves
    runtime = Runtime.open(settings)
    hardware: SimulatedHardware | RealHardware | None = None
    try:
        if settings.simulate:
            with Session(runtime.engine) as s:
                empty = not s.scalar(select(func.count()).select_from(Person))
            if empty and settings.demo_data:
                summary = load_demo(runtime)
                print(f"kiosk: empty database, loaded the demo tower: {summary['keys']} keys, "
                      f"{summary['people']} people", flush=True)
            elif empty:
                added = register_simulated_slots(runtime)
                print(f"kiosk: empty database, no demo data (--empty): the simulated cabinet's "
                      f"{added or 'existing'} slots; set the building up in the console",
                      flush=True)
        runtime.audit.append(NewEvent(type="daemon.started", payload={
            "simulate": settings.simulate, "database": runtime.engine.dialect.name,
            "admin_tls": tls.fingerprint if tls else None}))
        hardware = (build_simulated(runtime, door_swing_s=door_swing_s(), baud=sim_baud())
                    if settings.simulate else build_real(settings))
        door = hardware.door_sensor
        cabinet = Cabinet(
            runtime, hardware.bank, calendar=calendar_from(runtime.settings),
            options=options_from(runtime.settings),
            door_is_open=(lambda: door.is_open) if door is not None else None,
            indicators=hardware.indicators if isinstance(hardware, RealHardware) else None,
        )
        notifier.status("starting: relocking and scanning every slot")
        await cabinet.start()
        loop = asyncio.get_running_loop()
        fleet = _fleet_link(runtime)
        if fleet is not None:  # the site's hours and alarm owners, as the hub sends them
            fleet.settings_listeners.append(lambda new: _site_settings(cabinet, new))
        tap = fleet.guard_tap(cabinet.tap) if fleet is not None else cabinet.tap
        pump = (ReaderPump(hardware.reader, tap, loop,
                           reader_fault_logger(runtime.audit, hardware.reader.reader_id)).start()
                if hardware.reader is not None else None)
        # the admin API is made by its first request (AdminOnFirstRequest)
        admin = _server(AdminOnFirstRequest(lambda: _admin_app(runtime, cabinet),
                                            LivenessAnswer(runtime)),
                        settings.admin_host, settings.admin_port, settings, tls,
                        trusted_proxies=tuple(settings.admin_trusted_proxies))
        sim_control = hardware if isinstance(hardware, SimulatedHardware) else None
        screen = _server(create_kiosk_app(cabinet, sim_control, port=settings.kiosk_port),
                         KIOSK_HOST, settings.kiosk_port, settings)

        scheduler_stop = asyncio.Event()

        def shutdown() -> None:
            admin.should_exit = screen.should_exit = True
            scheduler_stop.set()
            cabinet.request_stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, shutdown)
        print(
            f"kiosk: cabinet {settings.cabinet_id}, database {describe_database(runtime.engine)}\n"
            f"kiosk: kiosk screen  http://{KIOSK_HOST}:{settings.kiosk_port}/\n"
            f"kiosk: admin API     {'https' if tls else 'http'}://{settings.admin_host}:"
            f"{settings.admin_port}/api/v1/health (docs at /api/v1/docs)\n"
            + (f"kiosk: admin TLS     {tls.cert_file} SHA-256 {tls.fingerprint}\n" if tls else "")
            + (try_it(runtime, config=config) if sim_control else ""),
            flush=True,
        )
        alive = asyncio.create_task(_ready_then_watchdog(
            notifier, [admin, screen], f"cabinet {settings.cabinet_id} serving"))
        fleet_task = (asyncio.create_task(fleet.run(scheduler_stop))
                      if fleet is not None else None)
        try:
            await asyncio.gather(
                admin.serve(), screen.serve(), cabinet.run(),
                run_scheduler(runtime, presence=cabinet.last_scan, stop=scheduler_stop,
                              identities=cabinet.last_fobs, on_alarm=cabinet.sound_alarm),
                *([run_notifications(runtime, stop=scheduler_stop)]
                  if settings.notifications.active else []),
            )
        finally:
            scheduler_stop.set()
            if fleet_task is not None:
                fleet_task.cancel()  # a long-poll to the hub may be pending: do not wait
            notifier.stopping("stopping: securing the locks")
            alive.cancel()
            if pump is not None:
                pump.stop()
            await cabinet.stop()
    finally:
        if hardware is not None:
            hardware.close()
        runtime.audit.append(NewEvent(type="daemon.stopped"))
        runtime.audit.sign_head()  # a cleanly stopped log leaves no unsigned tail
        runtime.close()


def _site_settings(cabinet: Cabinet, settings: Settings) -> None:
    """The cabinet's copies of settings the hub authors per site (issue 12)."""
    cabinet.calendar = calendar_from(settings)
    cabinet.alarm_owners = settings.alarms.table()


def _fleet_link(runtime: Runtime) -> FleetLink | None:
    """The link to the hub, only when ``[fleet] hub_url`` is set (docs/fleet.md)."""
    if runtime.settings.fleet.hub_url is None:
        return None
    enrolment = fleet_state.enrolment(runtime.engine)
    if enrolment is None:
        log.warning("[fleet] hub_url is set but this cabinet is not enrolled: run "
                    "`kiosk fleet enrol %s CODE`; working alone meanwhile",
                    runtime.settings.fleet.hub_url)
        return None
    from kiosk.fleet.link import FleetLink  # a cabinet without a hub never loads it

    print(f"kiosk: fleet       hub {enrolment.hub_url}, site {enrolment.site}", flush=True)
    return FleetLink(runtime, enrolment)


async def serve_hub(settings: Settings) -> None:
    """``kiosk hub``: the admin API for every site plus the fleet routes, on PostgreSQL."""
    from api.hub.app import create_hub_app
    from kiosk.fleet.changes import install_change_tracking, prepare_hub_database

    runtime = Runtime.open(settings)
    install_change_tracking(runtime.engine)
    prepare_hub_database(runtime.engine)
    tls = admin_tls(settings.model_copy(update={"admin_host": settings.fleet.hub_host}))
    runtime.audit.append(NewEvent(type="hub.started", payload={
        "database": describe_database(runtime.engine), "tls": tls.fingerprint if tls else None}))
    server = _server(create_hub_app(runtime), settings.fleet.hub_host, settings.fleet.hub_port,
                     settings, tls)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    scheme = "https" if tls else "http"
    print(f"kiosk: hub on {describe_database(runtime.engine)}\n"
          f"kiosk: fleet endpoint {scheme}://{settings.fleet.hub_host}:{settings.fleet.hub_port}"
          f"/hub/v1  (admin API at /api/v1)\n"
          f"kiosk: hub key id {runtime.device_key.key_id}", flush=True)

    async def prune() -> None:
        from kiosk.fleet.hub import prune_nonces

        while True:
            await asyncio.sleep(60)
            await asyncio.to_thread(prune_nonces, runtime.audit, settings.fleet.clock_window_s)

    pruner = asyncio.create_task(prune())
    try:
        await server.serve()
    finally:
        pruner.cancel()
        runtime.audit.append(NewEvent(type="hub.stopped"))
        runtime.close()


def _logging(settings: Settings) -> None:
    """The daemon's log format. Alembic's plugin set-up (a dozen INFO lines at every start)
    says nothing an operator needs; its "Running upgrade" lines stay."""
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def run_hub(settings: Settings) -> None:
    _logging(settings)
    asyncio.run(serve_hub(settings))


def run(settings: Settings, config: Path | None = None) -> None:
    _logging(settings)
    asyncio.run(serve(settings, config))
