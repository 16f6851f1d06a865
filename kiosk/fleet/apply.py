"""The cabinet applies configuration authored at the hub (a service function).

Rows are matched by natural key (department code, staff number, card UID, key group code)
and by id for access rights; the hub is their one author, so the hub's state wins. The
whole batch and the new cursor commit in one transaction with one
``fleet.config_applied`` event in the cabinet's log naming the cards whose status changed,
so an auditor sees when a revocation reached this cabinet.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.fleet import site_settings, state
from kiosk.fleet.apply_keys import (
    APPLY_KEYED,
    DEFERRED_KEYS,
    Applied,
    apply_deferred,
    delete_keyed,
)
from kiosk.store.db import write_session
from kiosk.store.models import (
    AccessRight,
    Card,
    CardKind,
    CardStatus,
    Department,
    DutyShift,
    KeyGroup,
    Person,
    PersonRole,
    Role,
)


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _clock(value: str | None) -> dt.time | None:
    return dt.time.fromisoformat(value) if value else None


def config_version(session: Session) -> int:
    return int(state.read(session, state.CONFIG_VERSION) or 0)


def apply_changes(audit: AuditLog, *, version: int, changes: list[dict[str, Any]]) -> list[str]:
    """Apply one answer of the hub and move the cursor to ``version``; returns the UIDs of
    cards whose status changed. Idempotent: applying the same answer twice changes nothing."""
    with write_session(audit.engine) as session:
        if version <= config_version(session) and changes:
            return []  # an older answer arriving late (a retried long-poll): already applied
        done = Applied(cabinet_id=audit.cabinet_id)
        with session.no_autoflush:  # each row is flushed whole, once its fields are set
            for change in changes:
                row, entity = change.get("row"), change["entity"]
                if row is None:
                    _delete(session, entity, uuid.UUID(change["id"]))
                elif entity == site_settings.ENTITY:
                    site_settings.apply(session, row, done.skipped)
                    done.settings = True
                elif entity in APPLY_KEYED:
                    APPLY_KEYED[entity](session, row, done)
                else:
                    changed = _APPLY[entity](session, row)
                    if changed:
                        done.cards.append(changed)
        apply_deferred(session, done)
        state.write(session, state.CONFIG_VERSION, version)
        if changes or done.keys_gone:
            payload: dict[str, Any] = {"version": version, "changes": len(changes),
                                       "cards": done.cards}
            for name in ("keys_here", "keys_gone", "deferred", "skipped"):
                if getattr(done, name):
                    payload[name] = getattr(done, name)
            if done.settings:
                payload["site_settings"] = sorted(site_settings.held_in(session) or {})
            audit.append_in(session, NewEvent(type="fleet.config_applied", payload=payload))
    return done.cards


def apply_pending_moves(audit: AuditLog) -> list[str]:
    """Moves held back while their key was out, applied now that it may be back (the puller
    calls this after every answer, changes or not). Returns the keys that left."""
    with write_session(audit.engine) as session:
        if not state.read(session, DEFERRED_KEYS):
            return []
        done = Applied(cabinet_id=audit.cabinet_id)
        apply_deferred(session, done)
        if done.keys_gone:
            audit.append_in(session, NewEvent(
                type="fleet.config_applied",
                payload={"version": config_version(session), "changes": 0, "cards": [],
                         "keys_gone": done.keys_gone}))
    return done.keys_gone


def _department(session: Session, row: dict[str, Any]) -> str | None:
    dept = session.scalars(select(Department).where(Department.code == row["code"])).first()
    if dept is None:
        dept = Department(id=uuid.UUID(row["id"]), code=row["code"])
        session.add(dept)
    dept.name, dept.name_en = row["name"], row.get("name_en")
    session.flush()
    return None


def _key_group(session: Session, row: dict[str, Any]) -> str | None:
    group = session.scalars(select(KeyGroup).where(KeyGroup.code == row["code"])).first()
    if group is None:
        group = KeyGroup(id=uuid.UUID(row["id"]), code=row["code"])
        session.add(group)
    group.name, group.requires_cosign = row["name"], bool(row["requires_cosign"])
    group.loan_minutes = row.get("loan_minutes")
    session.flush()
    return None


def _person_by_staff_no(session: Session, staff_no: str | None) -> Person | None:
    if staff_no is None:
        return None
    return session.scalars(select(Person).where(Person.staff_no == staff_no)).first()


def _person(session: Session, row: dict[str, Any]) -> str | None:
    person = _person_by_staff_no(session, row["staff_no"])
    if person is None:
        person = Person(id=uuid.UUID(row["id"]), staff_no=row["staff_no"])
        session.add(person)
    person.name, person.phone, person.active = row["name"], row.get("phone"), bool(row["active"])
    dept = (session.scalars(select(Department).where(Department.code == row["department"]))
            .first() if row.get("department") else None)
    person.department_id = dept.id if dept else None
    wanted = {Role(r) for r in row.get("roles", [])}
    person.roles = [r for r in person.roles if r.role in wanted] + [
        PersonRole(role=r) for r in wanted - {r.role for r in person.roles}]
    session.flush()
    return None


def _card(session: Session, row: dict[str, Any]) -> str | None:
    person = _person_by_staff_no(session, row["person"])
    if person is None:
        return None  # its holder arrives with the same answer or a later one
    card = session.scalars(select(Card).where(Card.uid == row["uid"])).first()
    before = card.status if card else None
    if card is None:
        card = Card(id=uuid.UUID(row["id"]), uid=row["uid"], person_id=person.id)
        session.add(card)
    card.person_id, card.kind = person.id, CardKind(row["kind"])
    card.status = CardStatus(row["status"])
    card.valid_from, card.valid_to = _when(row.get("valid_from")), _when(row.get("valid_to"))
    session.flush()
    return card.uid if before != card.status else None


def _access_right(session: Session, row: dict[str, Any]) -> str | None:
    group = session.scalars(select(KeyGroup).where(KeyGroup.code == row["key_group"])).first()
    person = _person_by_staff_no(session, row.get("person"))
    if group is None or (row.get("person") and person is None):
        return None
    right = session.get(AccessRight, uuid.UUID(row["id"]))
    if right is None:
        right = AccessRight(id=uuid.UUID(row["id"]), key_group_id=group.id)
        session.add(right)
    right.person_id = person.id if person else None
    right.role = Role(row["role"]) if row.get("role") else None
    right.key_group_id, right.weekdays = group.id, row["weekdays"]
    right.start_time, right.end_time = _clock(row.get("start_time")), _clock(row.get("end_time"))
    right.valid_from, right.valid_to = _when(row.get("valid_from")), _when(row.get("valid_to"))
    session.flush()
    return None


def _duty_shift(session: Session, row: dict[str, Any]) -> str | None:
    """K8: who is the on-duty manager when; matched by id (the hub made it)."""
    person = _person_by_staff_no(session, row["person"])
    if person is None:
        return None
    shift = session.get(DutyShift, uuid.UUID(row["id"]))
    if shift is None:
        shift = DutyShift(id=uuid.UUID(row["id"]), person_id=person.id)
        session.add(shift)
    shift.person_id = person.id
    shift.starts_at = dt.datetime.fromisoformat(row["starts_at"])
    shift.ends_at = dt.datetime.fromisoformat(row["ends_at"])
    session.flush()
    return None


def _delete(session: Session, entity: str, row_id: uuid.UUID) -> None:
    """Access rights and duty shifts are deleted at the hub; people and cards are
    deactivated or revoked (they stay on record so a tap is recognised and refused by name)."""
    if entity in APPLY_KEYED:
        delete_keyed(session, entity, row_id)
        return
    model = {"access_right": AccessRight, "duty_shift": DutyShift}.get(entity)
    if model is not None:
        row = session.get(model, row_id)
        if row is not None:
            session.delete(row)
            session.flush()


_APPLY = {"department": _department, "key_group": _key_group, "person": _person,
          "card": _card, "access_right": _access_right, "duty_shift": _duty_shift}
