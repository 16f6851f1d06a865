"""The records a cabinet ships with its log (loans, alarms and their notes, intakes,
handovers, reports), kept at the hub as the latest copy of each, with the counts the hub's
lists and K9's overdue total read, moved in the same transaction.

One write path for this kind of record, apart from the events' (``kiosk.fleet.ingest``
verifies and stores those): a record is upserted by (kind, id) and never overwritten by a
cabinet that does not own it (``Refused``: the whole batch rolls back). On PostgreSQL a
batch's records are one statement (``_UPSERT_RECORDS``); elsewhere (SQLite, in tests) a few
portable ones do the same. K7: the first loan that used an approval is its use across the
fleet (``_approval_used``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from kiosk.errors import InvalidRequest
from kiosk.fleet.hub import raise_alarm
from kiosk.fleet.record_columns import PG_DUE_HOUR, borrower_of, due_hour, typed_columns
from kiosk.fleet.refusal import Refused
from kiosk.store.models import Approval, Base
from kiosk.store.models_fleet import (
    HubApprovalUse,
    HubBorrowerCount,
    HubDueCount,
    HubRecord,
    HubRecordCount,
)
from kiosk.store.types import utcnow

RECORD_KINDS = frozenset({"loan", "alarm", "alarm_note", "intake", "handover", "report"})


def store_records(session: Session, cabinet_id: str, records: list[dict[str, Any]]) -> None:
    """Upsert the latest copy of each record the cabinet owns, keyed by (kind, id), with the
    typed columns the lists read (``record_columns``); the cabinet's counts per kind and
    facet move with them, in this transaction. A record another cabinet owns is refused
    and never overwritten. A busy batch carries hundreds of loans: on PostgreSQL all of it
    is one statement (``_UPSERT_RECORDS``)."""
    latest: dict[tuple[str, uuid.UUID], tuple[Any, str]] = {}
    for raw in records:
        try:
            kind, record_id, body = str(raw["kind"]), uuid.UUID(str(raw["id"])), raw["body"]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"malformed record in batch: {exc}") from None
        if kind not in RECORD_KINDS:
            raise InvalidRequest(f"unknown record kind {kind!r}")
        try:  # a batch built in-process may hold a float NaN: not JSON either
            text = json.dumps(body, sort_keys=True, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"malformed record in batch: {exc}") from None
        latest[kind, record_id] = (body, text)
    if not latest:
        return
    now = utcnow()
    rows = [{"kind": kind, "record_id": record_id, "cabinet_id": cabinet_id, "body": text,
             "received_at": now, **typed_columns(kind, body),
             "borrower_id": borrower_of(kind, body)}
            for (kind, record_id), (body, text) in latest.items()]
    raw = _postgres_connection(session)
    if raw is not None:
        with raw.cursor() as cursor:
            foreign = cursor.execute(_UPSERT_RECORDS, {
                **_columns(_RECORD_COLUMNS, rows), "cabinet": cabinet_id}).fetchall()
    else:
        foreign = _upsert_records_portably(session, cabinet_id, rows)
    for kind, record_id, owner in foreign:  # the transaction is rolled back: nothing kept
        owner = owner or _owner(session, kind, record_id) or "another cabinet"
        raise Refused("foreign_record", None, f"{kind} {record_id} belongs to cabinet "
                      f"{owner}; cabinet {cabinet_id} cannot overwrite it")
    for (kind, record_id), (body, _) in latest.items():
        if kind == "loan" and isinstance(body, dict) and body.get("approval_id"):
            _approval_used(session, cabinet_id, uuid.UUID(str(body["approval_id"])), record_id)


_RECORD_COLUMNS = ("kind", "record_id", "cabinet_id", "body", "received_at", "occurred_at",
                   "due_at", "facet", "borrower_id")
_UPSERT_RECORDS = """
WITH incoming AS (
  SELECT * FROM unnest(%(kind)b::varchar[], %(record_id)b::uuid[], %(cabinet_id)b::varchar[],
                       %(body)b::text[], %(received_at)b::timestamptz[],
                       %(occurred_at)b::timestamptz[], %(due_at)b::timestamptz[],
                       %(facet)b::varchar[], %(borrower_id)b::uuid[])
    AS t(kind, record_id, cabinet_id, body, received_at, occurred_at, due_at, facet,
         borrower_id)),
