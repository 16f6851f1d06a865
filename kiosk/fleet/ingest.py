"""The hub ingests a cabinet's log: in order, verified, idempotent, never overwriting.

A batch is ingested in one transaction that holds the cabinet's row lock (so two hub
processes serving one database take turns per cabinet). Each event is checked the way
``kiosk.audit.verify`` checks a whole log (``event_hash`` recomputed over the stored
columns, the previous-hash link, no gap) and against what the hub already holds: an event
at or below the acknowledged cursor must be byte-identical to the held copy (a duplicate
from an at-least-once resend), anything else is a fork: the cabinet's log was rewritten or
an old backup was restored. A refused batch writes nothing; the refusal is logged in the
hub's own chain and raises a hub alarm in a transaction of its own.

Why it is written for speed (issue 12 asks 20,000 events/s on two cores): every check runs
in memory in one tight loop (the hash through ``chain.RECORD_TEMPLATE``, as the verifier
does), what the checks need from the database is read in one query per batch, not one per
event, and the new rows go in with PostgreSQL's ``COPY`` (SQLite, in tests, takes one
multi-row INSERT). Every guarantee stays: a conflicting ``(cabinet_id, seq)`` can only be
a row the cursor says is not there, and its unique key fails the whole batch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

import orjson
from sqlalchemy import Table, bindparam, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.chain import RECORD_TEMPLATE, checkpoint_message, format_time
from kiosk.audit.device_key import public_from_hex, verify_signature
from kiosk.errors import Conflict, InvalidRequest
from kiosk.fleet.hub import Checked, SignedRequest, check_request, raise_alarm, take_nonce
from kiosk.fleet.record_columns import PG_DUE_HOUR, borrower_of, due_hour, typed_columns
from kiosk.fleet.requests_up import take_requests
from kiosk.store.db import write_session
from kiosk.store.models import Approval, Base
from kiosk.store.models_fleet import (
    HubApprovalUse,
    HubBorrowerCount,
    HubCabinet,
    HubCheckpoint,
    HubDueCount,
    HubEvent,
    HubRecord,
    HubRecordCount,
)
from kiosk.store.types import utcnow

EVENT_FIELDS = ("cabinet_id", "seq", "at", "type", "actors", "slot", "key_number", "decision",
                "rules", "payload", "prev_hash", "hash")
RECORD_KINDS = frozenset({"loan", "alarm", "alarm_note", "intake", "handover", "report"})
MAX_BATCH = 2000


class Refused(Conflict):
    """The batch breaks the chain the hub holds; ``kind`` names how (an alarm kind)."""

    def __init__(self, kind: str, seq: int | None, message: str) -> None:
        super().__init__(message)
        self.kind, self.seq = kind, seq


@dataclass
class Batch:
    head_seq: int
    head_hash: str
    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def parse(cls, doc: Any) -> Batch:
        try:
            batch = cls(head_seq=int(doc["head_seq"]), head_hash=str(doc["head_hash"]),
                        events=list(doc.get("events", [])),
                        checkpoints=list(doc.get("checkpoints", [])),
                        records=list(doc.get("records", [])))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"not an ingest batch: {exc}") from None
        if len(batch.events) > MAX_BATCH:
            raise InvalidRequest(f"at most {MAX_BATCH} events per batch")
        return batch


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body: bytes | str) -> Any:
    """A cabinet's request body as JSON the way RFC 8259 and PostgreSQL's ``jsonb`` read
    it: ``NaN``, ``Infinity`` and ``-Infinity`` are refused. Python's ``json`` takes them,
    and a record body holding one was stored as text no ``body::jsonb`` can read (the lists'
    department filter, migration 0024's backfill).

    ``orjson`` reads it first (a busy batch is half a megabyte: a third of the time of
    ``json``), and refuses those constants too. Whatever it refuses is read again by
    ``json``, which says what is wrong in words a cabinet's operator can act on (``NaN is
    not a JSON number``) and takes exactly what it took before (a string with a lone UTF-16
    surrogate escape, which ``orjson`` refuses)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body, parse_constant=_not_a_number)
    except ValueError as exc:  # JSONDecodeError is one
        raise InvalidRequest(f"body is not JSON: {exc}") from None


@dataclass(frozen=True)
class Ingested:
    acked_seq: int
    head_hash: str
    new_events: int


def _time(value: Any) -> dt.datetime:
    at = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError("naive time")
    return at


