"""The cabinet's reads and writes of the register: facts for the policy, loans, alarms.

Keyword-only functions on a ``Session``. Reads return the frozen fact snapshots that
``kiosk.policy`` takes, so the policy never sees an ORM object; writes add rows and their
audit events in the caller's transaction (``kiosk.services.tx.write``) so a loan and
the event that records it commit together or not at all.

``record_loan`` and ``record_return`` are the only places a loan is opened or closed by the
cabinet: the live flows (``kiosk.cabinet.flows``) and the start-up reconciliation
(``kiosk.reconcile``) both call them, so a fact is recorded the same way however the cabinet
came to know it (a return by someone else raises its K5 alarm on either path).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, select
from sqlalchemy.orm import Session, joinedload, selectinload

from kiosk import policy
from kiosk.audit import AppendedEvent, AuditLog, NewEvent
from kiosk.services import alarms as alarm_service
from kiosk.services import tx
from kiosk.store.models import (
    AccessRight,
    Alarm,
    AlarmState,
    Approval,
    ApprovalStatus,
    AuthorizationUnit,
    Cabinet,
    Card,
    DutyShift,
    Key,
    KeyGroup,
    KeyStatus,
    Loan,
    OwnerAuthorization,
    Person,
    PersonRole,
    PhoneConfirmation,
    PhoneOutcome,
    Slot,
    Unit,
)

# ------------------------------------------------------------------------------ reads


# The tap and choice path's reads are built once, with bound parameters: building a select
# and its cache key cost more CPU than running it (about 0.35 ms of the 0.5 ms a read took),
# and every badge tap made six of them (issue 15: tap to key list within 5 ms).
_CARD_HOLDER = (
    select(Card.uid, Card.status, Card.kind, Card.valid_from, Card.valid_to, Person.id,
           Person.name, Person.active, Person.department_id, PersonRole.role)
    .join(Person, Card.person_id == Person.id)
    .outerjoin(PersonRole, PersonRole.person_id == Person.id)
    .where(Card.uid == bindparam("uid"))
)
"""The card, its holder and the holder's roles in one read: a row per role (one row with
no role for a person who has none); every tap starts here."""


def card_holder(
    session: Session, *, uid: str
) -> tuple[policy.CardFacts | None, policy.PersonFacts | None]:
    """The card and its holder as facts: one column read, no ORM objects (every tap
    starts here; issue 15 measures it)."""
    rows = session.execute(_CARD_HOLDER, {"uid": uid.upper()}).all()
    if not rows:
        return None, None
    row = rows[0]
    roles = frozenset(r.role.value for r in rows if r.role is not None)
    return (
        policy.CardFacts(uid=row.uid, status=row.status.value, kind=row.kind.value,
                         valid_from=row.valid_from, valid_to=row.valid_to),
        policy.PersonFacts(id=row.id, name=row.name, roles=roles, active=row.active,
                           department_id=row.department_id),
    )


def card_facts(card: Card) -> policy.CardFacts:
    return policy.CardFacts(
        uid=card.uid, status=card.status.value, kind=card.kind.value,
        valid_from=card.valid_from, valid_to=card.valid_to,
    )


def person_facts(person: Person) -> policy.PersonFacts:
    return policy.PersonFacts(
        id=person.id, name=person.name, roles=frozenset(r.role.value for r in person.roles),
        active=person.active, department_id=person.department_id,
    )


def cabinet_row(session: Session, *, code: str) -> Cabinet:
    return session.scalars(select(Cabinet).where(Cabinet.code == code)).one()


def _key_query(cabinet_id: uuid.UUID) -> Select[Key, int]:
    return (
        select(Key, Slot.number)
        .join(Slot, Key.home_slot_id == Slot.id)
        .where(Slot.cabinet_id == cabinet_id)
        .options(selectinload(Key.group), selectinload(Key.unit))
    )


def _key_facts(key: Key, slot_number: int | None, on_loan: bool) -> policy.KeyFacts:
    return policy.KeyFacts(
        id=key.id, key_number=key.key_number, label=key.label, group_id=key.group_id,
        requires_cosign=key.group.requires_cosign, loan_minutes=key.group.loan_minutes,
        status=key.status.value, on_loan=on_loan, home_slot=slot_number, unit_id=key.unit_id,
        special=bool(key.unit is not None and key.unit.special),
        floor=key.unit.floor if key.unit is not None else None,
    )


def open_loan_key_ids(session: Session) -> set[uuid.UUID]:
    return set(session.scalars(select(Loan.key_id).where(Loan.returned_at.is_(None))))


def cabinet_keys(session: Session, *, cabinet_id: uuid.UUID) -> list[policy.KeyFacts]:
    """Every active key whose home is a slot of this cabinet, with whether it is out."""
    out = open_loan_key_ids(session)
    rows = session.execute(_key_query(cabinet_id).where(Key.status == KeyStatus.ACTIVE)).all()
    return [_key_facts(k, n, k.id in out) for k, n in rows]


def awaiting_stock(session: Session, *, cabinet_id: uuid.UUID) -> list[policy.KeyFacts]:
    """The keys on record with a home slot of this cabinet that have never hung in it
    (imported, ``keys.awaiting_stock``): what a stocking session releases, by slot."""
    rows = session.execute(_key_query(cabinet_id).where(
        Key.status == KeyStatus.ACTIVE, Key.awaiting_stock.is_(True)).order_by(Slot.number)).all()
    out = open_loan_key_ids(session)
    return [_key_facts(k, n, False) for k, n in rows if k.id not in out]


def _one_key(session: Session, cabinet_id: uuid.UUID,
             condition: ColumnElement[bool]) -> policy.KeyFacts | None:
    """One key of this cabinet in one statement: its slot, group, unit and whether it is out.

    The tap and choice paths look keys up one at a time; four statements each (key, group,
    unit, every open loan) were a millisecond of the choice → unlock time.
    """
    out = select(Loan.id).where(Loan.key_id == Key.id, Loan.returned_at.is_(None)).exists()
    row = session.execute(
        select(Key, Slot.number, out)
        .join(Slot, Key.home_slot_id == Slot.id)
        .where(Slot.cabinet_id == cabinet_id, condition)
        .options(joinedload(Key.group), joinedload(Key.unit))
    ).one_or_none()
    if row is None:
        return None
    key, number, on_loan = row
    return _key_facts(key, number, bool(on_loan))


def key_by_number(
    session: Session, *, cabinet_id: uuid.UUID, key_number: str
) -> policy.KeyFacts | None:
    return _one_key(session, cabinet_id, Key.key_number == key_number)


def key_by_fob(session: Session, *, cabinet_id: uuid.UUID, fob: str) -> policy.KeyFacts | None:
    return _one_key(session, cabinet_id, Key.fob_tag == fob.upper())


def key_by_rom(session: Session, *, cabinet_id: uuid.UUID, rom: str) -> policy.KeyFacts | None:
    """The key whose fob carries this 1-Wire ROM (what an identity receptor read)."""
    return _one_key(session, cabinet_id, Key.fob_rom == rom.upper())


def fob_rom_of(session: Session, *, key_id: uuid.UUID) -> str | None:
    """The ROM paired with a key's fob, or None (not paired yet)."""
    return session.scalar(select(Key.fob_rom).where(Key.id == key_id))


