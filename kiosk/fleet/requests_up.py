"""Approval requests made at a cabinet's screen become the hub's pending approvals (K7,
issue 12).

At a cabinet a person refused a special-room key touches 申请审批; the cabinet writes a
pending approval and the event ``approval.requested`` into its own log (the cabinet decides
alone and must show the request at once). In a fleet the department leader decides at the
hub, where approvals are authored, so when the hub ingests that event it makes the same
approval (the same id) pending in its own database, and logs its own
``approval.requested`` naming the leaders, which the hub's notification routes carry to
them. The leader's decision is then an ordinary change of a hub-authored approval and flows
down to the key's home cabinet by the version cursor like any other; the cabinet's pending
copy has the same id, so the decision lands on it (``kiosk.fleet.apply_keys``).

Rows are matched by natural keys (key number, staff number), as everything that travels.
A request for a key not homed at the asking cabinet, or for someone the hub does not know,
is not made: the hub logs ``fleet.approval_request_skipped`` with the reason, so a cabinet
can never raise requests for another cabinet's keys.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.fleet.config_keys import key_home
from kiosk.services import tx
from kiosk.services.approvals import AT_CABINET_VALIDITY, MAX_VALIDITY, leaders_of
from kiosk.store.models import Approval, ApprovalStatus, Key, Person

REQUESTED = "approval.requested"


def _person(session: Session, payload: dict[str, Any]) -> Person | None:
    staff_no = payload.get("staff_no")
    if staff_no:
        return session.scalars(select(Person).where(Person.staff_no == staff_no)).first()
    try:
        return session.get(Person, uuid.UUID(str(payload.get("for"))))
    except ValueError:
        return None


def _skip(session: Session, audit: AuditLog, cabinet_id: str, seq: int, why: str) -> None:
    audit.append_in(session, NewEvent(
        type="fleet.approval_request_skipped", rules=["K7"],
        payload={"cabinet": cabinet_id, "seq": seq, "reason": why}))


def take_requests(session: Session, audit: AuditLog, cabinet_id: str,
                  rows: list[dict[str, Any]]) -> int:
    """Make the hub's pending approvals for the ``approval.requested`` events among a batch's
    new events (``rows`` as ingest inserts them); returns how many were made."""
    made = 0
    for row in rows:
        if row["type"] != REQUESTED:
            continue
        payload = json.loads(row["payload"]) if isinstance(row["payload"], str) else row[
            "payload"]
        try:
            approval_id = uuid.UUID(str(payload["approval"]))
        except (KeyError, ValueError):
            _skip(session, audit, cabinet_id, row["seq"], "no approval id")
            continue
        if session.get(Approval, approval_id) is not None:
            continue  # already the hub's (a resend, or a hub-made approval)
        key = session.scalars(select(Key).where(Key.key_number == row["key_number"])).first()
        home = key_home(session, key) if key is not None else None
        if key is None or home is None or home[0] != cabinet_id:
            _skip(session, audit, cabinet_id, row["seq"],
                  f"key {row['key_number']} is not homed at {cabinet_id}")
            continue
        person = _person(session, payload)
        if person is None:
            _skip(session, audit, cabinet_id, row["seq"], "the person is unknown at the hub")
            continue
        asked_at: dt.datetime = row["at"]
        try:
            valid_until = dt.datetime.fromisoformat(payload["valid_until"])
        except (KeyError, ValueError):
            valid_until = asked_at + AT_CABINET_VALIDITY
        # A cabinet cannot grant itself a long window: the hub's limit applies.
        valid_until = min(valid_until, asked_at + MAX_VALIDITY)
        approval = Approval(
            id=approval_id, key_id=key.id, requested_for_id=person.id,
            requested_by_id=person.id, reason=str(payload.get("reason") or
                                                  "requested at the cabinet")[:200],
            valid_until=valid_until, created_at=asked_at, status=ApprovalStatus.PENDING)
        session.add(approval)
        session.flush()
        leaders = leaders_of(session, person)
        tx.log(session, audit, NewEvent(
            type=REQUESTED, actors=[str(person.id)], key_number=key.key_number,
            rules=["K7"], payload={
                "approval": str(approval.id), "for": str(person.id),
                "valid_until": valid_until.isoformat(), "reason": approval.reason,
                "cabinet": cabinet_id, "cabinet_seq": row["seq"],
                "borrower_name": person.name,
                "leaders": [{"id": str(p.id), "name": p.name} for p in leaders]}))
        made += 1
    return made