_TEXT_FIELDS = ("cabinet_id", "type", "actors", "rules", "payload", "prev_hash", "hash")
_OPTIONAL_TEXT = ("key_number", "decision")
_FORMAT_TIME_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
"""``format_time``'s output: a time sent in this shape hashes as sent (it parsed, so it is a
real time, and ``format_time`` of it gives the same text back)."""
_COPY_EVENTS = ("COPY hub_events (cabinet_id, seq, at, type, actors, slot, key_number, "
                "decision, rules, payload, prev_hash, hash, received_at) FROM STDIN")


def _event_row(raw: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The row to store and the ``format_time`` text of its time (what its hash covers).

    A field of the wrong type is a clear 422: the hash is only defined over the types a
    cabinet's log stores (text, whole numbers, null)."""
    try:
        # A copy in C (every one of EVENT_FIELDS is read below: a missing one is a KeyError).
        row = dict(raw)
        seq, slot, at_raw = row["seq"], row["slot"], row["at"]
        if seq.__class__ is not int:
            row["seq"] = seq = int(seq)
        if slot is not None and slot.__class__ is not int:
            row["slot"] = int(slot)
        for name in _TEXT_FIELDS:
            if row[name].__class__ is not str:
                raise TypeError(f"{name} must be text")
        for name in _OPTIONAL_TEXT:
            if row[name] is not None and row[name].__class__ is not str:
                raise TypeError(f"{name} must be text or null")
        row["at"] = at = _time(at_raw)
        at_text = at_raw if _FORMAT_TIME_SHAPE.fullmatch(str(at_raw)) else format_time(at)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"malformed event in batch: {exc}") from None
    return row, at_text


def _recomputed(row: dict[str, Any], at_text: str) -> str:
    """``event_hash`` of the row, through ``RECORD_TEMPLATE`` (several times faster than
    ``json.dumps`` of a dict, byte-for-byte the same text: tests/audit/test_vectors.py)."""
    enc = encode_basestring
    decision, key_number, slot = row["decision"], row["key_number"], row["slot"]
    return hashlib.sha256((RECORD_TEMPLATE % (
        enc(row["actors"]), at_text, enc(row["cabinet_id"]),
        "null" if decision is None else enc(decision),
        "null" if key_number is None else enc(key_number),
        enc(row["payload"]), enc(row["prev_hash"]), enc(row["rules"]), row["seq"],
        "null" if slot is None else str(slot), enc(row["type"]),
    )).encode("utf-8")).hexdigest()


def ingest(audit: AuditLog, *, cabinet_id: str, batch: Batch) -> Ingested:
    """Ingest ``batch`` from the authenticated ``cabinet_id``; raise ``Refused`` on a break."""
    try:
        with write_session(audit.engine) as session:
            return _ingest_in(session, audit, cabinet_id, batch)
    except Refused as refused:
        _log_refusal(audit, cabinet_id, refused)
        raise


def ingest_signed(audit: AuditLog, request: SignedRequest) -> Ingested:
    """``POST /hub/v1/ingest``: check the cabinet's signed request and ingest its batch in
    one transaction, holding the cabinet's row lock from the check on.

    Why one: the check was a transaction of its own (with a savepoint for the nonce), so
    every batch paid two transactions and their round trips to the database; under a
    fleet's load a round trip waits its turn for a core. Nothing is checked less: the
    signature, status, time window and nonce are checked first, as before, and a refused
    request is logged and answered as before (401/403) before the body is parsed. The
    nonce stays taken whatever happens to the batch: a malformed body commits the check's
    transaction (the nonce alone) and is answered 422; a refused batch rolls the
    transaction back, so the nonce is taken again with the refusal's log."""
    checked: Checked | None = None
    malformed: InvalidRequest | None = None
    try:
        with write_session(audit.engine) as session:
            checked = check_request(session, audit, request, lock=True)
            if checked.why is None:
                # Parsed only once it is known to be signed: an anonymous sender's 0.5 MB
                # of JSON costs the hub a hash of it, not a parse.
                try:
                    batch = Batch.parse(parse_json(request.body))
                except InvalidRequest as exc:  # committed with its nonce taken, then 422
                    malformed = exc
                else:
                    return _ingest_in(session, audit, checked.cabinet_id, batch,
                                      checked.cabinet)
    except Refused as refused:
        assert checked is not None
        _log_refusal(audit, checked.cabinet_id, refused, nonce=checked.nonce)
        raise
    except InvalidRequest:
        if checked is not None and checked.why is None:
            with write_session(audit.engine) as session:
                take_nonce(session, checked.cabinet_id, checked.nonce)
        raise
    checked.caller()  # a refused request: logged and committed above, raised here
    assert malformed is not None
    raise malformed


