"""SQLite's write-ahead log folded at a quiet moment (``kiosk.store.wal``, issue 15).

What a cabinet would notice: the fold copies the WAL into the database file and starts the
WAL over with one page written, so the next intent's commit neither checkpoints nor writes
the WAL's header; a reader in the middle of a read or another process holding the write
lock leaves the fold partial or skipped, never waiting and never failing. Real SQLite files,
a second process for the lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lock_holder import write_lock_held
from sqlalchemy import Connection, Engine, text

from kiosk.store import wal
from kiosk.store.db import make_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'kiosk.db'}", busy_timeout_ms=5000)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE rows (n INTEGER, body TEXT)"))
    yield engine
    engine.dispose()


def write_rows(engine: Engine, commits: int) -> None:
    for n in range(commits):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO rows VALUES (:n, :b)"), {"n": n, "b": "x" * 500})


def wal_header(db: Path) -> bytes:
    """The WAL file's 32-byte header: its salts change each time the WAL starts over."""
    with open(f"{db}-wal", "rb") as f:
        return f.read(32)


def pragma(conn: Connection, name: str) -> Any:
    """A PRAGMA's value on the connection itself (through SQLAlchemy it would begin first)."""
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    return dbapi.execute(f"PRAGMA {name}").fetchone()[0]


def wal_pages(db: Path) -> int:
    """Pages in the WAL as another connection sees them (``wal_checkpoint`` reports them)."""
    with sqlite3.connect(db) as other:
        return int(other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


def test_a_fold_copies_the_wal_and_starts_it_over_with_one_page(engine: Engine,
                                                                 tmp_path: Path) -> None:
    db = tmp_path / "kiosk.db"
    write_rows(engine, 20)
    before = (db.stat().st_size, wal_header(db))
    with engine.connect() as conn:
        folded = wal.fold(conn)
    assert folded is not None and folded.busy == 0
    assert folded.wal_pages >= 20 and folded.folded_pages == folded.wal_pages
    assert db.stat().st_size > before[0]  # the rows are in the database file now
    assert wal_header(db) != before[1]    # started over: new salts, header already flushed
    assert wal_pages(db) == 1             # with the one page that started it
    with engine.connect() as conn:  # nothing lost, nothing changed
        assert conn.scalar(text("SELECT count(*) FROM rows")) == 20
        assert conn.scalar(text("PRAGMA user_version")) == 0


def test_the_next_commit_after_a_fold_appends_to_the_started_wal(engine: Engine,
                                                                 tmp_path: Path) -> None:
    """The point of starting over at the quiet moment: the commit after it (an intent's)
    writes no header and copies nothing into the database file."""
    db = tmp_path / "kiosk.db"
    write_rows(engine, 5)
    with engine.connect() as conn:
        wal.fold(conn)
    header, size, mtime = wal_header(db), db.stat().st_size, db.stat().st_mtime_ns
    write_rows(engine, 1)
    assert wal_header(db) == header
    assert (db.stat().st_size, db.stat().st_mtime_ns) == (size, mtime)


def test_a_reader_in_a_read_leaves_the_fold_partial_and_the_wal_as_it_is(
        engine: Engine, tmp_path: Path) -> None:
    db = tmp_path / "kiosk.db"
    write_rows(engine, 3)
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM rows").fetchone() == (3,)  # snapshot held
    write_rows(engine, 3)  # pages the reader's snapshot does not see
    header = wal_header(db)
    try:
        with engine.connect() as conn:
            folded = wal.fold(conn)
        assert folded is not None and folded.folded_pages < folded.wal_pages
        assert wal_header(db) == header  # not started over under the reader
        assert reader.execute("SELECT count(*) FROM rows").fetchone() == (3,)
    finally:
        reader.execute("ROLLBACK")
        reader.close()
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM rows")) == 6


def test_another_process_holding_the_write_lock_is_not_waited_for(engine: Engine,
                                                                   tmp_path: Path) -> None:
    """The fold copies what it can and skips starting the WAL over: it never sits out the
    busy timeout (5 s here) on the writer thread, and the timeout is as it was after."""
    db = tmp_path / "kiosk.db"
    write_rows(engine, 10)
    with write_lock_held(db) as holder:
        header = wal_header(db)
        done: list[wal.Folded | None] = []
        with engine.connect() as conn:
            worker = threading.Thread(target=lambda: done.append(wal.fold(conn)))
            worker.start()
            worker.join(timeout=4)  # less than the busy timeout; the lock is still held
            assert not worker.is_alive(), "the fold waited for the other process's lock"
            assert done[0] is not None and done[0].folded_pages == done[0].wal_pages
            assert wal_header(db) == header  # the other process's lock: not started over
            assert pragma(conn, "busy_timeout") == 5000
        assert holder.release() == 0


def test_the_writer_connection_holds_automatic_checkpoints_back_and_gives_them_back(
        engine: Engine, tmp_path: Path) -> None:
    """Held back, 1,500 pages of commits stay in the WAL (SQLite's default would have
    checkpointed inside the commit that passed 1,000); given back, the default again."""
    db = tmp_path / "kiosk.db"
    with engine.connect() as conn:
        wal.hold_back(conn)
        size = db.stat().st_size
        for n in range(1500):
            conn.execute(text("INSERT INTO rows VALUES (:n, 'x')"), {"n": n})
            conn.commit()
        assert db.stat().st_size == size  # no commit copied anything into the file
        assert pragma(conn, "wal_autocheckpoint") == wal.BACKSTOP_PAGES
        wal.give_back(conn)
        assert pragma(conn, "wal_autocheckpoint") == wal.DEFAULT_PAGES
    assert wal_pages(db) >= 1500
