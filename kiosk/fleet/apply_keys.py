"""The cabinet applies keys and what hangs off them, as the hub sends them (issue 12).

Owners and owners' letters of authorization (K6) are matched by id, units by room number,
keys by key number, approvals (K7) by id. Two facts stay the cabinet's own, whatever the hub
sends:

- **An approval's use.** Consumption is the cabinet's fact (the loan that used it); an
  approval used here stays used. One the hub reports ``used`` at another cabinet is removed
  here (it is not this cabinet's to use), unless a loan here refers to it.
- **A key that is out.** A key the hub moved to another cabinet (or retired) while it is out
  on a loan from here keeps its home here until it comes back: the loan is this cabinet's
  record and is closed here. The move is kept in ``fleet_state`` and applied after the
  return (``apply_deferred``), and the ``fleet.config_applied`` event names it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.fleet import state
from kiosk.store.models import (
    Approval,
    ApprovalStatus,
    AuthorizationUnit,
    Cabinet,
    Key,
    KeyCategory,
    KeyGroup,
    KeyStatus,
    Loan,
    Owner,
    OwnerAuthorization,
    Person,
    Slot,
    Unit,
    UnitKind,
)

DEFERRED_KEYS = "deferred_keys"


@dataclass
class Applied:
    """What one answer changed here, for the ``fleet.config_applied`` event."""

    cabinet_id: str
    cards: list[str] = field(default_factory=list)
    keys_here: list[str] = field(default_factory=list)
    keys_gone: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    settings: bool = False
    """The site's settings from the hub arrived (``kiosk.fleet.site_settings``)."""


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _person(session: Session, staff_no: str | None) -> Person | None:
    if not staff_no:
        return None
    return session.scalars(select(Person).where(Person.staff_no == staff_no)).first()


def _unit(session: Session, room: str | None) -> Unit | None:
    if not room:
        return None
    return session.scalars(select(Unit).where(Unit.room_number == room)).first()


def apply_owner(session: Session, row: dict[str, Any], _done: Applied) -> None:
    owner = session.get(Owner, uuid.UUID(row["id"]))
    if owner is None:
        owner = Owner(id=uuid.UUID(row["id"]))
        session.add(owner)
    owner.name, owner.phone = row["name"], row.get("phone")
    owner.address, owner.employer = row.get("address"), row.get("employer")
    session.flush()


def apply_unit(session: Session, row: dict[str, Any], _done: Applied) -> None:
    unit = _unit(session, row["room_number"])
    if unit is None:
        unit = Unit(id=uuid.UUID(row["id"]), room_number=row["room_number"])
        session.add(unit)
    unit.floor, unit.kind, unit.name = int(row["floor"]), UnitKind(row["kind"]), row.get("name")
    owner_id = uuid.UUID(row["owner"]) if row.get("owner") else None
    unit.owner_id = owner_id if owner_id and session.get(Owner, owner_id) else None
    unit.special, unit.vacant = bool(row["special"]), bool(row["vacant"])
    session.flush()


def _open_loan(session: Session, key: Key) -> bool:
    return session.scalar(select(Loan.id).where(Loan.key_id == key.id,
                                                Loan.returned_at.is_(None))) is not None


def _my_slot(session: Session, cabinet_id: str, number: int) -> Slot | None:
    return session.scalars(select(Slot).join(Cabinet, Slot.cabinet_id == Cabinet.id).where(
        Cabinet.code == cabinet_id, Slot.number == number)).first()


def apply_key(session: Session, row: dict[str, Any], done: Applied) -> None:
    key = session.scalars(select(Key).where(Key.key_number == row["key_number"])).first()
    if row.get("cabinet") != done.cabinet_id:
        # Homed elsewhere now (moved at the hub): not ours to hand out any more.
        if key is None or (key.home_slot_id is None and key.status == KeyStatus.RETIRED):
            return
        if _open_loan(session, key):
            pending = set(state.read(session, DEFERRED_KEYS) or [])
            state.write(session, DEFERRED_KEYS, sorted(pending | {key.key_number}))
            done.deferred.append(key.key_number)
            return
        key.home_slot_id, key.status = None, KeyStatus.RETIRED
        session.flush()
        done.keys_gone.append(key.key_number)
        return
    waiting = list(state.read(session, DEFERRED_KEYS) or [])
    if row["key_number"] in waiting:  # moved back here before it came back: nothing to do
        state.write(session, DEFERRED_KEYS, [k for k in waiting if k != row["key_number"]])
    group = session.scalars(select(KeyGroup).where(KeyGroup.code == row["group"])).first()
    slot = _my_slot(session, done.cabinet_id, int(row["slot"]))
    if group is None or slot is None:
        done.skipped.append(f"key {row['key_number']}: "
                            + ("no key group " + str(row["group"]) if group is None
                               else f"no slot {row['slot']} in this cabinet"))
        return
    occupant = session.scalars(select(Key).where(Key.home_slot_id == slot.id)).first()
    if occupant is not None and occupant is not key:
        occupant.home_slot_id = None  # its own row (moved, or retired) follows
        session.flush()
    if key is None:
        key = Key(id=uuid.UUID(row["id"]), key_number=row["key_number"])
        session.add(key)
    unit = _unit(session, row.get("unit"))
    key.label, key.unit_id, key.group_id = row["label"], unit.id if unit else None, group.id
    key.category, key.copies = KeyCategory(row["category"]), int(row["copies"])
    key.fob_tag, key.status = row.get("fob_tag"), KeyStatus(row["status"])
    key.home_slot_id = slot.id
    session.flush()
    done.keys_here.append(key.key_number)


