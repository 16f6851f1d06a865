"""The typed columns the hub writes beside a cabinet's record (issue 12, migration 0024).

A record arrives as the cabinet's columns in JSON (``hub_records.body``). The hub's lists by
site order by the record's own time and narrow by its state; read out of the JSON, every
list sorted and counted every body in view (1.5 s for the whole fleet's loans at 200,000).
So ingest writes, beside the body: ``occurred_at`` (the record's own time, the lists'
order), ``due_at`` (a loan's, for the overdue ones) and ``facet`` (what the kind's list
narrows by). The body stays what the cabinet sent; these are read from it, never edited.

A time that is not an ISO 8601 date-time is stored as null (the record is still held, and
sorts with the timeless ones); a time without an offset is UTC, as every cabinet writes UTC.
Migration 0024 fills the columns of records held before it with the same rules (the same
pattern, in SQL on PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

TIME_FIELD = {"loan": "drawn_at", "alarm": "raised_at", "report": "generated_at",
              "intake": "received_at", "handover": "started_at", "alarm_note": "at"}
"""The field of each kind's body that holds the record's own time."""
FACET_FIELD = {"alarm": "state", "report": "kind", "handover": "state"}
"""The field of each kind's body its list narrows by (a loan's facet is out/returned)."""
FACET_MAX = 64
ISO_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?")
"""The times the columns take (``datetime.isoformat`` output and the like); PostgreSQL's
backfill in migration 0024 uses the same pattern before it casts."""


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not ISO_TIME.fullmatch(value):
        return None
    try:
        at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # the right shape but no such day (2026-02-30)
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def facet_of(kind: str, body: Any) -> str | None:
    """A loan is ``out`` until its ``returned_at`` is set (the state filters' rule);
    others take their list's field when it is text of a sensible length."""
    if not isinstance(body, dict):
        return None
    if kind == "loan":
        return "out" if body.get("returned_at") is None else "returned"
    field = FACET_FIELD.get(kind)
    value = body.get(field) if field else None
    return value if isinstance(value, str) and len(value) <= FACET_MAX else None


DUE_BUCKET = dt.timedelta(hours=1)
"""The width of a due-time bucket in ``hub_due_counts`` (migration 0026)."""
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
PG_DUE_HOUR = "floor(extract(epoch FROM {column}) / 3600)::bigint"
"""``due_hour`` in PostgreSQL: ``extract`` gives an exact numeric (PostgreSQL 14 on), so the
server and Python put a time on a boundary into the same bucket, in any session time zone."""


def due_hour(at: dt.datetime) -> int:
    """The due-time bucket of an aware ``at``: whole hours since 1970-01-01 UTC, rounded
    down. Why buckets: whether a key out is overdue (K9) depends on the clock, so its total
    cannot be a kept count; but every loan due in an hour that has ended is overdue, so the
    total is the kept count of those hours plus the few loans due earlier in the current
    one (``site_lists``)."""
    return (at - EPOCH) // DUE_BUCKET


def hour_start(hour: int) -> dt.datetime:
    return EPOCH + hour * DUE_BUCKET


UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                       r"[0-9a-fA-F]{12}")
"""The ids the ``borrower_id`` column takes (a cabinet writes ``str(uuid)``); PostgreSQL's
backfill in migration 0027 uses the same pattern before it casts."""


def parse_uuid(value: Any) -> uuid.UUID | None:
    """A person's id as the cabinet wrote it, or None for anything else (the record is
    still held, and counted with no borrower)."""
    if not isinstance(value, str) or not UUID_TEXT.fullmatch(value):
        return None
    return uuid.UUID(value)


def typed_columns(kind: str, body: Any) -> dict[str, Any]:
    """``occurred_at``, ``due_at`` and ``facet`` of one record, from its body (the columns
    of migration 0024, which fills them with this function)."""
    if not isinstance(body, dict):
        return {"occurred_at": None, "due_at": None, "facet": None}
    field = TIME_FIELD.get(kind)
    return {"occurred_at": parse_time(body.get(field)) if field else None,
            "due_at": parse_time(body.get("due_at")) if kind == "loan" else None,
            "facet": facet_of(kind, body)}


def borrower_of(kind: str, body: Any) -> uuid.UUID | None:
    """A loan's borrower (migration 0027's column): the person whose department leader
    sees the loan."""
    if kind != "loan" or not isinstance(body, dict):
        return None
    return parse_uuid(body.get("borrower_id"))
