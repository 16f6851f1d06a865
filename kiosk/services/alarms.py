"""F1 alarms: every alarm or discrepancy has an owner and a state, with notes.

States go open → handled → closed, never back and never skipping "handled": whoever first
acknowledges an alarm owns it (首接责任制) until it is closed or assigned on. Alarms are
never deleted (K9: reports are only acknowledged); each step adds a note and an event.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from kiosk.audit import AuditLog, NewEvent
from kiosk.config import ALARM_OWNER_ROLES, DEFAULT_ALARM_OWNERS
from kiosk.errors import Conflict, InvalidRequest
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models import (
    Alarm,
    AlarmNote,
    AlarmState,
    Cabinet,
    DutyShift,
    Key,
    Person,
    PersonRole,
    Role,
    Slot,
)
from kiosk.store.models_auth import Account
from kiosk.store.types import utcnow

ALARM_LIFECYCLE = frozenset({"raised", "acknowledged", "assigned", "noted", "closed", "escalated"})
"""Steps in an alarm's life, logged as ``alarm.<step>``. Raising logs ``alarm.<kind>``, so
these words cannot be alarm kinds: a route or a metric tells a raise from a step by name."""


def alarm_kind_of(event_type: str) -> str | None:
    """The kind an ``alarm.<kind>`` event raised, or None for any other event or a step."""
    prefix, _, kind = event_type.partition(".")
    return kind if prefix == "alarm" and kind and kind not in ALARM_LIFECYCLE else None


def _named_owner(session: Session, name: str, at: dt.datetime) -> Person | None:
    """The person an owner setting names: a role's first active holder (the duty manager:
    the one on the roster at ``at``), or the person linked to an account of that name."""
    if name in ALARM_OWNER_ROLES:
        if name == Role.DUTY_MANAGER.value:
            rostered = session.scalars(
                select(Person).join(DutyShift, DutyShift.person_id == Person.id)
                .where(DutyShift.starts_at <= at, DutyShift.ends_at > at, Person.active.is_(True))
                .order_by(DutyShift.starts_at.desc())
            ).first()
            if rostered is not None:
                return rostered
        return session.scalars(
            select(Person).join(PersonRole)
            .where(PersonRole.role == Role(name), Person.active.is_(True))
            .order_by(Person.staff_no, Person.id)
        ).first()
    account = session.scalars(select(Account).where(Account.username == name)).one_or_none()
    if account is None or not account.active or account.person_id is None:
        return None
    person = session.get(Person, account.person_id)
    return person if person is not None and person.active else None


def owner_for(
    session: Session, *, kind: str, owners: Mapping[str, str] | None = None,
    at: dt.datetime | None = None,
) -> Person | None:
    """F1: who owns a new alarm of ``kind``: the settings' owner for the kind, else the
    default owner (``owners["*"]``), else a supervisor; None only if nobody fits at all."""
    table = owners if owners is not None else {**DEFAULT_ALARM_OWNERS, "*": "supervisor"}
    when = at or utcnow()
    for name in (table.get(kind), table.get("*"), Role.SUPERVISOR.value):
        if name:
            person = _named_owner(session, name, when)
            if person is not None:
                return person
    return None


def raise_alarm(
    session: Session,
    audit: AuditLog,
    *,
    kind: str,
    message: str,
    actors: list[str],
    rule: str | None = None,
    cabinet_id: uuid.UUID | None = None,
    slot_id: uuid.UUID | None = None,
    key_id: uuid.UUID | None = None,
    loan_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    payload: dict[str, object] | None = None,
    at: dt.datetime | None = None,
    owners: Mapping[str, str] | None = None,
) -> Alarm:
    """Open an alarm: the cabinet, the daily count, or a person reporting a discrepancy.

    The one way an alarm comes to be, whoever raises it: an ``Alarm`` row with a state and
    an owner (F1) and an ``alarm.<kind>`` event (``alarm.door_forced``...), so a
    notification route or a Prometheus counter can pick out one kind by its event type.
    ``at`` is the raiser's clock (the scheduler's count time, the cabinet's clock), so an
    alarm lands in the report of the day it belongs to; the event keeps the log's own time.
    With no ``owner_id`` the owner comes from ``owners`` (``[alarms] owners`` in the settings;
    ``owner_for``), so an alarm is never ownerless while it waits to be acknowledged (F1).
    """
    if kind in ALARM_LIFECYCLE:
        raise InvalidRequest(f"F1: {kind!r} is a step in an alarm's life, not an alarm kind")
    if cabinet_id is not None:
        tx.get(session, Cabinet, cabinet_id, "cabinet")
    slot = tx.get(session, Slot, slot_id, "slot") if slot_id is not None else None
    key = tx.get(session, Key, key_id, "key") if key_id is not None else None
    owner: Person | None
    if owner_id is not None:
        owner = tx.get(session, Person, owner_id, "person")
    else:
        owner = owner_for(session, kind=kind, owners=owners, at=at)
        owner_id = owner.id if owner is not None else None
    alarm = Alarm(
        kind=kind,
        message=message,
        rule=rule,
        cabinet_id=cabinet_id or (slot.cabinet_id if slot else None),
        slot_id=slot_id,
        key_id=key_id,
        loan_id=loan_id,
        owner_id=owner_id,
        raised_at=at or utcnow(),
    )
    session.add(alarm)
    session.flush()
    stored = tx.log(
        session,
        audit,
        NewEvent(
            type=f"alarm.{kind}",
            actors=actors,
            slot=slot.number if slot else None,
            key_number=key.key_number if key else None,
            rules=["F1", *([rule] if rule and rule != "F1" else [])],
            payload={"alarm": str(alarm.id), "kind": kind, "message": message,
                     "owner": str(owner_id) if owner_id else None,
                     "owner_name": owner.name if owner is not None else None,
                     **(payload or {})},
        ),
    )
    alarm.event_seq = stored.seq
    return alarm


def list_alarms(
    session: Session,
    *,
    state: AlarmState | None,
    kind: str | None,
    owner_id: uuid.UUID | None,
    key_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[Alarm], int]:
    query = select(Alarm).options(selectinload(Alarm.notes))
    if state is not None:
        query = query.where(Alarm.state == state)
    if kind is not None:
        query = query.where(Alarm.kind == kind)
    if owner_id is not None:
        query = query.where(Alarm.owner_id == owner_id)
    if key_id is not None:
        query = query.where(Alarm.key_id == key_id)
    return tx.page(
        session, query, order_by=[Alarm.raised_at.desc(), Alarm.id], limit=limit, offset=offset
    )


def get_alarm(session: Session, *, alarm_id: uuid.UUID) -> Alarm:
    return tx.get(session, Alarm, alarm_id, "alarm")


def _author(by: Principal) -> uuid.UUID:
    if by.person_id is None:
        raise InvalidRequest("F1: notes are signed by a person; link this account to one")
    return by.person_id


def _step(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    alarm: Alarm,
    text: str,
    new_state: AlarmState | None,
    kind: str,
    extra: dict[str, str | None] | None = None,
) -> Alarm:
    author = _author(by)
    now = utcnow()
    if new_state is not None:
        alarm.state = new_state
        if new_state == AlarmState.CLOSED:
            alarm.closed_at = now
    session.add(
        AlarmNote(alarm_id=alarm.id, author_id=author, at=now, text=text, new_state=new_state)
    )
    session.flush()
    session.refresh(alarm)
    tx.log(
        session,
        audit,
        NewEvent(
            type=f"alarm.{kind}",
            actors=by.actors(),
            rules=["F1", *([alarm.rule] if alarm.rule and alarm.rule != "F1" else [])],
            payload={
                "alarm": str(alarm.id),
                "state": alarm.state.value,
                "owner": str(alarm.owner_id) if alarm.owner_id else None,
                "note": text,
                **(extra or {}),
            },
        ),
    )
    return alarm


def acknowledge(
    session: Session, audit: AuditLog, *, by: Principal, alarm_id: uuid.UUID, note: str
) -> Alarm:
    """open → handled; the first to acknowledge owns the alarm unless it was assigned."""
    alarm = get_alarm(session, alarm_id=alarm_id)
    if alarm.state != AlarmState.OPEN:
        raise Conflict(f"F1: alarm is {alarm.state.value}; only an open alarm is acknowledged")
    if alarm.owner_id is None:
        alarm.owner_id = _author(by)
    return _step(
        session,
        audit,
        by=by,
        alarm=alarm,
        text=note,
        new_state=AlarmState.HANDLED,
        kind="acknowledged",
    )


AT_THE_CABINET = frozenset({
    "door_forced", "door_held_open", "slot_left_open", "key_removed_unauthorised",
    "key_inserted_unexpectedly", "wrong_slot", "key_overdue", "lock_fault", "bus_fault",
})
"""Alarms shown on the cabinet's own screen until a keeper acknowledges them there (never
``duress``: that one is silent, and nothing at the cabinet may show it)."""


def open_at_cabinet(session: Session, *, cabinet_id: uuid.UUID) -> list[Alarm]:
    """The cabinet's open (unacknowledged) alarms the idle screen shows, newest first: the
    banner has room for a few, and the one that just happened (a door forced now) must not
    hide behind older ones still waiting for a keeper."""
    return list(session.scalars(
        select(Alarm).where(
            Alarm.cabinet_id == cabinet_id, Alarm.state == AlarmState.OPEN,
            Alarm.kind.in_(AT_THE_CABINET),
        ).order_by(Alarm.raised_at.desc())
    ))


def acknowledge_at_cabinet(
    session: Session, audit: AuditLog, *, cabinet_id: uuid.UUID, keeper_id: uuid.UUID,
    keeper_name: str, cabinet: str,
) -> list[Alarm]:
    """F1 at the screen: a keeper who tapped their badge acknowledges the cabinet's open
    alarms (open → handled); each ``alarm.acknowledged`` event names them, and they own any
    alarm nobody owned yet. Follow-up and closing stay in the console and the API."""
    done = []
    for alarm in open_at_cabinet(session, cabinet_id=cabinet_id):
        if alarm.owner_id is None:
            alarm.owner_id = keeper_id
        alarm.state = AlarmState.HANDLED
        text = f"acknowledged at the cabinet {cabinet} by {keeper_name}"
        session.add(AlarmNote(alarm_id=alarm.id, author_id=keeper_id, at=utcnow(), text=text,
                              new_state=AlarmState.HANDLED))
        session.flush()
        tx.log(session, audit, NewEvent(
            type="alarm.acknowledged", actors=[str(keeper_id)],
            rules=["F1", *([alarm.rule] if alarm.rule and alarm.rule != "F1" else [])],
            payload={"alarm": str(alarm.id), "kind": alarm.kind, "state": alarm.state.value,
                     "owner": str(alarm.owner_id), "note": text, "at_cabinet": cabinet,
                     "by_name": keeper_name},
        ))
        done.append(alarm)
    return done


def assign(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    alarm_id: uuid.UUID,
    owner_id: uuid.UUID,
    note: str,
) -> Alarm:
    """Hand the alarm to another owner (the previous owner stays in the notes and the log)."""
    alarm = get_alarm(session, alarm_id=alarm_id)
    if alarm.state == AlarmState.CLOSED:
        raise Conflict("F1: alarm is closed")
    owner = tx.get(session, Person, owner_id, "person")
    if not owner.active:
        raise Conflict(f"F1: {owner.name} is not active")
    previous = alarm.owner_id
    alarm.owner_id = owner.id
    return _step(
        session,
        audit,
        by=by,
        alarm=alarm,
        text=note,
        new_state=None,
        kind="assigned",
        extra={"previous_owner": str(previous) if previous else None},
    )


def add_note(
    session: Session, audit: AuditLog, *, by: Principal, alarm_id: uuid.UUID, note: str
) -> Alarm:
    alarm = get_alarm(session, alarm_id=alarm_id)
    if alarm.state == AlarmState.CLOSED:
        raise Conflict("F1: alarm is closed; notes are final")
    return _step(session, audit, by=by, alarm=alarm, text=note, new_state=None, kind="noted")


def close(
    session: Session, audit: AuditLog, *, by: Principal, alarm_id: uuid.UUID, note: str
) -> Alarm:
    """handled → closed, with the resolution as the note."""
    alarm = get_alarm(session, alarm_id=alarm_id)
    if alarm.state != AlarmState.HANDLED:
        raise Conflict(
            f"F1: alarm is {alarm.state.value}; acknowledge it before closing"
            if alarm.state == AlarmState.OPEN
            else "F1: alarm is already closed"
        )
    return _step(
        session, audit, by=by, alarm=alarm, text=note, new_state=AlarmState.CLOSED, kind="closed"
    )