def returns_anywhere(session: Session, *, key_id: uuid.UUID) -> bool:
    """Whether the key's group lets it go back to any free slot (issue 13)."""
    return bool(session.scalar(
        select(KeyGroup.return_anywhere).join(Key, Key.group_id == KeyGroup.id)
        .where(Key.id == key_id)))


def expected_roms(session: Session, *, cabinet_id: uuid.UUID) -> dict[int, tuple[str, str | None]]:
    """Slot → (key number, fob ROM) for every key the records say is in the cabinet now: what
    an identity cabinet's scan is compared with (start-up, daily count)."""
    out = open_loan_key_ids(session)
    rows = session.execute(
        select(Slot.number, Key.key_number, Key.fob_rom, Key.id)
        .join(Key, Key.home_slot_id == Slot.id)
        .where(Slot.cabinet_id == cabinet_id, Key.status == KeyStatus.ACTIVE)
    ).all()
    return {n: (number, rom) for n, number, rom, key_id in rows if key_id not in out}


def rehome(session: Session, *, key_id: uuid.UUID, cabinet_id: uuid.UUID, slot: int) -> int | None:
    """Make ``slot`` the key's home (a return to another free slot); the old home, returned,
    becomes free for intake. Only a slot that is nobody's home may be taken."""
    key = session.get(Key, key_id)
    assert key is not None
    new_id = slot_id(session, cabinet_id=cabinet_id, number=slot)
    if key.home_slot_id == new_id:
        return None
    holder = session.scalar(select(Key.id).where(Key.home_slot_id == new_id))
    if holder is not None:
        raise ValueError(f"slot {slot} is the home of another key")
    old = session.scalar(select(Slot.number).where(Slot.id == key.home_slot_id))
    key.home_slot_id = new_id
    session.flush()
    return old


