"""Tap → release: from a card read entering the daemon to the last byte of the unlock frame
written on the simulated RS-485 bus, including the policy and the durable intent record.
And card on antenna → unlock through the MFRC522 chip simulator (reader polling/IRQ path).

The Kerong port is wrapped so the time the 0x31 frame's last byte is written is taken on
the wire side of the driver. Sizes: BENCH_TAPS (default 1000), BENCH_ANTENNA (default 100).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from common import describe_database, percentile, report, rss_mb
from sqlalchemy import select
from sqlalchemy.orm import Session

from drivers.locks.kerong import KerongLockBank, open_port
from drivers.locks.kerong.codec import CMD_UNLOCK, FrameParser
from kiosk.cabinet import Cabinet, calendar_from, options_from
from kiosk.config import Settings
from kiosk.demo import load_demo
from kiosk.heap import freeze_startup_heap
from kiosk.runtime import Runtime
from kiosk.store.models import Department, Key, Person, Slot
from kiosk.wiring import ReaderPump, build_simulated, kerong_slot_map

BAUD = 19200
ALL_DAY = {"start": "00:00:00", "end": "23:59:59", "weekdays": [1, 2, 3, 4, 5, 6, 7],
           "holidays": []}


class SpyPort:
    """Delegates to a pyserial port and notes when an unlock frame has been written.

    The driver may write a whole request (0x37 unlock time, 0x31 unlock, 0x30 status) in one
    call, so the written bytes are parsed and the time is taken once the call that carried
    the 0x31 frame has been flushed. Every frame written from ``begin()`` up to and
    including the unlock is kept, so the wire time counts all the bytes one unlock costs,
    not only the 0x31 frame.
    """

    def __init__(self, port: Any) -> None:
        self._port = port
        self.unlock_written_at = 0.0
        self.unlock_frames: list[tuple[int, bytes]] = []
        self._pending: list[tuple[int, bytes]] = []

    def begin(self) -> None:
        self._pending = []

    def write(self, data: bytes) -> int | None:
        n = self._port.write(data)
        frames, _ = FrameParser().feed_all(bytes(data))
        for frame in frames:
            self._pending.append((frame.cmd, frame.encode()))
            if frame.cmd == CMD_UNLOCK:
                self._port.flush()
                self.unlock_written_at = time.perf_counter()
                self.unlock_frames = self._pending
                self._pending = []
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)


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
        # 10 bits a byte on the wire (start, 8 data, stop); every frame sent for the unlock
        wire_bytes = sum(len(raw) for _, raw in spy.unlock_frames)
        wire_ms = wire_bytes * 10 / BAUD * 1000
        wire_frames = "+".join(f"0x{cmd:02X}" for cmd, _ in spy.unlock_frames)

        # Card on antenna → unlock: a key fob tapped by a person already signed in (badge
        # tapped, the screen listing their keys) opens its home slot with no screen choice in
        # between, so the whole path is reader + policy + intent + bus. (A fob tapped with
        # nobody signed in asks for the returner's badge first, K4.)
        key_number = keys[0]
        await cabinet.tap(uid)
        await cabinet.choose_draw([key_number], "repair")
        with Session(runtime.engine) as s:
            key = s.scalars(select(Key).where(Key.key_number == key_number)).one()
            fob, slot = key.fob_tag, s.get(Slot, key.home_slot_id).number  # type: ignore[union-attr]
        hw.model.take(slot)
        hw.model.shut_slot(slot)
        await cabinet.tick()
        pump = ReaderPump(hw.reader, cabinet.tap, asyncio.get_running_loop()).start()
        antenna_ms = []
        for _ in range(antenna_taps):
            await cabinet.tap(uid)  # the borrower signed in, not through the reader
            assert cabinet.session.state.value == "choosing", cabinet.screen()["message"]
            spy.unlock_written_at = 0.0
            t0 = time.perf_counter()
            hw.tap(fob or "", hold_s=0.15)
            while spy.unlock_written_at == 0.0:
                await asyncio.sleep(0.0005)
                if time.perf_counter() - t0 > 5:
                    raise RuntimeError("the fob tap never opened the slot")
            antenna_ms.append((spy.unlock_written_at - t0) * 1000)
            await cabinet.cancel()
            await asyncio.sleep(0.5)  # fob away long enough for the reader's hold-off
        pump.stop()
        rss_after = rss_mb()
        await cabinet.stop()
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
