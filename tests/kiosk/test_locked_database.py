"""Writes off the loop (issue 15, item 2): another process holds the database locked for
20 s, and the cabinet goes on. The screen answers, the sensor scan runs (a key pulled from a
locked slot is seen at once and its K2 alarm lands when the lock goes), no lock moves
without its durable intent (K2, K10), and everything queued meanwhile is written once the
lock is released, in the order it was seen, on a chain that verifies.

A real SQLite file, a real second process holding ``BEGIN EXCLUSIVE``, the real cabinet loop
(``Cabinet.run``) scanning the simulated lock bus. Slow by nature (it waits out the lock),
so it lives in a file of its own."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest
from rig import Rig, close_rig, make_rig

from kiosk.audit.verify import verify_log

pytestmark = pytest.mark.slow

LOCK_S = 20
BLOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


def committed_intents(db: Path, slot: int) -> int:
    """``draw.intent`` events for ``slot`` that another connection can see: committed ones."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE type = 'draw.intent' AND slot = ?",
                           (slot,)).fetchone()
    return int(row[0])


def still_locked(db: Path) -> bool:
    """Whether the other process still holds the write lock (a write would have to wait)."""
    probe = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc)
    else:
        probe.execute("ROLLBACK")
        return False
    finally:
        probe.close()


async def seen_missing(rig: Rig, slot: int) -> bool:
    """Wait (by the cabinet's own scan, not by calling it) until the scan reports the slot
    empty; False if it never does while we look."""
    for _ in range(200):
        if rig.cabinet.last_scan().get(slot) is False:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_database_locked_by_another_process_freezes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = await make_rig(tmp_path)
    db = tmp_path / "var" / "kiosk.db"
    unlocks: list[tuple[int, int]] = []  # (slot, its intents committed at the unlock)
    unlock = rig.cabinet.locks.unlock

    def unlock_after_checking(slot: int, pulse_ms: int | None = None) -> None:
        unlocks.append((slot, committed_intents(db, slot)))
        unlock(slot, pulse_ms)

    monkeypatch.setattr(rig.cabinet.locks, "unlock", unlock_after_checking)
    runner = asyncio.create_task(rig.cabinet.run())
    try:
        uid, person = rig.card_of(dept="ENG")
        wanted, _ = rig.key("U1203")
        pulled_first, _ = rig.key("U1204")
        pulled_next, _ = rig.key("U1205")
        blocker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BLOCKER, str(db), str(LOCK_S),
            stdout=asyncio.subprocess.PIPE)
        assert blocker.stdout is not None
        assert await blocker.stdout.readline() == b"locked\n"

        # The screen answers: a badge starts a visit and the key list is shown.
        await rig.cabinet.tap(uid)
        screen = rig.cabinet.screen()
        assert screen["state"] == "choosing" and screen["person"] == person.name
        assert still_locked(db)
        assert any(k["key_number"] == "U1203" for k in screen["keys"])

        # K2: a key pulled from a locked slot is seen by the running scan.
        rig.hw.model.take(pulled_first, force=True)
        assert await seen_missing(rig, pulled_first)
        assert still_locked(db), "seen while the other process still holds the lock"
        assert rig.events("alarm.") == [], "nothing can be written while the lock is held"

        # No lock moves without its durable intent: the draw is refused as a storage fault.
        await rig.cabinet.choose_draw(["U1203"], "repair")
        assert not rig.hw.model.is_unlocked(wanted), "a lock moved without a durable intent"
        screen = rig.cabinet.screen()
        assert screen["state"] == "idle" and screen["message"]["code"] == "storage_fault"
        assert still_locked(db), "refused while the lock is held, not after it"

        # The scan still runs after all that: a second pull is seen too, still in the lock.
        rig.hw.model.take(pulled_next, force=True)
        assert await seen_missing(rig, pulled_next)
        assert still_locked(db), "seen while the other process still holds the lock"
        assert rig.cabinet.writer.pending > 0, "the alarms wait in the writer's queue"

        assert await blocker.wait() == 0
        assert await rig.cabinet.writer.drain(None)

        # Everything queued landed, in the order it was seen, and the chain verifies.
        alarms = rig.events("alarm.key_removed_unauthorised")
        assert [e.slot for e in alarms] == [pulled_first, pulled_next]
        assert rig.events("draw.intent") == [], "the refused draw's intent never committed"
        result = verify_log(rig.runtime.engine, cabinet_id="cab-01")
        assert result.ok, result.problems

        # Once the lock is gone, a draw opens, and its intent was durable before the lock.
        await rig.cabinet.tap(uid)
        await rig.cabinet.choose_draw(["U1203"], "repair")
        assert rig.hw.model.is_unlocked(wanted)
        assert unlocks == [(wanted, 1)]
    finally:
        rig.cabinet.request_stop()
        await runner
        await close_rig(rig)
