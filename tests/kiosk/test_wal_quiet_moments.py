"""The cabinet folds SQLite's WAL when it is quiet, never in the commit of an intent
(``kiosk.store.wal``, ``Writer.checkpoint_wal``; issue 15: choice → unlock).

SQLite left to itself checkpoints inside whichever commit takes the WAL past 1,000 pages, an
intent's as likely as any: milliseconds (once a quarter of a second on the bench) between a
person's choice and the lock. Watched from outside, on the files: a checkpoint is the only
thing that writes the database file in WAL mode, and a WAL that starts over gets a new
header. Real SQLite, the demo tower's cabinet on the simulated bus.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from rig import Rig

from kiosk.audit import NewEvent
from kiosk.cabinet.writer import Writer
from kiosk.services import tx
from kiosk.store import wal


def database(rig: Rig) -> Path:
    return rig.runtime.settings.data_dir / "kiosk.db"


def files(rig: Rig) -> tuple[int, int, bytes]:
    """The database file's size and change time, and the WAL's header (new salts each time
    the WAL starts over)."""
    db = database(rig)
    with open(f"{db}-wal", "rb") as wal_file:
        header = wal_file.read(32)
    return db.stat().st_size, db.stat().st_mtime_ns, header


def wal_pages(rig: Rig) -> int:
    with sqlite3.connect(database(rig)) as other:
        return int(other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


async def filler(rig: Rig, commits: int) -> None:
    """Commits through the cabinet's writer, as a busy cabinet makes them (heartbeats)."""
    writer, audit = rig.cabinet.writer, rig.cabinet.audit
    for n in range(commits):
        event = NewEvent(type="daemon.heartbeat", rules=["A1"], payload={"n": n, "pad": "x" * 900})
        await writer.run(lambda s, e=event: tx.log(s, audit, e), event.type)


async def test_K2_an_intent_commit_past_sqlites_threshold_checkpoints_nothing(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """1,000+ pages in the WAL when the person chooses (a reader held them there meanwhile,
    as the admin API's reports do): the intent commits, the writer sends the unlock, and at
    that instant the database file is untouched and the WAL has not started over."""
    rig.cabinet.writer.idle_fold_s = 3600  # no quiet moment before the choice
    reader = sqlite3.connect(database(rig), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM events").fetchone()
    try:
        await filler(rig, 300)
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    await rig.cabinet.tap(uid)
    before = files(rig)
    at_unlock: list[Any] = []
    unlock = rig.cabinet.locks.unlock

    def spying(number: int) -> None:
        at_unlock.append(files(rig))
        unlock(number)

    monkeypatch.setattr(rig.cabinet.locks, "unlock", spying)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    assert rig.hw.model.is_unlocked(slot)
    assert at_unlock == [before]


async def test_K2_a_visit_that_ends_leaves_the_wal_folded_and_started_over(rig: Rig) -> None:
    """The fold is queued behind the visit's last writes: once they land, the database file
    has the WAL's pages and the WAL holds the one page that started it over, so the next
    person's intent appends to it without a header to flush."""
    rig.cabinet.writer.idle_fold_s = 3600  # only the visit's end folds here
    await filler(rig, 20)
    uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(uid)
    await rig.cabinet.choose_draw(["U1203"], "repair")
    before = files(rig)
    await rig.cabinet.cancel()  # the key was not taken: the visit ends
    assert await rig.cabinet.writer.drain(5)
    size, mtime, header = files(rig)
    assert (size, mtime) != before[:2] and header != before[2]
    assert wal_pages(rig) == 1
    assert [e.type for e in rig.events("draw.")][-2:] == ["draw.intent", "draw.abandoned"]


async def test_K2_the_writer_folds_after_a_quiet_spell_without_any_visit(rig: Rig) -> None:
    """Writes with no visit around them (a heartbeat, an alarm from the scan): folded once
    nothing more has come for ``idle_fold_s``."""
    writer = rig.cabinet.writer
    writer.checkpoint_wal()  # all folded: the thread now waits for work with no timer
    assert await writer.drain(5)
    before = files(rig)
    writer.idle_fold_s = 0.05
    await filler(rig, 10)
    for _ in range(200):
        if files(rig)[2] != before[2]:
            break
        await asyncio.sleep(0.025)
    # The new header is in the file before the page that starts the WAL over is committed:
    # the thread finishes its fold before it takes the drain's marker.
    assert await writer.drain(5)
    assert files(rig)[1:] != before[1:]
    assert wal_pages(rig) == 1


async def test_the_writers_connection_goes_back_to_the_pool_with_sqlites_default(
        rig: Rig) -> None:
    """The writer holds its own connection's automatic checkpoint back; a connection it
    hands back (closing, or after a failure) checkpoints as SQLite's default again for
    whoever takes it next (the admin API)."""
    writer = Writer(rig.cabinet.audit, name="writer-under-test")
    await writer.run(lambda s: tx.log(s, rig.cabinet.audit, NewEvent(
        type="daemon.heartbeat", rules=["A1"], payload={})), "heartbeat")
    await writer.aclose()
    engine = rig.runtime.engine
    pooled = [engine.raw_connection() for _ in range(engine.pool.checkedin())]
    try:
        assert pooled
        assert {c.driver_connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
                for c in pooled} == {wal.DEFAULT_PAGES}
    finally:
        for c in pooled:
            c.close()
