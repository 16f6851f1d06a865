"""The cabinet's reads and writes of the register: facts for the policy, loans, alarms.

Keyword-only functions on a ``Session``. Reads return the frozen fact snapshots that
``kiosk.policy`` takes, so the policy never sees an ORM object; writes add rows and their
audit events in the caller's transaction (``kiosk.store.db.write_session``) so a loan and
the event that records it commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session, joinedload, selectinload

from kiosk import policy
from kiosk.store.models import (
    AccessRight,
    Alarm,
    AlarmState,
    Approval,
    ApprovalStatus,
    Cabinet,
    Card,
    DutyShift,
    Key,
    KeyStatus,
    Loan,
    OwnerAuthorization,
    Person,
    PhoneOutcome,
    Slot,
    Unit,
)

# ------------------------------------------------------------------------------ reads


def card_holder(
    session: Session, *, uid: str
) -> tuple[policy.CardFacts | None, policy.PersonFacts | None]:
    card = session.scalars(
        select(Card).where(Card.uid == uid.upper()).options(
            selectinload(Card.person).selectinload(Person.roles)
        )
    ).one_or_none()
    if card is None:
        return None, None
    return card_facts(card), person_facts(card.person)


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


def key_in_slot(session: Session, *, cabinet_id: uuid.UUID, slot: int) -> policy.KeyFacts | None:
    return _one_key(session, cabinet_id, Slot.number == slot)


def rights_for(session: Session, *, person: policy.PersonFacts) -> list[policy.RightFacts]:
    rows = session.scalars(
        select(AccessRight).where(
            (AccessRight.person_id == person.id) | (AccessRight.role.in_(sorted(person.roles)))
        )
    )
    return [
        policy.RightFacts(
            key_group_id=r.key_group_id, person_id=r.person_id,
            role=r.role.value if r.role else None, weekdays=r.weekdays,
            start_time=r.start_time, end_time=r.end_time,
            valid_from=r.valid_from, valid_to=r.valid_to,
        )
        for r in rows
    ]


def approvals_for(session: Session, *, person_id: uuid.UUID) -> list[policy.ApprovalFacts]:
    rows = session.scalars(
        select(Approval).where(
            Approval.requested_for_id == person_id, Approval.status == ApprovalStatus.APPROVED
        )
    )
    return [
        policy.ApprovalFacts(a.id, a.key_id, a.requested_for_id, a.status.value, a.valid_until)
        for a in rows
    ]


def authorizations_for(
    session: Session, *, person_id: uuid.UUID
) -> list[policy.AuthorizationFacts]:
    rows = session.scalars(
        select(OwnerAuthorization)
        .where(OwnerAuthorization.proxy_id == person_id)
        .options(
            selectinload(OwnerAuthorization.units),
            selectinload(OwnerAuthorization.phone_confirmations),
        )
    )
    return [
        policy.AuthorizationFacts(
            id=a.id, proxy_id=a.proxy_id, unit_ids=frozenset(u.unit_id for u in a.units),
            valid_from=a.valid_from, valid_to=a.valid_to, revoked=a.revoked,
            requires_phone_confirmation=a.requires_phone_confirmation,
            phone_confirmed=any(p.outcome == PhoneOutcome.CONFIRMED for p in a.phone_confirmations),
        )
        for a in rows
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
    """Slot number → key number for every key the records say is in the cabinet now."""
    out = open_loan_key_ids(session)
    rows = session.execute(
        select(Slot.number, Key.key_number, Key.id)
        .join(Key, Key.home_slot_id == Slot.id)
        .where(Slot.cabinet_id == cabinet_id, Key.status == KeyStatus.ACTIVE)
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
