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
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

import orjson
from sqlalchemy import Table, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.chain import RECORD_TEMPLATE, checkpoint_message, format_time
from kiosk.audit.device_key import public_from_hex, verify_signature
from kiosk.errors import InvalidRequest
from kiosk.fleet.hub import Checked, SignedRequest, check_request, raise_alarm, take_nonce
from kiosk.fleet.ingest_records import store_records
from kiosk.fleet.refusal import Refused
from kiosk.fleet.requests_up import take_requests
from kiosk.store.db import write_session
from kiosk.store.models_fleet import (
    HubCabinet,
    HubCheckpoint,
    HubEvent,
)
from kiosk.store.types import utcnow

EVENT_FIELDS = ("cabinet_id", "seq", "at", "type", "actors", "slot", "key_number", "decision",
                "rules", "payload", "prev_hash", "hash")
MAX_BATCH = 2000


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
    store_records(session, cabinet_id, batch.records)
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
