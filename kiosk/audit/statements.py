"""The three statements of an append (read the head, insert the event, move the head), as
each database runs them fastest, inside the caller's write transaction.

``AuditLog.append_in`` is the one write path of the log and decides what is written; this
module only says how the rows reach the database:

* ``CoreStatements``: SQLAlchemy Core statements built once, on the session (PostgreSQL,
  where the head is read ``FOR UPDATE``).
* ``SqliteStatements``: the same SQL on the session's own DB-API cursor (SQLite, where
  ``BEGIN IMMEDIATE`` already holds the write lock). The append is on the path from a
  person's choice to the lock (the intent is durable first); on an idle cabinet, whose
  CPU caches have gone cold by the time someone chooses, SQLAlchemy's execution layer for
  three statements cost about half a millisecond more than the statements themselves
  (issue 15). Every value is converted by the column's own type (its bind processor), so
  the stored row is byte-for-byte the row the Core statement stores; the audit suite runs
  on both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol, cast

from sqlalchemy import Dialect, Table, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from kiosk.store.models import AuditHead, Event

_HEADS, _EVENTS = cast(Table, AuditHead.__table__), cast(Table, Event.__table__)
_HEAD_FOR_UPDATE = (select(_HEADS.c.seq, _HEADS.c.hash)
                    .where(_HEADS.c.cabinet_id == bindparam("cabinet")).with_for_update())
_HEAD_FIRST = insert(_HEADS)
_HEAD_MOVE = (update(_HEADS).where(_HEADS.c.cabinet_id == bindparam("cabinet"))
              .values(seq=bindparam("seq"), hash=bindparam("hash")))
_EVENT_INSERT = insert(_EVENTS)


class ChainStatements(Protocol):
    """What an append runs, in the caller's transaction."""

    def head(self, cabinet: str) -> tuple[int, str] | None: ...
    def first_head(self, cabinet: str, genesis: str) -> None: ...
    def insert_event(self, row: dict[str, Any]) -> None: ...
    def move_head(self, cabinet: str, seq: int, digest: str) -> None: ...


class CoreStatements:
    """SQLAlchemy Core on the session (any database)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def head(self, cabinet: str) -> tuple[int, str] | None:
        row = self.session.execute(_HEAD_FOR_UPDATE, {"cabinet": cabinet}).first()
        return None if row is None else (row[0], row[1])

    def first_head(self, cabinet: str, genesis: str) -> None:
        self.session.execute(_HEAD_FIRST, {"cabinet_id": cabinet, "seq": 0, "hash": genesis})

    def insert_event(self, row: dict[str, Any]) -> None:
        self.session.execute(_EVENT_INSERT, row)

    def move_head(self, cabinet: str, seq: int, digest: str) -> None:
        self.session.execute(_HEAD_MOVE, {"cabinet": cabinet, "seq": seq, "hash": digest})


class SqliteSql:
    """The SQL text and the columns' bind processors for one SQLite dialect, made once."""

    def __init__(self, dialect: Dialect) -> None:
        columns = list(_EVENTS.c)
        self.names = [c.key for c in columns]
        self.insert = (f"INSERT INTO {_EVENTS.name} ({', '.join(c.name for c in columns)}) "
                       f"VALUES ({', '.join('?' for _ in columns)})")
        self.processors = [c.type.bind_processor(dialect) for c in columns]
        self.head = f"SELECT seq, hash FROM {_HEADS.name} WHERE cabinet_id = ?"
        self.first_head = f"INSERT INTO {_HEADS.name} (cabinet_id, seq, hash) VALUES (?, ?, ?)"
        self.move_head = f"UPDATE {_HEADS.name} SET seq = ?, hash = ? WHERE cabinet_id = ?"


class SqliteStatements:
    """The same statements on the session's DB-API cursor (SQLite)."""

    def __init__(self, session: Session, sql: SqliteSql) -> None:
        # session.connection() begins the session's transaction (BEGIN IMMEDIATE in a
        # write session) on the connection whose cursor is used here.
        raw = session.connection().connection.driver_connection
        assert raw is not None
        self.cursor = raw.cursor()
        self.sql = sql

    def _run(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        """Execute, raising what SQLAlchemy would (``OperationalError`` for a locked or
        full database, ``IntegrityError`` for a duplicate): callers catch those."""
        try:
            return self.cursor.execute(sql, params)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, params, exc, sqlite3.Error) from exc

    def head(self, cabinet: str) -> tuple[int, str] | None:
        row = self._run(self.sql.head, (cabinet,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def first_head(self, cabinet: str, genesis: str) -> None:
        self._run(self.sql.first_head, (cabinet, 0, genesis))

    def insert_event(self, row: dict[str, Any]) -> None:
        sql = self.sql
        self._run(sql.insert, [row[name] if process is None else process(row[name])
                               for name, process in zip(sql.names, sql.processors, strict=True)])

    def move_head(self, cabinet: str, seq: int, digest: str) -> None:
        self._run(self.sql.move_head, (seq, digest, cabinet))