def _log_refusal(audit: AuditLog, cabinet_id: str, refused: Refused,
                 nonce: str | None = None) -> None:
    """A refused batch wrote nothing; its refusal is logged and alarmed in a transaction of
    its own (with the request's nonce, when the batch's transaction had taken it)."""
    with write_session(audit.engine) as session:
        if nonce is not None:
            take_nonce(session, cabinet_id, nonce)
        raise_alarm(session, cabinet_id=cabinet_id, kind=refused.kind, seq=refused.seq,
                    message=str(refused))
        audit.append_in(session, NewEvent(
            type="fleet.ingest_refused", decision="deny",
            payload={"cabinet_id": cabinet_id, "kind": refused.kind, "seq": refused.seq,
                     "why": str(refused)}))


def _held_hashes(session: Session, cabinet_id: str, seqs: Iterable[int]) -> dict[int, str]:
    """The hub's hashes of ``seqs`` of this cabinet, in one query."""
    wanted = sorted(set(seqs))
    if not wanted:
        return {}
    rows = session.execute(select(HubEvent.seq, HubEvent.hash).where(
        HubEvent.cabinet_id == cabinet_id, HubEvent.seq.in_(wanted)))
    return {seq: digest for seq, digest in rows}


def _ingest_in(session: Session, audit: AuditLog, cabinet_id: str, batch: Batch,
               cabinet: HubCabinet | None = None) -> Ingested:
    """The batch in ``session``'s transaction; ``cabinet`` is the cabinet's row when the
    caller has locked it already (``ingest_signed``)."""
    if cabinet is None:
        cabinet = session.scalars(select(HubCabinet).where(HubCabinet.cabinet_id == cabinet_id)
                                  .with_for_update()).one()
    if batch.head_seq < cabinet.acked_seq:
        raise Refused("log_backwards", batch.head_seq,
                      f"cabinet {cabinet_id} reports its log ends at seq {batch.head_seq}, but "
                      f"the hub already holds it up to seq {cabinet.acked_seq}: an old backup "
                      "was restored or the log was cut")
    parsed = sorted((_event_row(raw) for raw in batch.events), key=lambda pair: pair[0]["seq"])
    acked, head = cabinet.acked_seq, cabinet.head_hash
    # Resent events (an at-least-once repeat): one read for all. The anchor at the cursor,
    # sent with every batch, needs none: its hash is the cabinet's head.
    held = _held_hashes(session, cabinet_id, (r["seq"] for r, _ in parsed if r["seq"] < acked))
    if acked > 0:
        held[acked] = head
    fresh: list[dict[str, Any]] = []
    for row, at_text in parsed:
        seq = row["seq"]
        if row["cabinet_id"] != cabinet_id:
            raise Refused("foreign_event", seq, f"event seq {seq} names cabinet "
                          f"{row['cabinet_id']!r}, not the signing cabinet {cabinet_id!r}")
        if _recomputed(row, at_text) != row["hash"]:
            raise Refused("edited_event", seq, f"cabinet {cabinet_id} event seq {seq} does not "
                          f"match its hash: the row was edited (type {row['type']!r})")
        if seq <= acked:  # held already, or twice in this batch
            if held.get(seq) != row["hash"]:
                raise Refused("fork", seq, f"cabinet {cabinet_id} event seq {seq} differs from "
                              "the copy the hub holds: the log was rewritten or an old backup "
                              "was restored; the hub keeps its copy")
            continue
        if seq != acked + 1:
            raise Refused("gap", acked + 1,
                          f"cabinet {cabinet_id} sent seq {seq} but the hub holds up to "
                          f"{acked}: rows {acked + 1}..{seq - 1} missing")
        if row["prev_hash"] != head:
            raise Refused("fork", seq, f"cabinet {cabinet_id} event seq {seq} does not link to "
                          f"the hub's copy of seq {seq - 1}: a row was inserted, removed or "
                          "rewritten")
        fresh.append(row)
        acked = seq
        head = held[seq] = row["hash"]
    if fresh:
        _store_events(session, fresh)
        take_requests(session, audit, cabinet_id, fresh)  # K7 asked at the screen
    cabinet.acked_seq, cabinet.head_hash = acked, head
    _checkpoints(session, cabinet, batch.checkpoints, held)
    _records(session, cabinet_id, batch.records)
    # A cabinet's head beyond what it sent is fine (more to come); equal must match.
    if batch.head_seq == cabinet.acked_seq and batch.head_hash != cabinet.head_hash:
        raise Refused("fork", batch.head_seq, f"cabinet {cabinet_id} head hash differs "
                          "from the last event it sent")
    cabinet.last_seen_at = utcnow()
    return Ingested(cabinet.acked_seq, cabinet.head_hash, len(fresh))