held AS (
  SELECT r.kind, r.record_id, r.cabinet_id, r.facet, r.due_at, r.borrower_id FROM incoming i
  JOIN hub_records r ON r.kind = i.kind AND r.record_id = i.record_id),
written AS (
  INSERT INTO hub_records (kind, record_id, cabinet_id, body, received_at, occurred_at,
                           due_at, facet, borrower_id)
  SELECT * FROM incoming
  ON CONFLICT (kind, record_id) DO UPDATE
  SET body = EXCLUDED.body, received_at = EXCLUDED.received_at,
      occurred_at = EXCLUDED.occurred_at, due_at = EXCLUDED.due_at, facet = EXCLUDED.facet,
      borrower_id = EXCLUDED.borrower_id
  WHERE hub_records.cabinet_id = EXCLUDED.cabinet_id
  RETURNING kind, record_id, facet, due_at, borrower_id),
moved AS (
  SELECT kind, coalesce(facet, '') AS facet, 1 AS n FROM written
  UNION ALL
  SELECT kind, coalesce(facet, ''), -1 FROM held WHERE cabinet_id = %(cabinet)b),
counted AS (
  INSERT INTO hub_record_counts (cabinet_id, kind, facet, n)
  SELECT %(cabinet)b, kind, facet, sum(n) FROM moved GROUP BY kind, facet HAVING sum(n) <> 0
  ON CONFLICT (cabinet_id, kind, facet) DO UPDATE
  SET n = hub_record_counts.n + EXCLUDED.n),
borrowed_moved AS (
  SELECT borrower_id, coalesce(facet, '') AS facet, 1 AS n FROM written
  WHERE kind = 'loan' AND borrower_id IS NOT NULL
  UNION ALL
  SELECT borrower_id, coalesce(facet, ''), -1 FROM held
  WHERE cabinet_id = %(cabinet)b AND kind = 'loan' AND borrower_id IS NOT NULL),
borrowed AS (
  INSERT INTO hub_borrower_counts (borrower_id, facet, cabinet_id, n)
  SELECT borrower_id, facet, %(cabinet)b, sum(n) FROM borrowed_moved
  GROUP BY borrower_id, facet HAVING sum(n) <> 0
  ON CONFLICT (borrower_id, facet, cabinet_id) DO UPDATE
  SET n = hub_borrower_counts.n + EXCLUDED.n),
due_moved AS (
  SELECT {written_hour} AS hour, 1 AS n FROM written
  WHERE kind = 'loan' AND facet = 'out' AND due_at IS NOT NULL
  UNION ALL
  SELECT {held_hour}, -1 FROM held
  WHERE cabinet_id = %(cabinet)b AND kind = 'loan' AND facet = 'out' AND due_at IS NOT NULL),
due_now AS (
  SELECT m.hour, coalesce(min(c.n), 0) + sum(m.n) AS n FROM due_moved m
  LEFT JOIN hub_due_counts c ON c.cabinet_id = %(cabinet)b AND c.due_hour = m.hour
  GROUP BY m.hour HAVING sum(m.n) <> 0),
due_gone AS (
  DELETE FROM hub_due_counts c USING due_now d
  WHERE c.cabinet_id = %(cabinet)b AND c.due_hour = d.hour AND d.n = 0),
due_kept AS (
  INSERT INTO hub_due_counts (cabinet_id, due_hour, n)
  SELECT %(cabinet)b, hour, n FROM due_now WHERE n <> 0
  ON CONFLICT (cabinet_id, due_hour) DO UPDATE SET n = EXCLUDED.n)
