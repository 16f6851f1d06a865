"""Cabinets and their slots.

Slots are numbered per cabinet from 1; a slot that is some key's home cannot be disabled,
so the cabinet never promises a key a place it will refuse.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models import Cabinet, Key, Slot
from kiosk.store.types import utcnow


def list_cabinets(session: Session, *, limit: int, offset: int) -> tuple[list[Cabinet], int]:
    return tx.page(session, select(Cabinet), order_by=[Cabinet.code], limit=limit, offset=offset)


def get_cabinet(session: Session, *, cabinet_id: uuid.UUID) -> Cabinet:
    return tx.get(session, Cabinet, cabinet_id, "cabinet")


def create_cabinet(
    session: Session, audit: AuditLog, *, by: Principal, values: dict[str, Any]
) -> Cabinet:
    if session.scalar(select(Cabinet.id).where(Cabinet.code == values["code"])):
        raise Conflict(f"cabinet code {values['code']!r} is taken")
    cabinet = Cabinet(**values)
    session.add(cabinet)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="cabinet.created",
            actors=by.actors(),
            payload={"cabinet": str(cabinet.id), "code": cabinet.code},
        ),
    )
    return cabinet


def update_cabinet(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    cabinet_id: uuid.UUID,
    values: dict[str, Any],
) -> Cabinet:
    cabinet = tx.get(session, Cabinet, cabinet_id, "cabinet")
    changed = tx.changes(cabinet, values)
    if changed:
        tx.log(
            session,
            audit,
            NewEvent(
                type="cabinet.updated",
                actors=by.actors(),
                payload={"cabinet": str(cabinet.id), **changed},
            ),
        )
    return cabinet


def slot_keys(session: Session, slot_ids: list[uuid.UUID]) -> dict[uuid.UUID, Key]:
    """The key whose home each slot is (for listings)."""
    if not slot_ids:
        return {}
    keys = session.scalars(select(Key).where(Key.home_slot_id.in_(slot_ids))).all()
    return {k.home_slot_id: k for k in keys if k.home_slot_id is not None}


def list_slots(
    session: Session,
    *,
    cabinet_id: uuid.UUID,
    enabled: bool | None,
    free: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[Slot], int]:
    tx.get(session, Cabinet, cabinet_id, "cabinet")
    query = select(Slot).where(Slot.cabinet_id == cabinet_id)
    if enabled is not None:
        query = query.where(Slot.enabled == enabled)
    if free is not None:
        homes = select(Key.home_slot_id).where(Key.home_slot_id.is_not(None))
        query = query.where(Slot.id.not_in(homes) if free else Slot.id.in_(homes))
    return tx.page(session, query, order_by=[Slot.number], limit=limit, offset=offset)


def get_slot(session: Session, *, slot_id: uuid.UUID) -> Slot:
    return tx.get(session, Slot, slot_id, "slot")


def add_slots(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    cabinet_id: uuid.UUID,
    first: int,
    count: int,
) -> list[Slot]:
    """Add slots ``first .. first+count-1`` (a new lock board); existing numbers conflict."""
    cabinet = tx.get(session, Cabinet, cabinet_id, "cabinet")
    numbers = list(range(first, first + count))
    taken = session.scalars(
        select(Slot.number).where(Slot.cabinet_id == cabinet_id, Slot.number.in_(numbers))
    ).all()
    if taken:
        raise Conflict(f"cabinet {cabinet.code} already has slot(s) {sorted(taken)}")
    slots = [Slot(cabinet_id=cabinet.id, number=n) for n in numbers]
    first_board = not session.scalar(
        select(func.count()).select_from(Slot).where(Slot.cabinet_id == cabinet_id))
    if first_board and cabinet.registered_at is None:
        cabinet.registered_at = utcnow()  # K9: no daily job due before this is caught up
    session.add_all(slots)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="cabinet.slots_added",
            actors=by.actors(),
            payload={"cabinet": str(cabinet.id), "first": first, "count": count},
        ),
    )
    return slots


def update_slot(
    session: Session, audit: AuditLog, *, by: Principal, slot_id: uuid.UUID, enabled: bool
) -> Slot:
    slot = tx.get(session, Slot, slot_id, "slot")
    if slot.enabled == enabled:
        return slot
    if not enabled:
        holder = session.scalars(select(Key).where(Key.home_slot_id == slot.id)).one_or_none()
        if holder is not None:
            raise Conflict(
                f"slot {slot.number} is the home of key {holder.key_number}; move the key first"
            )
    slot.enabled = enabled
    tx.log(
        session,
        audit,
        NewEvent(
            type="slot.enabled" if enabled else "slot.disabled",
            actors=by.actors(),
            slot=slot.number,
            payload={"slot": str(slot.id), "cabinet": str(slot.cabinet_id)},
        ),
    )
    return slot


def count_slots(session: Session, cabinet_id: uuid.UUID) -> int:
    return int(
        session.scalar(select(func.count()).select_from(Slot).where(Slot.cabinet_id == cabinet_id))
        or 0
    )
