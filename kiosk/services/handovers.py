"""H1 shift handover (交接班): the outgoing keeper starts, the incoming keeper taps to accept.

The report (keys out, open alarms with their follow-ups, the count, what happened in the
shift) is built and frozen when the handover starts, so both people sign the same content.
The outgoing signs with a badge tap at the cabinet or through the admin API with an
account linked to them; the incoming signs only with a badge tap at the cabinet: accepting
the register means standing in front of the keys. On acceptance the signed report is
stored as a K9 report (never deleted, printable as PDF/CSV, acknowledged by a supervisor).

A started handover waits ``valid_for`` for its acceptance; after that it lapses (the
counts it froze are stale) and has to be started again. One pending handover per cabinet
at a time, enforced by a partial unique index as well as here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from kiosk import policy, records
from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict, InvalidRequest
from kiosk.reports import data as report_data
from kiosk.reports import store as report_store
from kiosk.services import tx
from kiosk.store.models import Cabinet, Handover, HandoverState, Person
from kiosk.store.types import utcnow

if TYPE_CHECKING:
    from kiosk.config import SiteSettings

DEFAULT_VALID_FOR = dt.timedelta(minutes=30)


class HandoverRefused(InvalidRequest):
    """A person may not sign this handover; ``code`` is the screen's message key."""

    def __init__(self, decision: policy.Decision) -> None:
        super().__init__(f"H1: {decision.reason}")
        self.code = decision.code
        self.decision = decision


def log_refusal(session: Session, audit: AuditLog, refused: HandoverRefused, *,
                actors: list[str], action: str) -> None:
    """A refused signer is an ``access.denied`` event wherever it was refused: the kiosk
    logs its own; the API calls this after the refused transaction rolled back."""
    tx.log(session, audit, NewEvent(
        type="access.denied", actors=actors, decision="deny", rules=list(refused.decision.rules),
        payload={"code": refused.code, "reason": refused.decision.reason, "action": action,
                 "via": "api"},
    ))


def content_of(row: Handover) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(row.report)
    return data


def _person(session: Session, person_id: uuid.UUID) -> Person:
    return session.scalars(
        select(Person).where(Person.id == person_id).options(selectinload(Person.roles))
    ).one()


def _signature(person: Person, at: dt.datetime, zone: ZoneInfo, *, card: str | None,
               account: str | None) -> report_data.Signature:
    return report_data.Signature(
        name=person.name, staff_no=person.staff_no,
        at=report_data.local_iso(at, zone) or "", card=card, account=account,
    )


def _check(person: Person, *, outgoing: Person | None = None) -> None:
    """The service's own check (the kiosk has also asked the policy before calling)."""
    decision = policy.decide_handover_signer(
        records.person_facts(person),
        policy.Decision.allow("identified", "identified"),
        outgoing=records.person_facts(outgoing) if outgoing is not None else None,
    )
    if not decision.allowed:
        raise HandoverRefused(decision)


def pending(session: Session, *, cabinet_id: uuid.UUID, now: dt.datetime) -> Handover | None:
    """The handover waiting for its incoming signature, if it has not lapsed (read only)."""
    row = session.scalars(
        select(Handover).where(
            Handover.cabinet_id == cabinet_id, Handover.state == HandoverState.STARTED
        ).options(selectinload(Handover.outgoing))
    ).one_or_none()
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None
    return row


def _close(session: Session, audit: AuditLog, row: Handover, *, reason: str,
           actors: list[str], now: dt.datetime) -> None:
    row.state = HandoverState.CANCELLED
    row.closed_at, row.close_reason = now, reason
    session.flush()
    tx.log(session, audit, NewEvent(
        type="handover.lapsed" if reason == "expired" else "handover.cancelled",
        actors=actors, rules=["H1"],
        payload={"handover": str(row.id), "reason": reason,
                 "outgoing": str(row.outgoing_id)},
    ))


def lapse_expired(session: Session, audit: AuditLog, *, cabinet_id: uuid.UUID,
                  now: dt.datetime) -> int:
    """Close pending handovers whose acceptance window has passed; logged, never deleted."""
    rows = session.scalars(select(Handover).where(
        Handover.cabinet_id == cabinet_id, Handover.state == HandoverState.STARTED,
        Handover.expires_at <= now,
    )).all()
    for row in rows:
        _close(session, audit, row, reason="expired", actors=["system"], now=now)
    return len(rows)