def apply_deferred(session: Session, done: Applied) -> None:
    """Moves held back while their key was out: applied once it is back."""
    pending = list(state.read(session, DEFERRED_KEYS) or [])
    if not pending:
        return
    still_out = []
    for key_number in pending:
        key = session.scalars(select(Key).where(Key.key_number == key_number)).first()
        if key is not None and _open_loan(session, key):
            still_out.append(key_number)
        elif key is not None:
            key.home_slot_id, key.status = None, KeyStatus.RETIRED
            session.flush()
            done.keys_gone.append(key_number)
    state.write(session, DEFERRED_KEYS, still_out)


def apply_owner_authorization(session: Session, row: dict[str, Any], done: Applied) -> None:
    owner = session.get(Owner, uuid.UUID(row["owner"]))
    proxy = _person(session, row.get("proxy"))
    if owner is None or proxy is None:
        done.skipped.append(f"authorization {row['letter_ref']}: owner or proxy unknown here")
        return
    letter = session.get(OwnerAuthorization, uuid.UUID(row["id"]))
    if letter is None:
        letter = OwnerAuthorization(id=uuid.UUID(row["id"]))
        session.add(letter)
    letter.owner_id, letter.proxy_id, letter.letter_ref = owner.id, proxy.id, row["letter_ref"]
    letter.valid_from = dt.datetime.fromisoformat(row["valid_from"])
    letter.valid_to = dt.datetime.fromisoformat(row["valid_to"])
    letter.requires_phone_confirmation = bool(row["requires_phone_confirmation"])
    letter.revoked = bool(row["revoked"])
    rooms = [u for u in (_unit(session, r) for r in row.get("units", [])) if u is not None]
    letter.units = [AuthorizationUnit(unit_id=u.id) for u in rooms]
    session.flush()


def _used_here(session: Session, approval_id: uuid.UUID) -> bool:
    return session.scalar(select(Loan.id).where(Loan.approval_id == approval_id)) is not None


def apply_approval(session: Session, row: dict[str, Any], done: Applied) -> None:
    approval_id = uuid.UUID(row["id"])
    held = session.get(Approval, approval_id)
    if held is not None and (held.status == ApprovalStatus.USED
                             or _used_here(session, approval_id)):
        return  # used here: the cabinet's fact, never undone by the hub
    if row["status"] == ApprovalStatus.USED.value:
        # Spent at another cabinet: not this cabinet's to use.
        if held is not None:
            session.delete(held)
            session.flush()
        return
    key = session.scalars(select(Key).where(Key.key_number == row["key"])).first()
    person = _person(session, row["requested_for"])
    if key is None or person is None:
        done.skipped.append(f"approval {row['id']}: key or person unknown here")
        return
    if held is None:
        held = Approval(id=approval_id)
        session.add(held)
    requester, approver = _person(session, row.get("requested_by")), _person(
        session, row.get("approver"))
    held.key_id, held.requested_for_id = key.id, person.id
    held.requested_by_id = requester.id if requester else None
    held.approver_id = approver.id if approver else None
    held.status, held.reason = ApprovalStatus(row["status"]), row["reason"]
    valid_until = _when(row["valid_until"])
    assert valid_until is not None
    held.valid_until, held.decided_at = valid_until, _when(row.get("decided_at"))
    held.created_at = _when(row.get("created_at")) or held.created_at
    session.flush()


def delete_keyed(session: Session, entity: str, row_id: uuid.UUID) -> None:
    """A hub deletion: an unused approval goes; a letter of authorization is revoked (loans
    may name it); owners, units and keys stay (the hub retires keys, never deletes them)."""
    if entity == "approval":
        held = session.get(Approval, row_id)
        if held is not None and held.status != ApprovalStatus.USED and not _used_here(
                session, row_id):
            session.delete(held)
    elif entity == "owner_authorization":
        letter = session.get(OwnerAuthorization, row_id)
        if letter is not None:
            letter.revoked = True
    session.flush()


APPLY_KEYED = {"owner": apply_owner, "unit": apply_unit, "key": apply_key,
               "owner_authorization": apply_owner_authorization, "approval": apply_approval}