def key_in_slot(session: Session, *, cabinet_id: uuid.UUID, slot: int) -> policy.KeyFacts | None:
    return _one_key(session, cabinet_id, Slot.number == slot)


_RIGHTS = select(
    AccessRight.key_group_id, AccessRight.person_id, AccessRight.role, AccessRight.weekdays,
    AccessRight.start_time, AccessRight.end_time, AccessRight.valid_from, AccessRight.valid_to,
).where((AccessRight.person_id == bindparam("person_id"))
        | AccessRight.role.in_(bindparam("roles", expanding=True)))
_APPROVALS = select(
    Approval.id, Approval.key_id, Approval.requested_for_id, Approval.status,
    Approval.valid_until,
).where(Approval.requested_for_id == bindparam("person_id"),
        Approval.status == ApprovalStatus.APPROVED)
_AUTHORIZATIONS = select(
    OwnerAuthorization.id, OwnerAuthorization.proxy_id, OwnerAuthorization.valid_from,
    OwnerAuthorization.valid_to, OwnerAuthorization.revoked,
    OwnerAuthorization.requires_phone_confirmation,
).where(OwnerAuthorization.proxy_id == bindparam("person_id"))
_AUTHORIZED_UNITS = select(AuthorizationUnit.authorization_id, AuthorizationUnit.unit_id).where(
    AuthorizationUnit.authorization_id.in_(bindparam("ids", expanding=True)))
_PHONE_CONFIRMED = select(PhoneConfirmation.authorization_id).where(
    PhoneConfirmation.authorization_id.in_(bindparam("ids", expanding=True)),
    PhoneConfirmation.outcome == PhoneOutcome.CONFIRMED)


def rights_for(session: Session, *, person: policy.PersonFacts) -> list[policy.RightFacts]:
    """The person's own rights and their roles' (column reads: the tap and choice path)."""
    rows = session.execute(_RIGHTS, {"person_id": person.id, "roles": sorted(person.roles)})
    return [
        policy.RightFacts(
            key_group_id=row.key_group_id, person_id=row.person_id,
            role=row.role.value if row.role else None, weekdays=row.weekdays,
            start_time=row.start_time, end_time=row.end_time,
            valid_from=row.valid_from, valid_to=row.valid_to,
        )
        for row in rows
    ]


def approvals_for(session: Session, *, person_id: uuid.UUID) -> list[policy.ApprovalFacts]:
    rows = session.execute(_APPROVALS, {"person_id": person_id})
    return [
        policy.ApprovalFacts(row.id, row.key_id, row.requested_for_id, row.status.value,
                             row.valid_until)
        for row in rows
    ]


