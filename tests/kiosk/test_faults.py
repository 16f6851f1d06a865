"""Faults on the bus, the reader and the disk: each yields a fault event and a clear state,
and no lock moves without a durable intent record (issue: benchmarks and fault harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from disk_full import database_full
from rig import Rig, close_rig, make_rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.store.models import Alarm


def _alarm_kinds(rig: Rig) -> list[str]:
    with Session(rig.runtime.engine) as s:
        return list(s.scalars(select(Alarm.kind)))


@pytest.mark.parametrize("fault", [{"no_reply": True}, {"garbage_instead": True},
                                   {"bad_checksum": True}])
async def test_rs485_fault_during_unlock_is_a_lock_fault_and_nothing_is_drawn(
    rig: Rig, fault: dict[str, bool]
) -> None:
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    assert not rig.hw.model.is_unlocked(slot)
    await rig.cabinet.tap(uid)
    rig.hw.board.sim.set_faults(**fault)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    rig.hw.board.sim.clear_faults()
    screen = rig.cabinet.screen()
    assert screen["state"] == "idle" and screen["message"]["code"] == "lock_fault"
    assert "lock_fault" in _alarm_kinds(rig)
    types = [e.type for e in rig.events()]
    # The intent was durable before the first byte went out; the failure is its outcome.
    assert types.index("draw.intent") < types.index("unlock.failed")
    assert rig.open_loans() == []


async def test_board_offline_mid_draw_then_back_records_the_take(rig: Rig) -> None:
    uid, person = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    rig.hw.board.sim.set_faults(offline_boards={(slot - 1) // 16})
    rig.hw.take(slot)
    await rig.settle()  # the scan fails: one bus fault, the draw still waits
    assert "bus_fault" in _alarm_kinds(rig)
    assert rig.cabinet.screen()["state"] == "releasing"
    rig.hw.board.sim.clear_faults()
    await rig.settle()
    assert [e.type for e in rig.events("lock.bus_restored")] == ["lock.bus_restored"]
    loans = rig.open_loans()
    assert len(loans) == 1 and loans[0].borrower_id == person.id


async def test_disk_full_before_the_intent_means_no_lock_moves(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    with database_full(rig):
        await rig.cabinet.choose_draw(["U1203"], "repair")
        assert not rig.hw.model.is_unlocked(slot), "a lock moved without a durable intent"
        screen = rig.cabinet.screen()
        assert screen["state"] == "idle" and screen["message"]["code"] == "storage_fault"
    assert rig.open_loans() == []


async def test_disk_full_when_a_returner_taps_opens_nothing_and_says_so_K4(rig: Rig) -> None:
    """A fob return whose intent cannot be written: no slot opens, the screen leaves the
    returner's wait and says storage fault, and the key is still on loan."""
    uid, _ = rig.card_of(dept="ENG")
    slot, fob = await rig.drawn(uid, "U1203")
    await rig.cabinet.tap(fob)
    assert rig.cabinet.screen()["state"] == "await_returner"
    with database_full(rig):
        await rig.cabinet.tap(uid)  # the borrower's badge: the return would open now
        assert not rig.hw.model.is_unlocked(slot), "a lock moved without a durable intent"
        screen = rig.cabinet.screen()
        assert screen["state"] == "idle" and screen["message"]["code"] == "storage_fault"
        assert screen["person"] is None
    assert len(rig.open_loans()) == 1


async def test_reader_unplugged_is_a_fault_event_and_taps_work_again_after(rig: Rig) -> None:
    import asyncio

    from kiosk.wiring import ReaderPump, reader_fault_logger

    pump = ReaderPump(rig.hw.reader, rig.cabinet.tap, asyncio.get_running_loop(),
                      reader_fault_logger(rig.runtime.audit, "sim-mfrc522")).start()
    try:
        rig.hw.chip.unplugged = True
        for _ in range(100):
            if rig.events("reader.fault"):
                break
            await asyncio.sleep(0.05)
        assert len(rig.events("reader.fault")) == 1
        rig.hw.chip.unplugged = False
        for _ in range(100):
            if rig.events("reader.restored"):
                break
            await asyncio.sleep(0.05)
        assert len(rig.events("reader.restored")) == 1
        assert len(rig.events("reader.fault")) == 1, "one event per outage, not per poll"
        uid, person = rig.card_of(dept="ENG")
        rig.hw.tap(uid, hold_s=0.2)
        for _ in range(100):
            if rig.cabinet.screen()["person"] == person.name:
                break
            await asyncio.sleep(0.05)
        assert rig.cabinet.screen()["state"] == "choosing"
    finally:
        pump.stop()


async def test_database_locked_by_another_process_means_no_lock_moves(tmp_path: Path) -> None:
    """Another writer holds the database (an operator's sqlite3 shell in a transaction):
    the intent cannot be made durable, so nothing opens; once the lock goes, draws work."""
    import sqlite3

    rig = await make_rig(tmp_path, database_busy_timeout_ms=100)
    try:
        uid, _ = rig.card_of(dept="ENG")
        slot, _ = rig.key("U1203")
        await rig.cabinet.tap(uid)
        blocker = sqlite3.connect(tmp_path / "var" / "kiosk.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            await rig.cabinet.choose_draw(["U1203"], "repair")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert not rig.hw.model.is_unlocked(slot), "a lock moved without a durable intent"
        screen = rig.cabinet.screen()
        assert screen["state"] == "idle" and screen["message"]["code"] == "storage_fault"
        await rig.cabinet.tap(uid)
        await rig.cabinet.choose_draw(["U1203"], "repair")
        assert rig.hw.model.is_unlocked(slot)
    finally:
        await close_rig(rig)