def _store_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: one ``COPY`` into the partitioned table, in this transaction (a tenth of
    the time of an INSERT per row). Elsewhere one multi-row INSERT."""
    received = utcnow()
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(HubEvent), [{**{name: r[name] for name in EVENT_FIELDS},
                                            "received_at": received} for r in rows])
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(_COPY_EVENTS) as copy:
        write = copy.write_row
        for r in rows:
            write((r["cabinet_id"], r["seq"], r["at"], r["type"], r["actors"], r["slot"],
                   r["key_number"], r["decision"], r["rules"], r["payload"], r["prev_hash"],
                   r["hash"], received))


def _checkpoints(session: Session, cabinet: HubCabinet, checkpoints: list[dict[str, Any]],
                 held: dict[int, str]) -> None:
    """Each checkpoint must be signed by the pinned key and name the hash the hub holds at
    its seq (``held``: this batch's events and the resent ones; anything else is read)."""
    public = public_from_hex(cabinet.public_key)
    parsed: list[HubCheckpoint] = []
    for raw in checkpoints:
        try:
            seq, head_hash = int(raw["seq"]), str(raw["head_hash"])
            signed_at, key_id, signature = _time(raw["signed_at"]), str(raw["key_id"]), str(
                raw["signature"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"malformed checkpoint in batch: {exc}") from None
        message = checkpoint_message(cabinet_id=cabinet.cabinet_id, seq=seq,
                                     head_hash=head_hash, signed_at=signed_at)
        if key_id != cabinet.key_id or not verify_signature(public, signature, message):
            raise Refused("bad_checkpoint", seq, f"cabinet {cabinet.cabinet_id} checkpoint at "
                          f"seq {seq} is not signed by its pinned device key")
        if seq > cabinet.acked_seq:
            continue  # its events are not here yet; the shipper sends it again later
        parsed.append(HubCheckpoint(cabinet_id=cabinet.cabinet_id, seq=seq,
                                    head_hash=head_hash, signed_at=signed_at, key_id=key_id,
                                    signature=signature))
    if not parsed:
        return
    held = {**_held_hashes(session, cabinet.cabinet_id,
                           (c.seq for c in parsed if c.seq not in held)), **held}
    for checkpoint in parsed:
        if held.get(checkpoint.seq) != checkpoint.head_hash:
            raise Refused("fork", checkpoint.seq, f"cabinet {cabinet.cabinet_id} signed "
                          f"checkpoint at seq {checkpoint.seq} differs from the chain the hub "
                          "holds")
    # Held already (a resend) or new: one INSERT that skips the held ones, no ORM objects
    # (the statement built once; its rows sent as one multi-row INSERT by the driver).
    session.connection().execute(
        _INSERT_CHECKPOINTS[session.get_bind().dialect.name == "postgresql"],
        [{"cabinet_id": c.cabinet_id, "seq": c.seq, "head_hash": c.head_hash,
          "signed_at": c.signed_at, "key_id": c.key_id, "signature": c.signature}
         for c in parsed])
    cabinet.checkpoint_seq = max(cabinet.checkpoint_seq, *(c.seq for c in parsed))


_CHECKPOINTS_TABLE = Table(HubCheckpoint.__tablename__, HubCheckpoint.metadata)
_INSERT_CHECKPOINTS = {
    postgres: (postgresql_insert if postgres else sqlite_insert)(_CHECKPOINTS_TABLE)
    .on_conflict_do_nothing(index_elements=["cabinet_id", "seq"])
    for postgres in (True, False)}


def _records(session: Session, cabinet_id: str, records: list[dict[str, Any]]) -> None:
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