def authorizations_for(
    session: Session, *, person_id: uuid.UUID
) -> list[policy.AuthorizationFacts]:
    """K6: the letters naming this person as proxy; most people have none, so that case is
    one column read."""
    rows = session.execute(_AUTHORIZATIONS, {"person_id": person_id}).all()
    if not rows:
        return []
    ids = [row.id for row in rows]
    units: dict[uuid.UUID, set[uuid.UUID]] = {i: set() for i in ids}
    for auth_id, unit_id in session.execute(_AUTHORIZED_UNITS, {"ids": ids}):
        units[auth_id].add(unit_id)
    confirmed = set(session.scalars(_PHONE_CONFIRMED, {"ids": ids}))
    return [
        policy.AuthorizationFacts(
            id=row.id, proxy_id=row.proxy_id, unit_ids=frozenset(units[row.id]),
            valid_from=row.valid_from, valid_to=row.valid_to, revoked=row.revoked,
            requires_phone_confirmation=row.requires_phone_confirmation,
            phone_confirmed=row.id in confirmed,
        )
        for row in rows
    ]


def roster_at(session: Session, *, at: dt.datetime) -> list[policy.ShiftFacts]:
    rows = session.scalars(
        select(DutyShift).where(DutyShift.starts_at <= at, DutyShift.ends_at > at)
    )
    return [policy.ShiftFacts(s.person_id, s.starts_at, s.ends_at) for s in rows]


def person_name(session: Session, *, person_id: uuid.UUID | None) -> str | None:
    if person_id is None:
        return None
    person = session.get(Person, person_id)
    return person.name if person else None


def open_loan(session: Session, *, key_id: uuid.UUID) -> Loan | None:
    return session.scalars(
        select(Loan).where(Loan.key_id == key_id, Loan.returned_at.is_(None))
    ).one_or_none()


def slot_id(session: Session, *, cabinet_id: uuid.UUID, number: int) -> uuid.UUID | None:
    return session.scalar(select(Slot.id).where(Slot.cabinet_id == cabinet_id, Slot.number == number))


def free_slots(session: Session, *, cabinet_id: uuid.UUID) -> list[int]:
    """Enabled slots that are nobody's home: where intake may put a new key."""
    taken = select(Key.home_slot_id).where(Key.home_slot_id.is_not(None))
    return list(
        session.scalars(
            select(Slot.number)
            .where(Slot.cabinet_id == cabinet_id, Slot.enabled.is_(True), Slot.id.not_in(taken))
            .order_by(Slot.number)
        )
    )


def expected_presence(session: Session, *, cabinet_id: uuid.UUID) -> dict[int, str]:
    """Slot number → key number for every key the records say is in the cabinet now. A key
    imported and never hung (``awaiting_stock``) is not: the start-up reconciliation (K10),
    the daily count (K9) and the simulated cabinet leave its empty slot alone."""
    out = open_loan_key_ids(session)
    rows = session.execute(
        select(Slot.number, Key.key_number, Key.id)
        .join(Key, Key.home_slot_id == Slot.id)
        .where(Slot.cabinet_id == cabinet_id, Key.status == KeyStatus.ACTIVE,
               Key.awaiting_stock.is_(False))
    ).all()
    return {n: number for n, number, key_id in rows if key_id not in out}


def loans_out(session: Session, *, cabinet_id: uuid.UUID) -> Sequence[Loan]:
    return session.scalars(
        select(Loan)
        .where(Loan.cabinet_id == cabinet_id, Loan.returned_at.is_(None))
        .options(selectinload(Loan.key), selectinload(Loan.borrower))
        .order_by(Loan.drawn_at)
    ).all()


def has_open_alarm(session: Session, *, kind: str, loan_id: uuid.UUID | None = None,
                   slot: uuid.UUID | None = None) -> bool:
    query = select(Alarm.id).where(Alarm.kind == kind, Alarm.state != AlarmState.CLOSED)
    if loan_id is not None:
        query = query.where(Alarm.loan_id == loan_id)
    if slot is not None:
        query = query.where(Alarm.slot_id == slot)
    return session.scalar(query.limit(1)) is not None


def unit_label(session: Session, *, unit_id: uuid.UUID | None) -> str | None:
    unit = session.get(Unit, unit_id) if unit_id else None
    return unit.room_number if unit else None


# ----------------------------------------------------------------------------- writes


def consume_approval(session: Session, *, approval_id: uuid.UUID, loan_id: uuid.UUID) -> None:
    """K7: an approval is used by its draw, once."""
    approval = session.get(Approval, approval_id)
    if approval is None or approval.status != ApprovalStatus.APPROVED:
        raise ValueError(f"approval {approval_id} is not open for use")
    approval.status = ApprovalStatus.USED
    approval.used_loan_id = loan_id


