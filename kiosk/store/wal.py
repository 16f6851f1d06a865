"""SQLite's write-ahead log folded back into the database at quiet moments, never inside the
commit of an intent (issue 15).

SQLite checkpoints on its own: the commit that takes the WAL past ``wal_autocheckpoint``
pages (1,000 by default) copies them into the database file and flushes it before that
commit returns. On the cabinet's writer thread that commit can be any one, and on the tap
bench (big dataset, 600 choices) it was the intent of a draw about once in a hundred:
5 to 8 ms, once 245 ms, between the person's choice and the lock. Turning the automatic
checkpoint off alone took those away and made every commit slower (p50 0.97 → 1.33 ms):
a WAL that only grows is flushed as blocks appended to a file, which costs the disk more
than overwriting blocks the file already has, and a WAL whose pages were all checkpointed
is written from its start again by the next commit.

So the cabinet's writer connection (``kiosk.cabinet.writer``) holds its automatic
checkpoint back to ``BACKSTOP_PAGES`` and checkpoints itself when nothing waits: when a
visit has ended (the next person's choice is seconds away) and when nothing was written for
a while. Not at the tap: the fold's write would land between the person's list and their
choice, and a choice decided from the list stands only while nothing at all was committed
since (``CabinetFacts.commit_mark``), so every choice would have been decided again
from fresh reads. A passive checkpoint never waits for a reader or a writer; what it cannot
fold now it folds the next time. Other connections (the admin API's, the
command line's) keep SQLite's default: their commits are not on the way to a lock.

PostgreSQL has no such file: every function here does nothing there.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import NamedTuple

from sqlalchemy import Connection

from kiosk.store.db import is_busy, is_sqlite

log = logging.getLogger("kiosk.store")

DEFAULT_PAGES = 1000
"""SQLite's own ``wal_autocheckpoint``, given back to a connection returned to the pool."""
BACKSTOP_PAGES = 4000
"""The writer connection's automatic checkpoint: about 16 MB of WAL, a bound a cabinet that
ever pauses never reaches (its own checkpoints come first); it keeps the file bounded under
a storm of writes with no pause at all."""


class Folded(NamedTuple):
    """What ``PRAGMA wal_checkpoint`` reports: busy (1 if it could not take the locks it needs
    at all), pages in the WAL, pages of those now in the database file (fewer while a reader
    still reads an older state of the database)."""

    busy: int
    wal_pages: int
    folded_pages: int


def _is_sqlite(connection: Connection) -> bool:
    return is_sqlite(connection.engine)


def hold_back(connection: Connection) -> None:
    """The writer's connection: SQLite's automatic checkpoint moved to ``BACKSTOP_PAGES``."""
    if _is_sqlite(connection):
        _pragma(connection, f"wal_autocheckpoint={BACKSTOP_PAGES}")


def give_back(connection: Connection) -> None:
    """Before the connection goes back to the pool: SQLite's default again."""
    if _is_sqlite(connection):
        _pragma(connection, f"wal_autocheckpoint={DEFAULT_PAGES}")


def fold(connection: Connection) -> Folded | None:
    """A passive checkpoint on ``connection`` (not in a transaction): as many WAL pages as no
    reader still needs copied into the database file and flushed. None on PostgreSQL."""
    if not _is_sqlite(connection):
        return None
    row = _pragma(connection, "wal_checkpoint(PASSIVE)")
    if row is None:
        return None
    folded = Folded(*row)
    if folded.wal_pages and not folded.busy and folded.folded_pages == folded.wal_pages:
        _restart(connection)
    return folded


def _restart(connection: Connection) -> None:
    """Start the WAL over now, with one page written, rather than in the next commit.

    The first commit into a WAL that starts over writes the file's header and, at
    ``synchronous=FULL``, flushes it before its own pages: two flushes instead of one (bench,
    600 choices: an intent's commit p50 1.52 ms after a checkpoint against 0.97 ms). So the
    quiet moment pays for that too: the database's ``user_version`` written unchanged, the
    smallest write SQLite has (page 1). Not waited for: a database another writer holds is
    left alone, its next commit starts the WAL over."""
    (waits_ms,) = _pragma(connection, "busy_timeout") or (0,)
    _pragma(connection, "busy_timeout=0")
    try:
        (version,) = _pragma(connection, "user_version") or (0,)
        _pragma(connection, f"user_version={int(version)}")
    except sqlite3.OperationalError as exc:
        if not is_busy(exc):
            raise
        log.debug("WAL not started over (database busy): %s", exc)
    finally:
        _pragma(connection, f"busy_timeout={int(waits_ms)}")


def _pragma(connection: Connection, pragma: str) -> tuple[int, ...] | None:
    """Run ``PRAGMA pragma`` on the DB-API connection itself: through SQLAlchemy it would
    open a transaction first (``kiosk.store.db`` begins one for every statement), and SQLite
    checkpoints only outside one."""
    dbapi = connection.connection.driver_connection
    assert dbapi is not None, "a connection that is open"
    cursor = dbapi.execute(f"PRAGMA {pragma}")
    try:
        row = cursor.fetchone()
    finally:
        cursor.close()
    return tuple(row) if row is not None else None
