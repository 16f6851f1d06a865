"""The hub ingests a cabinet's log: in order, verified, idempotent, never overwriting.

A batch is ingested in one transaction that holds the cabinet's row lock (so two hub
processes serving one database take turns per cabinet). Each event is checked the way
``kiosk.audit.verify`` checks a whole log (``event_hash`` recomputed over the stored
columns, the previous-hash link, no gap) and against what the hub already holds: an event
at or below the acknowledged cursor must be byte-identical to the held copy (a duplicate
from an at-least-once resend), anything else is a fork: the cabinet's log was rewritten or
an old backup was restored. A refused batch writes nothing; the refusal is logged in the
hub's own chain and raises a hub alarm in a transaction of its own.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.chain import checkpoint_message, event_hash
from kiosk.audit.device_key import public_from_hex, verify_signature
from kiosk.errors import Conflict, InvalidRequest
from kiosk.fleet.hub import raise_alarm
from kiosk.fleet.requests_up import take_requests
from kiosk.store.db import write_session
from kiosk.store.models import Approval
from kiosk.store.models_fleet import (
    HubApprovalUse,
    HubCabinet,
    HubCheckpoint,
    HubEvent,
    HubRecord,
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


def _event_row(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        row = {name: raw[name] for name in EVENT_FIELDS}
        row["seq"] = int(row["seq"])
        row["at"] = _time(row["at"])
        row["slot"] = None if row["slot"] is None else int(row["slot"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"malformed event in batch: {exc}") from None
    return row


def _recomputed(row: dict[str, Any]) -> str:
    return event_hash(**{k: row[k] for k in EVENT_FIELDS if k != "hash"})


def ingest(audit: AuditLog, *, cabinet_id: str, batch: Batch) -> Ingested:
    """Ingest ``batch`` from the authenticated ``cabinet_id``; raise ``Refused`` on a break."""
    try:
        with write_session(audit.engine) as session:
            return _ingest_in(session, audit, cabinet_id, batch)
    except Refused as refused:
        with write_session(audit.engine) as session:
            raise_alarm(session, cabinet_id=cabinet_id, kind=refused.kind, seq=refused.seq,
                        message=str(refused))
            audit.append_in(session, NewEvent(
                type="fleet.ingest_refused", decision="deny",
                payload={"cabinet_id": cabinet_id, "kind": refused.kind, "seq": refused.seq,
                         "why": str(refused)}))
        raise


def _ingest_in(session: Session, audit: AuditLog, cabinet_id: str, batch: Batch) -> Ingested:
    cabinet = session.scalars(select(HubCabinet).where(HubCabinet.cabinet_id == cabinet_id)
                              .with_for_update()).one()
    if batch.head_seq < cabinet.acked_seq:
        raise Refused("log_backwards", batch.head_seq,
                      f"cabinet {cabinet_id} reports its log ends at seq {batch.head_seq}, but "
                      f"the hub already holds it up to seq {cabinet.acked_seq}: an old backup "
                      "was restored or the log was cut")
    new = 0
    fresh: list[dict[str, Any]] = []
    rows = sorted((_event_row(raw) for raw in batch.events), key=lambda r: r["seq"])
    for row in rows:
        seq = row["seq"]
        if row["cabinet_id"] != cabinet_id:
            raise Refused("foreign_event", seq, f"event seq {seq} names cabinet "
                          f"{row['cabinet_id']!r}, not the signing cabinet {cabinet_id!r}")
        if _recomputed(row) != row["hash"]:
            raise Refused("edited_event", seq, f"cabinet {cabinet_id} event seq {seq} does not "
                          f"match its hash: the row was edited (type {row['type']!r})")
        if seq <= cabinet.acked_seq:
            held = session.get(HubEvent, (cabinet_id, seq))
            if held is None or held.hash != row["hash"]:
                raise Refused("fork", seq, f"cabinet {cabinet_id} event seq {seq} differs from "
                              "the copy the hub holds: the log was rewritten or an old backup "
                              "was restored; the hub keeps its copy")
            continue
        if seq != cabinet.acked_seq + 1:
            raise Refused("gap", cabinet.acked_seq + 1,
                          f"cabinet {cabinet_id} sent seq {seq} but the hub holds up to "
                          f"{cabinet.acked_seq}: rows {cabinet.acked_seq + 1}..{seq - 1} missing")
        if row["prev_hash"] != cabinet.head_hash:
            raise Refused("fork", seq, f"cabinet {cabinet_id} event seq {seq} does not link to "
                          f"the hub's copy of seq {seq - 1}: a row was inserted, removed or "
                          "rewritten")
        fresh.append(row)
        cabinet.acked_seq, cabinet.head_hash = seq, row["hash"]
        new += 1
    if fresh:  # one multi-row INSERT, not an ORM object per event
        session.execute(insert(HubEvent), fresh)
        take_requests(session, audit, cabinet_id, fresh)  # K7 asked at the screen
    session.flush()
    _checkpoints(session, cabinet, batch.checkpoints)
    _records(session, cabinet_id, batch.records)
    # A cabinet's head beyond what it sent is fine (more to come); equal must match.
    if batch.head_seq == cabinet.acked_seq and batch.head_hash != cabinet.head_hash:
        raise Refused("fork", batch.head_seq, f"cabinet {cabinet_id} head hash differs "
                          "from the last event it sent")
    cabinet.last_seen_at = utcnow()
    return Ingested(cabinet.acked_seq, cabinet.head_hash, new)


def _checkpoints(session: Session, cabinet: HubCabinet, checkpoints: list[dict[str, Any]]) -> None:
    public = public_from_hex(cabinet.public_key)
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
        held = session.get(HubEvent, (cabinet.cabinet_id, seq))
        if held is None or held.hash != head_hash:
            raise Refused("fork", seq, f"cabinet {cabinet.cabinet_id} signed checkpoint at seq "
                          f"{seq} differs from the chain the hub holds")
        if session.get(HubCheckpoint, (cabinet.cabinet_id, seq)) is None:
            session.add(HubCheckpoint(cabinet_id=cabinet.cabinet_id, seq=seq,
                                      head_hash=head_hash, signed_at=signed_at, key_id=key_id,
                                      signature=signature))
            cabinet.checkpoint_seq = max(cabinet.checkpoint_seq, seq)


def _records(session: Session, cabinet_id: str, records: list[dict[str, Any]]) -> None:
    """Upsert the latest copy of each record the cabinet owns, keyed by (kind, id)."""
    for raw in records:
        try:
            kind, record_id, body = str(raw["kind"]), uuid.UUID(str(raw["id"])), raw["body"]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"malformed record in batch: {exc}") from None
        if kind not in RECORD_KINDS:
            raise InvalidRequest(f"unknown record kind {kind!r}")
        text = json.dumps(body, sort_keys=True, ensure_ascii=False)
        held = session.get(HubRecord, (kind, record_id))
        if held is None:
            session.add(HubRecord(kind=kind, record_id=record_id, cabinet_id=cabinet_id,
                                  body=text))
        elif held.cabinet_id != cabinet_id:
            raise Refused("foreign_record", None, f"{kind} {record_id} belongs to cabinet "
                          f"{held.cabinet_id}; cabinet {cabinet_id} cannot overwrite it")
        else:
            held.body, held.received_at = text, utcnow()
        if kind == "loan" and isinstance(body, dict) and body.get("approval_id"):
            _approval_used(session, cabinet_id, uuid.UUID(str(body["approval_id"])), record_id)


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
