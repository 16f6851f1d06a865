"""Owners and tenants, and the units (rooms) they hold.

Owner files are confidential (A1): phone, address and employer are returned only by
``read_personal_data``, which needs its own permission and writes an audit event naming
who read which owner's data and why. Changes to those fields are logged without values,
so the permanent log never becomes a second copy of them.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models import Owner, Unit, UnitKind

PERSONAL_FIELDS = frozenset({"phone", "address", "employer"})


# ----------------------------------------------------------------------------- owners
def list_owners(
    session: Session, *, q: str | None, limit: int, offset: int
) -> tuple[list[Owner], int]:
    query = select(Owner)
    if q:
        query = query.where(Owner.name.like(tx.like(q), escape="\\"))
    return tx.page(session, query, order_by=[Owner.name, Owner.id], limit=limit, offset=offset)


def get_owner(session: Session, *, owner_id: uuid.UUID) -> Owner:
    return tx.get(session, Owner, owner_id, "owner")


def create_owner(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    name: str,
    phone: str | None,
    address: str | None,
    employer: str | None,
) -> Owner:
    owner = Owner(name=name, phone=phone, address=address, employer=employer)
    session.add(owner)
    session.flush()
    supplied = {"phone": phone, "address": address, "employer": employer}
    given = sorted(name for name, value in supplied.items() if value is not None)
    tx.log(
        session,
        audit,
        NewEvent(
            type="owner.created",
            actors=by.actors(),
            rules=["A1"] if given else [],
            payload={"owner": str(owner.id), "name": name, "personal_fields": given},
        ),
    )
    return owner


def update_owner(
    session: Session, audit: AuditLog, *, by: Principal, owner_id: uuid.UUID, values: dict[str, Any]
) -> Owner:
    owner = tx.get(session, Owner, owner_id, "owner")
    changed = tx.changes(owner, values, private=PERSONAL_FIELDS)
    if changed:
        tx.log(
            session,
            audit,
            NewEvent(
                type="owner.updated",
                actors=by.actors(),
                rules=["A1"] if PERSONAL_FIELDS & changed.keys() else [],
                payload={"owner": str(owner.id), **changed},
            ),
        )
    return owner


def read_personal_data(
    session: Session, audit: AuditLog, *, by: Principal, owner_id: uuid.UUID, purpose: str | None
) -> Owner:
    """Return the owner with their confidential fields, and log that they were read (A1)."""
    owner = tx.get(session, Owner, owner_id, "owner")
    tx.log(
        session,
        audit,
        NewEvent(
            type="owner.personal_data_read",
            actors=by.actors(),
            rules=["A1"],
            payload={
                "owner": str(owner.id),
                "fields": sorted(PERSONAL_FIELDS),
                "purpose": purpose,
            },
        ),
    )
    return owner


# ------------------------------------------------------------------------------ units
def list_units(
    session: Session,
    *,
    floor: int | None,
    kind: UnitKind | None,
    owner_id: uuid.UUID | None,
    special: bool | None,
    vacant: bool | None,
    q: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Unit], int]:
    query = select(Unit)
    for column, value in (
        (Unit.floor, floor),
        (Unit.kind, kind),
        (Unit.owner_id, owner_id),
        (Unit.special, special),
        (Unit.vacant, vacant),
    ):
        if value is not None:
            query = query.where(column == value)
    if q:
        pattern = tx.like(q)
        query = query.where(
            or_(Unit.room_number.like(pattern, escape="\\"), Unit.name.like(pattern, escape="\\"))
        )
    return tx.page(session, query, order_by=[Unit.room_number], limit=limit, offset=offset)


def get_unit(session: Session, *, unit_id: uuid.UUID) -> Unit:
    return tx.get(session, Unit, unit_id, "unit")


def create_unit(
    session: Session, audit: AuditLog, *, by: Principal, values: dict[str, Any]
) -> Unit:
    if session.scalar(select(Unit.id).where(Unit.room_number == values["room_number"])):
        raise Conflict(f"room {values['room_number']!r} is already on record")
    if values.get("owner_id") is not None:
        tx.get(session, Owner, values["owner_id"], "owner")
    unit = Unit(**values)
    session.add(unit)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="unit.created",
            actors=by.actors(),
            payload={
                "unit": str(unit.id),
                "room_number": unit.room_number,
                "special": unit.special,
                "owner": str(unit.owner_id) if unit.owner_id else None,
            },
        ),
    )
    return unit


def update_unit(
    session: Session, audit: AuditLog, *, by: Principal, unit_id: uuid.UUID, values: dict[str, Any]
) -> Unit:
    unit = tx.get(session, Unit, unit_id, "unit")
    room = values.get("room_number")
    if (
        room
        and room != unit.room_number
        and session.scalar(select(Unit.id).where(Unit.room_number == room))
    ):
        raise Conflict(f"room {room!r} is already on record")
    if values.get("owner_id") is not None:
        tx.get(session, Owner, values["owner_id"], "owner")
    changed = tx.changes(unit, values)
    if changed:
        tx.log(
            session,
            audit,
            NewEvent(
                type="unit.updated",
                actors=by.actors(),
                rules=["K7"] if "special" in changed else [],
                payload={"unit": str(unit.id), **changed},
            ),
        )
    return unit
