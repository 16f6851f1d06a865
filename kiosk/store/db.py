"""Engine and session creation with the durability settings the audit log relies on.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed event survives a power cut),
foreign keys on, a busy timeout so two writers queue instead of failing, and each
connection's page cache held to ``CACHE_KIB``. Transactions
that must serialise (audit appends) begin ``IMMEDIATE`` on SQLite so the write lock is taken
before the chain head is read; on PostgreSQL the same code takes a row lock instead.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("kiosk.store")

BUSY_TIMEOUT_MS = 10_000
CACHE_KIB = 512
"""Each SQLite connection's page cache, at most (SQLite's own default is 2,000 KiB). A cache
fills with the pages its connection touches and keeps them up to its cap, so a daemon with
four connections grew by about 2 MB over its first thousands of draws, as the log grew
under them, before it levelled off (issue 15, item 4: ``kiosk_sqlite_memory_bytes``
showed it was that). 128 pages hold what is hot on every path (the B-trees' upper levels,
the log's last leaves, the chain head); anything else is read back from the operating
system's page cache, which RSS does not count, at a few microseconds a page."""
IMMEDIATE = "kiosk_begin_immediate"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's (or PostgreSQL's lock timeout) "try again later", raised
    through SQLAlchemy or by the DB-API connection itself (``kiosk.store.wal``)."""
    text = str(exc).lower()
    return isinstance(exc, OperationalError | sqlite3.OperationalError) and (
        "locked" in text or "busy" in text or "lock timeout" in text)


def make_engine(url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS,
                cache_kib: int = CACHE_KIB, **kwargs: Any) -> Engine:
    """Create an engine; for SQLite also create the folder and install the pragmas.

    ``busy_timeout_ms`` is how long a writer waits for another one's lock before failing;
    ``cache_kib`` each connection's page cache at most.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        private_database_files(Path(parsed.database))
    engine = create_engine(
        url, connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False}, **kwargs
    )
    _install_sqlite_pragmas(engine, busy_timeout_ms, cache_kib)
    return engine


PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


def private_database_files(database: Path) -> None:
    """Make the SQLite file (and its WAL and shared-memory files) owner-only, whatever the
    umask: it holds password hashes and owners' phone numbers (A1, issue 16 item 10).

    The file is created here, 0600, before SQLite opens it, because SQLite gives the WAL and
    SHM files it makes the database file's own mode; files left from an earlier, laxer run
    are tightened.
    """
    if not database.exists():
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        try:
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(PRIVATE_FILE)
        except PermissionError:  # someone else's file: say so, do not stop the cabinet
            log.warning("cannot make %s private (owner only): not its owner", path)


def private_folder(folder: Path) -> None:
    """The data folder, owner-only (0700), whatever the umask (issue 16, item 10)."""
    folder.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    try:
        if folder.stat().st_mode & 0o077:
            folder.chmod(PRIVATE_FOLDER)
    except PermissionError:
        log.warning("cannot make %s private (owner only): not its owner", folder)


def _install_sqlite_pragmas(engine: Engine, busy_timeout_ms: int, cache_kib: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN itself, so we choose its kind.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute(f"PRAGMA cache_size=-{int(cache_kib)}")  # negative: KiB, not pages
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def write_session(engine: Engine, *, connection: Connection | None = None) -> Iterator[Session]:
    """A session whose transaction holds the database write lock from its first statement.

    Use it where a read decides a write (the audit chain head, a slot assignment), so two
    writers never both read the same state. ``connection``: run it on that connection (the
    cabinet's writer thread keeps one of its own) instead of one from the engine's pool.
    """
    if connection is not None:
        with _write_on(connection) as session:
            yield session
        return
    with engine.connect() as conn, _write_on(conn) as session:
        yield session


@contextmanager
def _write_on(conn: Connection) -> Iterator[Session]:
    if not conn.get_execution_options().get(IMMEDIATE):  # a kept connection has it already
        conn = conn.execution_options(**{IMMEDIATE: True})
    with Session(bind=conn, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def describe_database(engine: Engine) -> str:
    """A printable database location with any password hidden."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return str(Path(url.database or ":memory:").resolve()) if url.database else ":memory:"
    return url.render_as_string(hide_password=True)
