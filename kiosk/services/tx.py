"""Transactions that carry their audit events, and small lookups every service needs.

``write`` opens the serialised write transaction the audit chain needs, and only after the
commit tells the log's listeners (the live feed) about the events appended inside it: a
listener must never see an event that a rollback later erased.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, func, select
from sqlalchemy.orm import Session

from kiosk.audit import AppendedEvent, AuditLog, NewEvent
from kiosk.errors import NotFound
from kiosk.store.db import write_session

_PENDING = "kiosk_pending_events"

T = TypeVar("T")


@contextmanager
def write(audit: AuditLog, *, connection: Connection | None = None,
          committed: Callable[[], None] | None = None) -> Iterator[Session]:
    """A write transaction; events logged with ``log`` are announced after it commits
    (``connection``: on that one, see ``kiosk.store.db.write_session``). ``committed`` is
    called right after the commit, before the announcements (the cabinet's writer sends an
    intent's unlock from there: the listeners wake other threads, which would compete with
    it for the interpreter on the way to the lock); it must not raise."""
    with write_session(audit.engine, connection=connection) as session:
        yield session
        pending: list[AppendedEvent] = list(session.info.get(_PENDING, ()))
    if committed is not None:
        committed()
    for stored in pending:
        audit.notify_committed(stored)


def read(audit: AuditLog) -> Session:
    """A plain session for queries (no write lock, so reads never queue behind writers)."""
    return Session(audit.engine, expire_on_commit=False)


def log(session: Session, audit: AuditLog, event: NewEvent, *,
        after: int | None = None) -> AppendedEvent:
    """Append ``event`` inside the caller's transaction and remember it for the notification
    (``after``: only onto that head, see ``AuditLog.append_in``)."""
    stored = audit.append_in(session, event, after=after)
    session.info.setdefault(_PENDING, []).append(stored)
    return stored


def get(session: Session, model: type[T], ident: uuid.UUID, what: str) -> T:
    """Load a row by id or raise ``NotFound`` naming what was missing."""
    row = session.get(model, ident)
    if row is None:
        raise NotFound(f"{what} {ident} does not exist")
    return row


def changes(
    row: Any, values: dict[str, Any], *, private: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Apply ``values`` to ``row``; return the fields that changed, for the event payload.

    Fields named in ``private`` are reported as changed without their value: the log is
    permanent and must not become a second copy of personal data (A1).
    """
    changed: dict[str, Any] = {}
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            if name in private:
                changed[name] = "(changed)"
            elif isinstance(value, str | int | bool | None):
                changed[name] = value
            else:
                changed[name] = str(value)
    return changed


def page(
    session: Session, query: Select[Any], *, order_by: Any, limit: int, offset: int
) -> tuple[list[Any], int]:
    """One page of ``query`` and the total count of its rows (for the caller's paging)."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = session.scalars(query.order_by(*order_by).limit(limit).offset(offset)).unique().all()
    return list(rows), int(total or 0)


def like(text: str) -> str:
    """A LIKE pattern that matches ``text`` literally anywhere (escape char ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
