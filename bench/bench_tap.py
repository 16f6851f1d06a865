"""Tap → release: from a card read entering the daemon to the last byte of the unlock frame
written on the simulated RS-485 bus, including the policy and the durable intent record.
And card on antenna → unlock through the MFRC522 chip simulator (reader polling/IRQ path).

The Kerong port is wrapped (``common.SpyPort``) so the time the 0x31 frame's last byte is
written is taken on the wire side of the driver; the fob loop is ``common.antenna_to_unlock``,
shared with ``bench_tap_scale.py``. Sizes: BENCH_TAPS (default 1000), BENCH_ANTENNA (default 100).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import (
    ALL_DAY,
    SpyPort,
    antenna_to_unlock,
    describe_database,
    percentile,
    report,
    rss_mb,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from drivers.locks.kerong import KerongLockBank, open_port
from kiosk.cabinet import Cabinet, calendar_from, options_from
from kiosk.config import Settings
from kiosk.demo import load_demo
from kiosk.heap import freeze_startup_heap
from kiosk.runtime import Runtime
from kiosk.store.models import Department, Key, Person, Slot
from kiosk.wiring import build_simulated, kerong_slot_map


async def main() -> None:
    taps = int(os.environ.get("BENCH_TAPS", "1000"))
    antenna_taps = int(os.environ.get("BENCH_ANTENNA", "100"))
    with tempfile.TemporaryDirectory() as tmp:
        # open round the clock, so a run after 18:00 or at the weekend measures the same
        # day-time draw and not a K8 night opening waiting for a duty manager
        settings = Settings(data_dir=Path(tmp), cabinet_id="cab-01",
                            business_hours=ALL_DAY)  # type: ignore[arg-type]
        runtime = Runtime.open(settings)
        load_demo(runtime)
        hw = build_simulated(runtime)
        hw.locks.close()  # replace the driver with one whose port is spied on
        slots = sorted(hw.model.slots)
        spy = SpyPort(open_port(hw.board.url))
        locks = KerongLockBank(spy, kerong_slot_map(slots), max_pulse_ms=500)
        cabinet = Cabinet(runtime, locks, calendar=calendar_from(settings),
                          options=options_from(settings))
        await cabinet.start()
        freeze_startup_heap()  # as the daemon does once it is serving
        with Session(runtime.engine) as s:
            person = s.scalars(select(Person).join(Department).where(Department.code == "ENG")
                               .order_by(Person.staff_no)).first()
            assert person is not None
            uid = person.cards[0].uid
            keys = list(s.scalars(select(Key.key_number).join(Slot, Key.home_slot_id == Slot.id)
                                  .where(Key.key_number.like("U%")).order_by(Slot.number).limit(50)))
        rss_before = rss_mb()
        tap_ms, choose_ms, total_ms = [], [], []
        for i in range(taps):
            t0 = time.perf_counter()
            await cabinet.tap(uid)
            t1 = time.perf_counter()
            spy.begin()
            await cabinet.choose_draw([keys[i % len(keys)]], "repair")
            assert cabinet.session.state.value == "releasing", cabinet.screen()["message"]
            t2 = spy.unlock_written_at
            tap_ms.append((t1 - t0) * 1000)
            choose_ms.append((t2 - t1) * 1000)
            total_ms.append((t2 - t0) * 1000)
            await cabinet.cancel()
        wire_bytes = sum(len(raw) for _, raw in spy.unlock_frames)
        wire_ms, wire_frames = spy.wire_ms(), spy.frames_sent()
        antenna_ms = await antenna_to_unlock(cabinet, hw, spy, uid, keys[0], antenna_taps)
        rss_after = rss_mb()
        await cabinet.stop()
        locks.close()
        hw.close()
        measured_on = describe_database(runtime.engine, "demo tower")
        runtime.close()
    report("tap_release", {
        "taps": taps,
        "tap_to_screen_ms_p50": percentile(tap_ms, 50),
        "tap_to_screen_ms_p99": percentile(tap_ms, 99),
        "choice_to_unlock_byte_ms_p50": percentile(choose_ms, 50),
        "choice_to_unlock_byte_ms_p99": percentile(choose_ms, 99),
        "tap_plus_choice_to_unlock_byte_ms_p50": percentile(total_ms, 50),
        "tap_plus_choice_to_unlock_byte_ms_p99": percentile(total_ms, 99),
        "tap_plus_choice_to_unlock_byte_ms_max": max(total_ms),
        "unlock_frames_sent": wire_frames,
        "unlock_wire_bytes": wire_bytes,
        "unlock_wire_ms_at_19200": wire_ms,
        "antenna_taps": antenna_taps,
        "antenna_to_unlock_byte_ms_p50": percentile(antenna_ms, 50),
        "antenna_to_unlock_byte_ms_p99": percentile(antenna_ms, 99),
        "antenna_to_unlock_byte_ms_max": max(antenna_ms),
        "bench_process_rss_mb_before": rss_before,
        "bench_process_rss_mb_after": rss_after,
    }, dataset=measured_on)


if __name__ == "__main__":
    asyncio.run(main())