def start(
    session: Session, audit: AuditLog, *, cabinet: Cabinet, outgoing_id: uuid.UUID,
    zone: ZoneInfo, sensed: dict[int, bool] | None, card: str | None = None,
    account: str | None = None, actors: list[str] | None = None, notes: str | None = None,
    now: dt.datetime | None = None, valid_for: dt.timedelta = DEFAULT_VALID_FOR,
    fobs: dict[int, str | None] | None = None,
) -> Handover:
    """H1: freeze the shift's report and wait for the incoming keeper's tap. ``fobs``: an
    identity cabinet's last read of each slot, so the count says which keys were identified."""
    if (card is None) == (account is None):
        raise InvalidRequest("H1: the outgoing signature is a badge tap or an account, one of them")
    now = now or utcnow()
    outgoing = _person(session, outgoing_id)
    _check(outgoing)
    lapse_expired(session, audit, cabinet_id=cabinet.id, now=now)
    waiting = pending(session, cabinet_id=cabinet.id, now=now)
    if waiting is not None:
        raise Conflict(
            f"H1: a handover started by {waiting.outgoing.name} at "
            f"{report_data.local_iso(waiting.started_at, zone)} is waiting to be accepted; "
            f"accept or cancel it first"
        )
    handover_id = uuid.uuid4()
    since = report_data.handover_period_start(session, cabinet_id=cabinet.id, zone=zone, now=now)
    report = report_data.build_handover(
        session, cabinet_id=cabinet.id, cabinet=cabinet.name, handover_id=handover_id,
        outgoing=_signature(outgoing, now, zone, card=card, account=account),
        since=since, now=now, zone=zone, sensed=sensed, notes=notes,
        fobs=fobs if sensed is not None else None,
    )
    row = Handover(
        id=handover_id, cabinet_id=cabinet.id, outgoing_id=outgoing.id,
        state=HandoverState.STARTED, started_at=now, expires_at=now + valid_for,
        report=report_data.canonical(report_data.content(report)), notes=notes,
        outgoing_card=card, outgoing_account=account,
    )
    session.add(row)
    session.flush()
    stored = tx.log(session, audit, NewEvent(
        type="handover.started", actors=actors or [str(outgoing.id)], rules=["H1"],
        payload={"handover": str(row.id), "outgoing": outgoing.name,
                 "signed_by": "badge" if card else "account",
                 "keys_out": len(report.keys_out), "open_alarms": len(report.open_alarms),
                 "mismatches": len(report.count.mismatches), "overdue": report.overdue,
                 "expires_at": row.expires_at.isoformat() if row.expires_at else None},
    ))
    row.started_seq = stored.seq
    return row


def accept(
    session: Session, audit: AuditLog, *, cabinet_id: uuid.UUID, incoming_id: uuid.UUID,
    card: str, zone: ZoneInfo, language: str, handover_id: uuid.UUID | None = None,
    now: dt.datetime | None = None, site: SiteSettings | None = None,
) -> Handover:
    """H1: the incoming keeper's badge tap signs; the report is stored for good (K9), its
    printed files carrying ``site``'s company and building names."""
    now = now or utcnow()
    lapse_expired(session, audit, cabinet_id=cabinet_id, now=now)
    row = pending(session, cabinet_id=cabinet_id, now=now)
    if row is None or (handover_id is not None and row.id != handover_id):
        raise Conflict("H1: no handover is waiting to be accepted (it may have lapsed)")
    incoming = _person(session, incoming_id)
    _check(incoming, outgoing=_person(session, row.outgoing_id))
    data = content_of(row)
    data["incoming"] = dataclasses.asdict(_signature(incoming, now, zone, card=card, account=None))
    row.state = HandoverState.ACCEPTED
    row.incoming_id, row.incoming_card, row.accepted_at = incoming.id, card, now
    row.report = report_data.canonical(data)
    session.flush()
    stored_report = report_store.save_content(
        session, audit, data=data, language=language,
        actors=[str(row.outgoing_id), str(incoming.id)], now=now, site=site,
    )
    row.report_id = stored_report.id
    stored = tx.log(session, audit, NewEvent(
        type="handover.accepted", actors=[str(row.outgoing_id), str(incoming.id)],
        rules=["H1"],
        payload={"handover": str(row.id), "outgoing": data["outgoing"]["name"],
                 "incoming": incoming.name, "report": str(stored_report.id),
                 "sha256": stored_report.sha256},
    ))
    row.accepted_seq = stored.seq
    return row


def cancel(
    session: Session, audit: AuditLog, *, handover_id: uuid.UUID, actors: list[str],
    reason: str = "cancelled", now: dt.datetime | None = None,
) -> Handover:
    """Withdraw a pending handover (the outgoing changed their mind, or an admin did)."""
    row = tx.get(session, Handover, handover_id, "handover")
    if row.state != HandoverState.STARTED:
        raise Conflict(f"H1: handover {row.id} is {row.state.value}, not waiting")
    _close(session, audit, row, reason=reason, actors=actors, now=now or utcnow())
    return row


def list_handovers(
    session: Session, *, state: HandoverState | None, limit: int, offset: int
) -> tuple[list[Handover], int]:
    query = select(Handover).options(
        selectinload(Handover.outgoing), selectinload(Handover.incoming)
    )
    if state is not None:
        query = query.where(Handover.state == state)
    return tx.page(session, query, order_by=[Handover.started_at.desc(), Handover.id],
                   limit=limit, offset=offset)


def get_handover(session: Session, *, handover_id: uuid.UUID) -> Handover:
    return tx.get(session, Handover, handover_id, "handover")
