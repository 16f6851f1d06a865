"""The tap path at scale (issue 15, item 1): the same three paths on the big dataset and on
the demo tower, side by side.

* badge tap → the screen's drawable-key list computed (``Cabinet.tap`` returns with
  ``visit.choices`` filled: every key of the cabinet with why it can or cannot be drawn);
* choice → the last byte of the unlock frame written to the RS-485 bus, the intent event
  committed (``synchronous=FULL``) by the writer thread first: handed to the OS, and on a
  19200-baud line (``common.SpyPort`` models the line the TCP-simulated bus lacks), with
  the disk's own flush time (``disk_flush_ms``, the floor under any durable intent: back to
  back, and after the pause a choice follows, which on a virtual disk is slower). The
  choice is the touch of a reason: the key was picked on the list before it, and the screen
  told the cabinet, which armed the key's lock board then (``kiosk.cabinet.arming``); the
  bench waits for that arming and a short pause (``READING_S``; a person reads the reasons
  for a second or more) before it chooses. The same path without a pick (a draw over the
  API, a page that sends none) is measured too, on ``BENCH_TAPS // 5`` draws
  (``*_unpicked_*``): its unlock sends the 0x37 itself, after the intent is durable;
* after a draw or a return, what the next badge pays for the cabinet's facts to re-read
  that key;
* a key's fob on the MFRC522 antenna (chip simulator, reader pump) → unlock byte.

The big dataset is ``bench/dataset.py``'s (BENCH_PEOPLE/KEYS/EVENTS/LOANS; default 10,000
people, 2,000 keys in one cabinet, 1,000,000 chained events, 50,000 loans of which 300 are
out), copied to a temporary folder so the cached one is never changed. The generator makes
no access rights, so the bench grants the staff role every key group (``access_rights``,
role-wide, all week): the list is then the 2,000 keys with 300 of them shown as out. The
first 300 keys are out; 50 of those on the simulated bus are brought back first (a
Kerong bus drives at most 256 locks, so the simulated bus covers slots 1-208, 13 boards as
on the demo tower; the list and the policy weigh all 2,000 keys). The generated log's
intents have no outcomes, so the copy is marked reconciled (one ``cabinet.reconciled``
event) before the cabinet starts, as on a cabinet that has been running. Sizes: BENCH_TAPS (default 1000),
BENCH_ANTENNA (default 100) per dataset.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from common import (
    ALL_DAY,
    SpyPort,
    antenna_to_unlock,
    describe_database,
    disk_flush_ms,
    percentile,
    report,
    rss_mb,
)
from dataset import CABINET, Sizes, dataset
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drivers.locks.kerong import KerongLockBank, open_port
from kiosk import wiring
from kiosk.audit import NewEvent
from kiosk.cabinet import Cabinet, calendar_from, options_from
from kiosk.config import Settings
from kiosk.demo import load_demo
from kiosk.heap import freeze_startup_heap
from kiosk.runtime import Runtime
from kiosk.store.models import AccessRight, Department, Key, KeyGroup, Loan, Person, Role, Slot
from kiosk.wiring import build_simulated, kerong_slot_map

BUS_SLOTS = 208
READING_S = 0.01
"""The pause between picking a key and touching a reason; in life a second or more."""
_stocked_slots = wiring.stocked_slots


def grant_staff_every_group(runtime: Runtime) -> None:
    """The big dataset has no rights; staff may draw every group, all week, all day."""
    with Session(runtime.engine) as s:
        if s.scalar(select(AccessRight.id).limit(1)) is None:
            for group_id in s.scalars(select(KeyGroup.id)):
                s.add(AccessRight(role=Role.STAFF, key_group_id=group_id))
            s.commit()


def some_keys_in(runtime: Runtime, wanted: int = 50) -> None:
    """The dataset's first 300 keys are out, and they are the ones on the simulated bus
    (``BUS_SLOTS``): their loans are returned until ``wanted`` keys on the bus are in."""
    with Session(runtime.engine) as s:
        on_bus = select(Key.id).join(Slot, Key.home_slot_id == Slot.id).where(
            Slot.number <= BUS_SLOTS)
        out = list(s.scalars(select(Loan).where(Loan.returned_at.is_(None),
                                                Loan.key_id.in_(on_bus))
                             .order_by(Loan.drawn_at)))
        keys_on_bus = s.scalar(select(func.count()).select_from(on_bus.subquery())) or 0
        for loan in out[:max(0, wanted - (keys_on_bus - len(out)))]:
            loan.returned_at = loan.drawn_at
        s.commit()


def bus_slots_only(runtime: Runtime) -> tuple[list[int], dict[int, str]]:
    """The slots the simulated Kerong bus drives: one bus reaches 16 boards of 16 locks, so
    the big cabinet's first ``BUS_SLOTS`` (13 boards, as the demo tower); the other keys are
    in the records only, and the list and the policy still weigh all of them."""
    slots, fobs = _stocked_slots(runtime)
    kept = [n for n in slots if n <= BUS_SLOTS]
    return kept, {n: f for n, f in fobs.items() if n <= BUS_SLOTS}


def person_and_keys(runtime: Runtime, *, department: str | None) -> tuple[str, list[str]]:
    """A badge holder with no key out, and 50 keys that are in the cabinet."""
    with Session(runtime.engine) as s:
        out = set(s.scalars(select(Loan.key_id).where(Loan.returned_at.is_(None))))
        borrowers = set(s.scalars(select(Loan.borrower_id).where(Loan.returned_at.is_(None))))
        query = select(Person).order_by(Person.staff_no)
        if department:
            query = query.join(Department).where(Department.code == department)
        person = next(p for p in s.scalars(query) if p.id not in borrowers and p.cards)
        rows = s.execute(select(Key.id, Key.key_number).join(Slot, Key.home_slot_id == Slot.id)
                         .where(Key.fob_tag.is_not(None)).order_by(Slot.number)).all()
        keys = [number for key_id, number in rows if key_id not in out]
        if department:  # the demo tower: unit keys, which an engineer may draw
            keys = [k for k in keys if k.startswith("U")]
        return person.cards[0].uid, keys[:50]


def one_key_reread(cabinet: Cabinet, keys: list[str], times: int = 50) -> list[float]:
    """What the next badge pays after a draw or a return: the cabinet's facts re-read the
    one key the event named (``kiosk.cabinet.facts.ONE_KEY_EVENTS``) and group the keys by
    standing again. Timed by telling the facts what the writer thread tells them after a
    ``key.drawn`` (the event itself is not written: the taps above drew nothing)."""
    facts = cabinet.facts
    took = []
    for i in range(times):
        facts.snapshot()
        with facts._lock:  # what the listener notes after a key.drawn commits
            facts._dirty.add(keys[i % len(keys)])
        t0 = time.perf_counter()
        facts.snapshot()
        took.append((time.perf_counter() - t0) * 1000)
    return took


async def choose(cabinet: Cabinet, spy: SpyPort, key: str, written: list[float],
                 on_wire: list[float], first: list[float]) -> None:
    """One reason touched: the draw of ``key`` chosen, timed to its unlock byte; then the
    visit is cancelled (the key stays in: the next draw finds it there)."""
    spy.begin()
    t0 = time.perf_counter()
    await cabinet.choose_draw([key], "repair")
    assert cabinet.session.state.value == "releasing", cabinet.screen()["message"]
    written.append((spy.unlock_written_at - t0) * 1000)
    on_wire.append((spy.unlock_on_wire_at - t0) * 1000)
    first.append((spy.first_written_at - t0) * 1000)
    await cabinet.cancel()


async def measure(runtime: Runtime, settings: Settings, uid: str, keys: list[str], *,
                  taps: int, antenna_taps: int) -> dict[str, Any]:
    hw = build_simulated(runtime, persist=False)
    hw.locks.close()  # replace the driver with one whose port is spied on
    slots = sorted(hw.model.slots)
    spy = SpyPort(open_port(hw.board.url))
    locks = KerongLockBank(spy, kerong_slot_map(slots), max_pulse_ms=500)
    cabinet = Cabinet(runtime, locks, calendar=calendar_from(settings),
                      options=options_from(settings))
    await cabinet.start()
    await cabinet.tick()  # the start-up overdue check (K9): its alarms land before the taps
    for _ in range(1000):
        await cabinet.writer.drain(None)
        await asyncio.sleep(0.02)  # the next batch of alarms is queued by then, if any
        if cabinet.writer.pending == 0:
            break
    freeze_startup_heap()  # as the daemon does once it is serving (kiosk/heap.py)
    try:
        tap_ms: list[float] = []
        choose_ms: list[float] = []
        first_ms: list[float] = []
        wire_ms: list[float] = []
        listed = 0
        for i in range(taps):
            t0 = time.perf_counter()
            await cabinet.tap(uid)
            tap_ms.append((time.perf_counter() - t0) * 1000)
            listed = len(cabinet.visit.choices)
            key = keys[i % len(keys)]
            assert await cabinet.pick([key]) == 1
            while not locks.armed_boards():  # the 0x37 is out and the bus idle again
                await asyncio.sleep(0.001)
            await asyncio.sleep(READING_S)
            await choose(cabinet, spy, key, choose_ms, wire_ms, first_ms)
        frames_sent, frames_wire_ms = spy.frames_sent(), spy.wire_ms()
        frames_bytes = sum(len(raw) for _, raw in spy.unlock_frames)
        unpicked_ms: list[float] = []
        unpicked_wire_ms: list[float] = []
        for i in range(max(1, taps // 5)):
            await cabinet.tap(uid)
            await choose(cabinet, spy, keys[i % len(keys)], unpicked_ms, unpicked_wire_ms, [])
        unpicked_frames = spy.frames_sent()
        reread_ms = one_key_reread(cabinet, keys)
        antenna_ms = await antenna_to_unlock(cabinet, hw, spy, uid, keys[0], antenna_taps)
        return {
            "keys_listed": listed,
            "tap_to_list_ms_p50": percentile(tap_ms, 50),
            "tap_to_list_ms_p99": percentile(tap_ms, 99),
            "choice_to_first_request_byte_ms_p50": percentile(first_ms, 50),
            "choice_to_first_request_byte_ms_p99": percentile(first_ms, 99),
            "choice_to_unlock_byte_ms_p50": percentile(choose_ms, 50),
            "choice_to_unlock_byte_ms_p99": percentile(choose_ms, 99),
            "choice_to_unlock_byte_on_wire_ms_p50": percentile(wire_ms, 50),
            "choice_to_unlock_byte_on_wire_ms_p99": percentile(wire_ms, 99),
            "unlock_frames_sent": frames_sent,
            "unlock_wire_bytes": frames_bytes,
            "unlock_wire_ms_at_19200": frames_wire_ms,
            "choice_to_unlock_byte_unpicked_ms_p50": percentile(unpicked_ms, 50),
            "choice_to_unlock_byte_unpicked_ms_p99": percentile(unpicked_ms, 99),
            "choice_to_unlock_byte_unpicked_on_wire_ms_p99": percentile(unpicked_wire_ms, 99),
            "unlock_frames_sent_unpicked": unpicked_frames,
            "facts_after_a_draw_ms_p50": percentile(reread_ms, 50),
            "facts_after_a_draw_ms_p99": percentile(reread_ms, 99),
            "antenna_to_unlock_byte_ms_p50": percentile(antenna_ms, 50),
            "antenna_to_unlock_byte_ms_p99": percentile(antenna_ms, 99),
        }
    finally:
        await cabinet.stop()
        locks.close()
        hw.close()


async def on_big(taps: int, antenna_taps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    sizes = Sizes()
    folder, _ = dataset(sizes)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "big"
        shutil.copytree(folder, copy)
        flush = disk_flush_ms(copy)
        flush_paused = disk_flush_ms(copy, pause_s=READING_S)
        settings = Settings(data_dir=copy, cabinet_id=CABINET, database_url="",
                            business_hours=ALL_DAY)  # type: ignore[arg-type]
        runtime = Runtime.open(settings)
        try:
            grant_staff_every_group(runtime)
            some_keys_in(runtime)
            # The generated log's intents have no outcomes (they are filler, not visits);
            # a cabinet that has run has reconciled them, so the copy says so once, or the
            # start would try to resolve 200,000 of them.
            runtime.audit.append(NewEvent(type="cabinet.reconciled", rules=["K10"],
                                          payload={"bench": "generated log"}))
            wiring.stocked_slots = bus_slots_only
            uid, keys = person_and_keys(runtime, department=None)
            figures = await measure(runtime, settings, uid, keys, taps=taps,
                                    antenna_taps=antenna_taps)
            figures["disk_flush_ms_p50"] = percentile(flush, 50)
            figures["disk_flush_ms_p99"] = percentile(flush, 99)
            figures["disk_flush_after_pause_ms_p50"] = percentile(flush_paused, 50)
            figures["disk_flush_after_pause_ms_p99"] = percentile(flush_paused, 99)
            return figures, describe_database(runtime.engine, f"bench dataset {sizes.name}")
        finally:
            wiring.stocked_slots = _stocked_slots
            runtime.close()


async def on_demo(taps: int, antenna_taps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), cabinet_id="cab-01",
                            business_hours=ALL_DAY)  # type: ignore[arg-type]
        runtime = Runtime.open(settings)
        try:
            load_demo(runtime)
            uid, keys = person_and_keys(runtime, department="ENG")
            figures = await measure(runtime, settings, uid, keys, taps=taps,
                                    antenna_taps=antenna_taps)
            return figures, describe_database(runtime.engine, "demo tower")
        finally:
            runtime.close()


async def main() -> None:
    taps = int(os.environ.get("BENCH_TAPS", "1000"))
    antenna_taps = int(os.environ.get("BENCH_ANTENNA", "100"))
    big, big_data = await on_big(taps, antenna_taps)
    demo, demo_data = await on_demo(taps, antenna_taps)
    figures: dict[str, Any] = {"taps": taps, "antenna_taps": antenna_taps}
    figures.update({f"big_{k}": v for k, v in big.items()})
    figures.update({f"demo_{k}": v for k, v in demo.items()})
    figures["bench_process_rss_mb"] = rss_mb()
    report("tap_scale", figures, dataset={
        "name": f"{big_data['name']} and the demo tower", **big_data,
        "demo_tower": {k: v for k, v in demo_data.items() if k != "name"}})


if __name__ == "__main__":
    asyncio.run(main())
