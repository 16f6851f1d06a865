"""The daemon under test for ``bench/crash_harness.py``: production cabinet, scripted people.

The crash harness must be able to SIGKILL the daemon while the physical cabinet lives on,
so the lock-board simulator and the cabinet model belong to the harness (the parent
process) and this process only gets the bus URL. Everything that decides and records is
the production code, wired as ``kiosk.daemon.serve`` wires it: ``Runtime.open``, the real
Kerong driver over ``socket://`` to the board simulator, ``Cabinet`` with the calendar and
options taken from ``Settings``, ``start()`` (relock, scan, reconcile) and then ``run()``.

What stands in for hardware and screen is a line protocol on stdin, one command a line,
calling the very methods the badge reader pump and the kiosk page call:

    tap UID               Cabinet.tap (a badge or a key fob at the reader)
    draw KEY REASON       Cabinet.choose_draw([KEY], REASON)
    return KEY            Cabinet.choose_return(KEY)
    nobadge               Cabinet.return_without_badge (after a fob tap: no badge to hand)
    cancel                Cabinet.cancel
    state                 nothing; reports the session state
    quit                  graceful stop: Cabinet.stop, lock bank closed, daemon.stopped

and a line protocol on stdout:

    ready {json}          start() finished; its reconciliation summary
    ack SEQ HASH TYPE     an audit event is committed (written by an ``AuditLog`` listener,
                          which runs only after the transaction commits)
    ok STATE | err CODE   the outcome of each command, then the session state

An ``ack`` line is a promise: the harness holds the daemon to every one it has read, so it
is written only after the commit and flushed at once.

The cabinet's clock is a fake one that starts where the harness says (inside business
hours, so draws are allowed whatever the wall clock says) and advances with real time.
The audit log gets the same clock: in production both read ``utcnow``, and giving them two
different clocks would put loan times (cabinet clock) and intent times (audit clock, which
start-up reconciliation turns into ``drawn_at``) into different centuries.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from drivers.locks.kerong import KerongLockBank
from kiosk import records
from kiosk.audit import AppendedEvent, NewEvent
from kiosk.cabinet import Cabinet, CabinetError, calendar_from, options_from
from kiosk.config import Settings
from kiosk.runtime import Runtime
from kiosk.store.models import Slot
from kiosk.wiring import kerong_slot_map

log = logging.getLogger("crash_child")

CABINET = "cab-01"
MAX_PULSE_MS = 500  # as kiosk.wiring.build_simulated


class RunningClock:
    """A fake wall clock: ``start`` at construction, then advancing with monotonic time."""

    def __init__(self, start: dt.datetime) -> None:
        self._start = start.astimezone(dt.UTC)
        self._t0 = time.monotonic()

    def __call__(self) -> dt.datetime:
        return self._start + dt.timedelta(seconds=time.monotonic() - self._t0)


class Out:
    """Whole lines to stdout, flushed at once, from any thread (appends may run anywhere)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._lock, contextlib.suppress(BrokenPipeError, ValueError):
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def settings_for(data_dir: Path, checkpoint_every: int) -> Settings:
    """The settings parent and child share; explicit keywords win over any KIOSK_* variable."""
    return Settings(data_dir=data_dir, database_url="", cabinet_id=CABINET, simulate=True,
                    audit={"checkpoint_every": checkpoint_every})  # type: ignore[arg-type]


async def dispatch(cabinet: Cabinet, words: list[str]) -> None:
    """Run one command; raise CabinetError (screen refusals) or ValueError (bad syntax)."""
    match words:
        case ["tap", uid]:
            await cabinet.tap(uid)
        case ["draw", key, reason]:
            await cabinet.choose_draw([key], reason)
        case ["return", key]:
            await cabinet.choose_return(key)
        case ["nobadge"]:
            await cabinet.return_without_badge()
        case ["cancel"]:
            await cabinet.cancel()
        case ["state"]:
            pass
        case _:
            raise ValueError(f"unknown command {' '.join(words)!r}")


async def serve(args: argparse.Namespace) -> int:
    out = Out()
    settings = settings_for(Path(args.data_dir), args.checkpoint_every)
    clock = RunningClock(dt.datetime.fromisoformat(args.start_at))
    runtime = Runtime.open(settings)
    runtime.audit.clock = clock

    def acknowledge(event: AppendedEvent) -> None:
        out.line(f"ack {event.seq} {event.hash} {event.type}")

    runtime.audit.listeners.append(acknowledge)
    runtime.audit.append(NewEvent(type="daemon.started", payload={
        "simulate": True, "database": runtime.engine.dialect.name, "harness": "crash"}))
    with Session(runtime.engine) as s:
        cabinet_id = records.cabinet_row(s, code=CABINET).id
        slots = sorted(s.scalars(select(Slot.number).where(Slot.cabinet_id == cabinet_id)))
    locks = KerongLockBank(args.board_url, kerong_slot_map(slots), max_pulse_ms=MAX_PULSE_MS)
    cabinet = Cabinet(runtime, locks, calendar=calendar_from(settings),
                      options=options_from(settings), clock=clock)
    summary = await cabinet.start()
    out.line("ready " + json.dumps(summary, sort_keys=True))
    runner = asyncio.create_task(cabinet.run())

    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    try:
        while raw := await stdin.readline():
            words = raw.decode().split()
            if not words:
                continue
            if words == ["quit"]:
                break
            try:
                await dispatch(cabinet, words)
            except CabinetError as exc:
                out.line(f"err {exc.code}")
                continue
            except Exception as exc:  # reported, never swallowed: the harness fails on it
                log.exception("command %s failed", words)
                out.line(f"err internal:{type(exc).__name__}")
                continue
            out.line(f"ok {cabinet.session.state.value}")
    finally:
        cabinet.request_stop()
        await runner
        await cabinet.stop()
        locks.close()
        runtime.audit.append(NewEvent(type="daemon.stopped"))
        runtime.close()
    out.line("bye")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--board-url", required=True, help="socket://HOST:PORT of the board sim")
    parser.add_argument("--start-at", required=True, help="ISO time the fake clock starts at")
    parser.add_argument("--checkpoint-every", type=int, default=256)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
