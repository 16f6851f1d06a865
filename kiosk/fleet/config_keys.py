"""Keys and what hangs off them, as they travel down from the hub, and which cabinets need
them (issue 12, items 5 and 6).

People, cards and rights go to every cabinet (a person's card works at every site). Keys,
their approvals (K7), units, owners (A1: confidential) and owners' letters of authorization
(K6) go only where they are needed: to the cabinet whose slot is the key's home at the hub.
A key's home is a slot of a ``cabinets`` row whose code is an enrolled cabinet's id; a key
homed elsewhere (the hub's own demo cabinet, or nowhere) is not managed by the fleet and is
sent to no one.

A change of a key (moved to another cabinet's slot, or retired) is sent to every cabinet,
so the one it left learns that it may no longer hand it out; a cabinet that does not hold
the key ignores it. A first snapshot (cursor 0) holds only the keys homed at the cabinet. An approval spent at one cabinet
(the hub learnt it from the loan shipped up, ``hub_approval_uses``) travels as ``used``, so
no other cabinet can use it again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.store.models import (
    Approval,
    AuthorizationUnit,
    Cabinet,
    Key,
    KeyGroup,
    Owner,
    OwnerAuthorization,
    Person,
    Slot,
    Unit,
)
from kiosk.store.models_fleet import HubApprovalUse, HubCabinet

KEYED_ENTITIES = ("owner", "unit", "key", "owner_authorization", "approval")


def _iso(at: dt.datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _staff_no(session: Session, person_id: uuid.UUID | None) -> str | None:
    person = session.get(Person, person_id) if person_id else None
    return person.staff_no if person else None


def key_home(session: Session, key: Key) -> tuple[str, int] | None:
    """``(cabinet id, slot number)`` of a key homed at an enrolled cabinet, else None."""
    if key.home_slot_id is None:
        return None
    row = session.execute(
        select(Cabinet.code, Slot.number).join(Slot, Slot.cabinet_id == Cabinet.id)
        .join(HubCabinet, HubCabinet.cabinet_id == Cabinet.code)
        .where(Slot.id == key.home_slot_id)).first()
    return (str(row[0]), int(row[1])) if row else None


def serialise_keyed(session: Session, entity: str, row_id: uuid.UUID) -> dict[str, Any] | None:
    if entity == "owner":
        o = session.get(Owner, row_id)
        return None if o is None else {"id": str(o.id), "name": o.name, "phone": o.phone,
                                       "address": o.address, "employer": o.employer}
    if entity == "unit":
        u = session.get(Unit, row_id)
        return None if u is None else {
            "id": str(u.id), "room_number": u.room_number, "floor": u.floor,
            "kind": u.kind.value, "name": u.name,
            "owner": str(u.owner_id) if u.owner_id else None, "special": u.special,
            "vacant": u.vacant}
    if entity == "key":
        k = session.get(Key, row_id)
        if k is None:
            return None
        home = key_home(session, k)
        group = session.get(KeyGroup, k.group_id)
        unit = session.get(Unit, k.unit_id) if k.unit_id else None
        return {"id": str(k.id), "key_number": k.key_number, "label": k.label,
                "unit": unit.room_number if unit else None,
                "group": group.code if group else None, "category": k.category.value,
                "copies": k.copies, "fob_tag": k.fob_tag, "status": k.status.value,
                "cabinet": home[0] if home else None, "slot": home[1] if home else None}
    if entity == "owner_authorization":
        a = session.get(OwnerAuthorization, row_id)
        if a is None:
            return None
        rooms = session.scalars(select(Unit.room_number).join(
            AuthorizationUnit, AuthorizationUnit.unit_id == Unit.id)
            .where(AuthorizationUnit.authorization_id == a.id)
            .order_by(Unit.room_number)).all()
        return {"id": str(a.id), "owner": str(a.owner_id),
                "proxy": _staff_no(session, a.proxy_id), "letter_ref": a.letter_ref,
                "valid_from": _iso(a.valid_from), "valid_to": _iso(a.valid_to),
                "requires_phone_confirmation": a.requires_phone_confirmation,
                "revoked": a.revoked, "units": list(rooms)}
    if entity == "approval":
        ap = session.get(Approval, row_id)
        if ap is None:
            return None
        key = session.get(Key, ap.key_id)
        use = session.get(HubApprovalUse, ap.id)
        return {"id": str(ap.id), "key": key.key_number if key else None,
                "requested_for": _staff_no(session, ap.requested_for_id),
                "requested_by": _staff_no(session, ap.requested_by_id),
                "approver": _staff_no(session, ap.approver_id),
                "status": "used" if use is not None else ap.status.value,
                "used_at_cabinet": use.cabinet_id if use is not None else None,
                "reason": ap.reason, "valid_until": _iso(ap.valid_until),
                "created_at": _iso(ap.created_at), "decided_at": _iso(ap.decided_at)}
    raise ValueError(f"unknown entity {entity}")


# ------------------------------------------------------------------------- audience
def _keys_at(session: Session, cabinet_id: str) -> list[Key]:
    return list(session.scalars(
        select(Key).join(Slot, Key.home_slot_id == Slot.id)
        .join(Cabinet, Slot.cabinet_id == Cabinet.id).where(Cabinet.code == cabinet_id)
        .join(HubCabinet, HubCabinet.cabinet_id == Cabinet.code)))


def _units_at(session: Session, cabinet_id: str) -> set[uuid.UUID]:
    return {k.unit_id for k in _keys_at(session, cabinet_id) if k.unit_id is not None}


def needed_by(session: Session, entity: str, row_id: uuid.UUID, cabinet_id: str) -> bool:
    """Does ``cabinet_id`` need this row (a change of it, or it in a first snapshot)?"""
    if entity == "key":
        return True  # a key's change goes everywhere: the cabinet it left must learn of it
    if entity == "approval":
        if session.get(HubApprovalUse, row_id) is not None:
            return True  # spent: every cabinet that may hold a copy drops it
        ap = session.get(Approval, row_id)
        key = session.get(Key, ap.key_id) if ap else None
        home = key_home(session, key) if key else None
        return home is not None and home[0] == cabinet_id
    units = _units_at(session, cabinet_id)
    if entity == "unit":
        return row_id in units
    if entity == "owner_authorization":
        covered = set(session.scalars(select(AuthorizationUnit.unit_id).where(
            AuthorizationUnit.authorization_id == row_id)))
        return bool(covered & units)
    if entity == "owner":
        owners = {u.owner_id for u in session.scalars(select(Unit).where(Unit.id.in_(units)))}
        proxied = session.scalars(select(OwnerAuthorization.owner_id).join(
            AuthorizationUnit, AuthorizationUnit.authorization_id == OwnerAuthorization.id)
            .where(AuthorizationUnit.unit_id.in_(units)))
        return row_id in owners | set(proxied)
    return True


def snapshot_for(session: Session, cabinet_id: str) -> list[tuple[str, uuid.UUID]]:
    """The keyed rows a cabinet starting from cursor 0 needs."""
    keys = _keys_at(session, cabinet_id)
    return [*dependents(session, [k.id for k in keys]),
            *(("key", k.id) for k in keys)]


def dependents(session: Session, key_ids: list[uuid.UUID]) -> list[tuple[str, uuid.UUID]]:
    """What a cabinet needs along with these keys homed at it: their units and owners, the
    letters of authorization over those units and the approvals to draw the keys."""
    if not key_ids:
        return []
    units = {k.unit_id for k in session.scalars(select(Key).where(Key.id.in_(key_ids)))
             if k.unit_id is not None}
    out: list[tuple[str, uuid.UUID]] = [("unit", u) for u in units]
    owners = {u.owner_id for u in session.scalars(select(Unit).where(Unit.id.in_(units)))
              if u.owner_id is not None}
    letters = session.scalars(select(OwnerAuthorization).join(
        AuthorizationUnit, AuthorizationUnit.authorization_id == OwnerAuthorization.id)
        .where(AuthorizationUnit.unit_id.in_(units))).unique().all()
    owners |= {a.owner_id for a in letters}
    out += [("owner", o) for o in owners] + [("owner_authorization", a.id) for a in letters]
    out += [("approval", a) for a in session.scalars(
        select(Approval.id).where(Approval.key_id.in_(key_ids)))]
    return out
