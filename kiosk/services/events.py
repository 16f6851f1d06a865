"""Reading the event log: filters, cursor pages by sequence number, and a CSV export.

Pages are cursors on ``seq`` ("after N"), not offsets: the log only grows, so a cursor never
skips or repeats a row while new events arrive, and a client can resume where it stopped.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, Select, select
from sqlalchemy.orm import Session

from kiosk import csv_safe
from kiosk.errors import NotFound
from kiosk.services import tx
from kiosk.store.models import Event

CSV_COLUMNS = [
    "cabinet_id",
    "seq",
    "at",
    "type",
    "actors",
    "slot",
    "key_number",
    "decision",
    "rules",
    "payload",
    "prev_hash",
    "hash",
]


@dataclass(frozen=True)
class EventFilter:
    type: str | None = None
    type_prefix: str | None = None
    key_number: str | None = None
    actor: str | None = None
    rule: str | None = None
    decision: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    after: int = 0
    before: int | None = None

    def apply(self, query: Select[Event]) -> Select[Event]:
        if self.type is not None:
            query = query.where(Event.type == self.type)
        if self.type_prefix is not None:
            query = query.where(Event.type.like(tx.like(self.type_prefix)[1:], escape="\\"))
        if self.key_number is not None:
            query = query.where(Event.key_number == self.key_number)
        if self.actor is not None:
            query = query.where(Event.actors.like(tx.like(json.dumps(self.actor)), escape="\\"))
        if self.rule is not None:
            query = query.where(Event.rules.like(tx.like(json.dumps(self.rule)), escape="\\"))
        if self.decision is not None:
            query = query.where(Event.decision == self.decision)
        if self.since is not None:
            query = query.where(Event.at >= self.since)
        if self.until is not None:
            query = query.where(Event.at < self.until)
        query = query.where(Event.seq > self.after)
        if self.before is not None:
            query = query.where(Event.seq < self.before)
        return query


def page(
    session: Session, *, cabinet_id: str, where: EventFilter, limit: int
) -> tuple[list[Event], int | None]:
    """Up to ``limit`` events after the cursor, and the cursor of the next page (or None)."""
    query = where.apply(select(Event).where(Event.cabinet_id == cabinet_id))
    rows = list(session.scalars(query.order_by(Event.seq).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].seq if more and rows else None)


def get(session: Session, *, cabinet_id: str, seq: int) -> Event:
    row = session.get(Event, (cabinet_id, seq))
    if row is None:
        raise NotFound(f"event {seq} does not exist")
    return row


def after(session: Session, *, cabinet_id: str, seq: int, limit: int) -> list[Event]:
    """The events following ``seq`` in order (the live feed's catch-up read)."""
    return list(
        session.scalars(
            select(Event)
            .where(Event.cabinet_id == cabinet_id, Event.seq > seq)
            .order_by(Event.seq)
            .limit(limit)
        ).all()
    )


def csv_rows(
    engine: Engine, *, cabinet_id: str, where: EventFilter, batch: int = 1000
) -> Iterator[str]:
    """The matching events as CSV text chunks, read in batches so memory stays flat."""
    buffer = io.StringIO()
    writer = csv_safe.writer(buffer)  # names and reasons reach a spreadsheet: no formulas
    writer.writerow(CSV_COLUMNS)
    cursor = where.after
    while True:
        with Session(engine) as session:
            rows, _ = page(
                session,
                cabinet_id=cabinet_id,
                where=EventFilter(**{**where.__dict__, "after": cursor}),
                limit=batch,
            )
            for row in rows:
                writer.writerow(
                    [
                        row.cabinet_id,
                        row.seq,
                        row.at.isoformat(),
                        row.type,
                        row.actors,
                        "" if row.slot is None else row.slot,
                        row.key_number or "",
                        row.decision or "",
                        row.rules,
                        row.payload,
                        row.prev_hash,
                        row.hash,
                    ]
                )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < batch:
            return
        cursor = rows[-1].seq