@dataclass(frozen=True)
class LoanTerms:
    """Everything a loan is opened with, whether the draw was seen live or resolved at start."""

    key: policy.KeyFacts
    cabinet_id: uuid.UUID
    borrower_id: uuid.UUID
    reason_code: str
    reason_text: str | None
    drawn_at: dt.datetime
    due_at: dt.datetime
    issuer_id: uuid.UUID | None = None
    duty_manager_id: uuid.UUID | None = None
    approval_id: uuid.UUID | None = None
    authorization_id: uuid.UUID | None = None


def record_loan(
    session: Session, audit: AuditLog, terms: LoanTerms, *, event_type: str, slot: int | None,
    rules: list[str], actors: list[str], payload: Mapping[str, Any],
    approval_may_be_used: bool = False,
) -> tuple[Loan, AppendedEvent]:
    """Open a loan and log the event that records it (``key.drawn`` live, ``draw.resolved``
    at start-up), in the caller's transaction; a K7 approval is used up by its draw.

    ``approval_may_be_used``: at start-up the approval may already show as used by this very
    draw (the crash came after the commit that used it); the loan still stands and its event
    says what allowed it."""
    loan = Loan(
        key_id=terms.key.id, cabinet_id=terms.cabinet_id, borrower_id=terms.borrower_id,
        issuer_id=terms.issuer_id, duty_manager_id=terms.duty_manager_id,
        approval_id=terms.approval_id, authorization_id=terms.authorization_id,
        reason_code=terms.reason_code, reason_text=terms.reason_text,
        drawn_at=terms.drawn_at, due_at=terms.due_at,
    )
    session.add(loan)
    session.flush()
    if terms.approval_id is not None:
        try:
            consume_approval(session, approval_id=terms.approval_id, loan_id=loan.id)
        except ValueError:
            if not approval_may_be_used:
                raise
    event = tx.log(session, audit, NewEvent(
        type=event_type, slot=slot, key_number=terms.key.key_number, decision="allow",
        rules=rules, actors=actors,
        payload={"loan": str(loan.id), "due_at": loan.due_at.isoformat(), **payload},
    ))
    loan.draw_event_seq = event.seq
    return loan, event


def record_return(
    session: Session, audit: AuditLog, *, loan: Loan, key: policy.KeyFacts,
    cabinet_id: uuid.UUID, slot: int, returner_id: uuid.UUID | None, at: dt.datetime,
    event_type: str, actors: list[str], payload: Mapping[str, Any],
    alarm_owners: Mapping[str, str] | None = None,
) -> AppendedEvent:
    """Close ``loan``: who returned it, where, when, and the event (``key.returned`` live,
    ``return.resolved`` at start-up). K5: a return by someone other than the borrower, or by
    nobody identified, is recorded as such and raises a ``returned_by_other`` alarm."""
    decision = policy.decide_return(borrower_id=loan.borrower_id, returner_id=returner_id)
    loan.returned_at = max(at, loan.drawn_at)  # a Pi without RTC may step back in time
    loan.returned_by_id = returner_id
    loan.returned_by_other = decision.code != "returned"
    loan.return_slot_id = slot_id(session, cabinet_id=cabinet_id, number=slot)
    event = tx.log(session, audit, NewEvent(
        type=event_type, slot=slot, key_number=key.key_number, decision="allow",
        rules=list(decision.rules), actors=actors,
        payload={"loan": str(loan.id), "returned_by_other": loan.returned_by_other,
                 "code": decision.code, "overdue": at > loan.due_at, **payload},
    ))
    loan.return_event_seq = event.seq
    if loan.returned_by_other:
        alarm_service.raise_alarm(
            session, audit, kind="returned_by_other", rule="K5", message=decision.reason,
            actors=actors, cabinet_id=cabinet_id, slot_id=loan.return_slot_id, key_id=key.id,
            loan_id=loan.id, at=at, owners=alarm_owners,
        )
    return event