SELECT i.kind, i.record_id, h.cabinet_id FROM incoming i
LEFT JOIN held h ON h.kind = i.kind AND h.record_id = i.record_id
WHERE NOT EXISTS (SELECT 1 FROM written w WHERE w.kind = i.kind AND w.record_id = i.record_id)
""".replace("{written_hour}", PG_DUE_HOUR.format(column="due_at")).replace(
    "{held_hour}", PG_DUE_HOUR.format(column="due_at"))
"""PostgreSQL: a batch's records in one statement and one round trip: the held copies are
read (every part of the statement sees the table as it was before it), the records written
(new or changed; never another cabinet's: the ``WHERE``), the cabinet's counts moved by
the facets the written rows take and the held ones leave, and every incoming record that
was not written returned (with its owner when the held copies name it), so the batch is
refused and all of it rolled back. The counts and the refusal come from what ``RETURNING``
says was written, not from the held copies: another cabinet may commit the same record id
after this statement's snapshot (two cabinets sending one id at once); the insert then
waits for it, meets it as a conflict and skips it (the ``WHERE``), and the held copies
never saw it. The keys out per due hour (``hub_due_counts``, K9's overdue total) move
the same way: a loan out written adds one to its due hour, a held loan out of this cabinet
that was rewritten takes one from its own (returned, or due at another time); the
cabinet's row lock means no other transaction writes its hours meanwhile, so each hour's
new count is set outright, and an hour that reaches zero is deleted (the table stays the
size of the keys out, not of history). A loan's borrower counts (``hub_borrower_counts``,
a department leader's total) move as the facet counts do, per borrower. A column per array, sent in binary: a row per statement, as ``executemany``
sends them, was half of ingest's time, and text arrays of JSON bodies cost their
escaping."""


def _owner(session: Session, kind: str, record_id: uuid.UUID) -> str | None:
    """Who holds a record now: a new statement sees what another cabinet committed after
    the upsert's snapshot (the owner the upsert could not name)."""
    return session.scalar(select(HubRecord.cabinet_id).where(
        HubRecord.kind == kind, HubRecord.record_id == record_id))


def _postgres_connection(session: Session) -> Any:
    """The driver's connection under this transaction on PostgreSQL, else None."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return None
    return connection.connection.driver_connection


def _columns(names: tuple[str, ...], rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Rows as a list per column (``unnest``'s arrays)."""
    return {name: [row[name] for row in rows] for name in names}


def _upsert_records_portably(session: Session, cabinet_id: str, rows: list[dict[str, Any]]
                             ) -> list[tuple[str, uuid.UUID, str]]:
    """``_UPSERT_RECORDS`` elsewhere (SQLite, in tests): the held copies read in one query,
    one multi-row INSERT, one executemany UPDATE, the counts upserted. Returns the records
    another cabinet owns (then nothing is written)."""
    held = {(kind, record_id): (owner, facet, due, borrower)
            for kind, record_id, owner, facet, due, borrower in
            session.execute(select(HubRecord.kind, HubRecord.record_id, HubRecord.cabinet_id,
                                   HubRecord.facet, HubRecord.due_at,
                                   HubRecord.borrower_id).where(
                tuple_(HubRecord.kind, HubRecord.record_id).in_(
                    [(r["kind"], r["record_id"]) for r in rows])))}
    foreign = [(kind, record_id, owner) for (kind, record_id), (owner, *_) in held.items()
               if owner != cabinet_id]
    if foreign:
        return foreign
    counts: dict[tuple[str, str], int] = {}
    due: dict[int, int] = {}
    borrowed: dict[tuple[uuid.UUID, str], int] = {}
    for row in rows:
        taken = (row["kind"], row["facet"] or "")
        counts[taken] = counts.get(taken, 0) + 1
        if row["kind"] == "loan" and row["borrower_id"] is not None:
            lent = (row["borrower_id"], row["facet"] or "")
            borrowed[lent] = borrowed.get(lent, 0) + 1
        if row["kind"] == "loan" and row["facet"] == "out" and row["due_at"] is not None:
            hour = due_hour(row["due_at"])
            due[hour] = due.get(hour, 0) + 1
        if (before := held.get((row["kind"], row["record_id"]))) is not None:
            left = (row["kind"], before[1] or "")
            counts[left] = counts.get(left, 0) - 1
            if row["kind"] == "loan" and before[1] == "out" and before[2] is not None:
                hour = due_hour(before[2])
                due[hour] = due.get(hour, 0) - 1
            if row["kind"] == "loan" and before[3] is not None:
                lent = (before[3], before[1] or "")
                borrowed[lent] = borrowed.get(lent, 0) - 1
    new = [r for r in rows if (r["kind"], r["record_id"]) not in held]
    changed = [{**r, "k": r["kind"], "i": r["record_id"]} for r in rows
               if (r["kind"], r["record_id"]) in held]
    if new:
        session.execute(insert(HubRecord), new)
    if changed:
        session.connection().execute(
            update(HubRecord).where(HubRecord.kind == bindparam("k"),
                                    HubRecord.record_id == bindparam("i"))
            .values(body=bindparam("body"), received_at=bindparam("received_at"),
                    occurred_at=bindparam("occurred_at"), due_at=bindparam("due_at"),
                    facet=bindparam("facet"), borrower_id=bindparam("borrower_id")), changed)
    _count(session, cabinet_id, counts)
    _count_borrowed(session, cabinet_id, borrowed)
    _count_due(session, cabinet_id, due)
    return []


def _count(session: Session, cabinet_id: str, counts: dict[tuple[str, str], int]) -> None:
    """Add ``counts`` to the cabinet's counts per (kind, facet): one upsert for the batch."""
    _add_to_counts(session, HubRecordCount, ["cabinet_id", "kind", "facet"], [
        {"cabinet_id": cabinet_id, "kind": kind, "facet": facet, "n": n}
        for (kind, facet), n in sorted(counts.items()) if n])


def _count_borrowed(session: Session, cabinet_id: str,
                    moved: dict[tuple[uuid.UUID, str], int]) -> None:
    """Add ``moved`` to the cabinet's loan counts per borrower and facet: one upsert."""
    _add_to_counts(session, HubBorrowerCount, ["borrower_id", "facet", "cabinet_id"], [
        {"borrower_id": borrower, "facet": facet, "cabinet_id": cabinet_id, "n": n}
        for (borrower, facet), n in sorted(moved.items()) if n])


def _add_to_counts(session: Session, model: type[Base], key: list[str],
                   rows: list[dict[str, Any]]) -> None:
    """Add each row's ``n`` to the count its ``key`` columns name (made at ``n`` if new), in
    one ``INSERT ... ON CONFLICT DO UPDATE`` for all of them."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    table = Table(model.__tablename__, model.metadata)
    upsert = (postgresql_insert if dialect == "postgresql" else sqlite_insert)(table)
    session.connection().execute(upsert.on_conflict_do_update(
        index_elements=key, set_={"n": table.c.n + upsert.excluded.n}), rows)


def _count_due(session: Session, cabinet_id: str, moved: dict[int, int]) -> None:
    """Move the cabinet's keys out per due hour by ``moved``; an hour at zero is deleted."""
    moved = {hour: n for hour, n in moved.items() if n}
    if not moved:
        return
    held = {row.due_hour: row for row in session.scalars(select(HubDueCount).where(
        HubDueCount.cabinet_id == cabinet_id, HubDueCount.due_hour.in_(sorted(moved))))}
    for hour, n in sorted(moved.items()):
        row = held.get(hour)
        if row is None:
            session.add(HubDueCount(cabinet_id=cabinet_id, due_hour=hour, n=n))
        elif row.n + n == 0:
            session.delete(row)
        else:
            row.n += n
    session.flush()


def _approval_used(session: Session, cabinet_id: str, approval_id: uuid.UUID,
                   loan_id: uuid.UUID) -> None:
    """K7, used once across the fleet: the first loan that used an approval is its use; the
    other cabinets are told (a configuration change). A second use elsewhere is a fact too
    (the draw happened): it is accepted into the log and raises a hub alarm."""
    from kiosk.fleet.changes import record_change

    use = session.get(HubApprovalUse, approval_id)
    if use is None:
        session.add(HubApprovalUse(approval_id=approval_id, cabinet_id=cabinet_id,
                                   loan_id=loan_id))
        session.flush()
        if session.get(Approval, approval_id) is not None:
            record_change(session, {("approval", approval_id, False)})
    elif use.loan_id != loan_id:
        raise_alarm(session, cabinet_id=cabinet_id, kind="approval_reused",
                    message=f"approval {approval_id} was used by loan {loan_id} at "
                            f"{cabinet_id}, after loan {use.loan_id} at {use.cabinet_id}")
