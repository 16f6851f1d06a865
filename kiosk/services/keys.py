"""Keys, key groups, intake records (K1), slot moves and retirement.

K1: every key received is recorded with who delivered it, when, which room, how many, the
deliverer's confirmation and the receiving custodian, and the key is then given a slot. The
intake record and its audit event commit together, and the record keeps the event's
sequence number so either can be found from the other.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from drivers.errors import IdentityError
from drivers.identity.onewire import FobId
from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict, InvalidRequest
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models import (
    IntakeRecord,
    Key,
    KeyCategory,
    KeyGroup,
    KeyStatus,
    Loan,
    Person,
    Role,
    Slot,
    Unit,
)
from kiosk.store.types import utcnow


# ------------------------------------------------------------------------- key groups
def list_groups(session: Session, *, limit: int, offset: int) -> tuple[list[KeyGroup], int]:
    return tx.page(session, select(KeyGroup), order_by=[KeyGroup.code], limit=limit, offset=offset)


def get_group(session: Session, *, group_id: uuid.UUID) -> KeyGroup:
    return tx.get(session, KeyGroup, group_id, "key group")


def create_group(
    session: Session, audit: AuditLog, *, by: Principal, values: dict[str, Any]
) -> KeyGroup:
    if session.scalar(select(KeyGroup.id).where(KeyGroup.code == values["code"])):
        raise Conflict(f"key group code {values['code']!r} is taken")
    group = KeyGroup(**values)
    session.add(group)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="key_group.created",
            actors=by.actors(),
            payload={"group": str(group.id), **values},
        ),
    )
    return group


def update_group(
    session: Session, audit: AuditLog, *, by: Principal, group_id: uuid.UUID, values: dict[str, Any]
) -> KeyGroup:
    group = tx.get(session, KeyGroup, group_id, "key group")
    code = values.get("code")
    if (
        code
        and code != group.code
        and session.scalar(select(KeyGroup.id).where(KeyGroup.code == code))
    ):
        raise Conflict(f"key group code {code!r} is taken")
    changed = tx.changes(group, values)
    if changed:
        tx.log(
            session,
            audit,
            NewEvent(
                type="key_group.updated",
                actors=by.actors(),
                payload={"group": str(group.id), **changed},
            ),
        )
    return group


# ------------------------------------------------------------------------------- keys
def list_keys(
    session: Session,
    *,
    status: KeyStatus | None,
    group_id: uuid.UUID | None,
    unit_id: uuid.UUID | None,
    category: KeyCategory | None,
    special: bool | None,
    q: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Key], int]:
    # a page shows each key's slot number and whether its unit is special: loaded per page
    query = select(Key).options(selectinload(Key.home_slot), selectinload(Key.unit))
    for column, value in (
        (Key.status, status),
        (Key.group_id, group_id),
        (Key.unit_id, unit_id),
        (Key.category, category),
    ):
        if value is not None:
            query = query.where(column == value)
    if special is not None:
        special_units = select(Unit.id).where(Unit.special.is_(True))
        query = query.where(
            Key.unit_id.in_(special_units)
            if special
            else or_(Key.unit_id.is_(None), Key.unit_id.not_in(special_units))
        )
    if q:
        pattern = tx.like(q)
        query = query.where(
            or_(Key.key_number.like(pattern, escape="\\"), Key.label.like(pattern, escape="\\"))
        )
    return tx.page(session, query, order_by=[Key.key_number], limit=limit, offset=offset)


def get_key(session: Session, *, key_id: uuid.UUID) -> Key:
    return tx.get(session, Key, key_id, "key")


def is_out(session: Session, key_id: uuid.UUID) -> bool:
    return (
        session.scalar(
            select(Loan.id).where(Loan.key_id == key_id, Loan.returned_at.is_(None)).limit(1)
        )
        is not None
    )


def _free_slot(session: Session, slot_id: uuid.UUID, *, for_key: uuid.UUID | None) -> Slot:
    slot = tx.get(session, Slot, slot_id, "slot")
    if not slot.enabled:
        raise Conflict(f"slot {slot.number} is disabled")
    holder = session.scalars(select(Key).where(Key.home_slot_id == slot_id)).one_or_none()
    if holder is not None and holder.id != for_key:
        raise Conflict(f"slot {slot.number} is the home of key {holder.key_number}")
    return slot


def _check_refs(session: Session, values: dict[str, Any]) -> None:
    if values.get("group_id") is not None:
        tx.get(session, KeyGroup, values["group_id"], "key group")
    if values.get("unit_id") is not None:
        tx.get(session, Unit, values["unit_id"], "unit")
    fob = values.get("fob_tag")
    if fob is not None:
        other = session.scalar(select(Key.id).where(Key.fob_tag == fob))
        if other is not None and other != values.get("id"):
            raise Conflict(f"fob tag {fob} is on another key")


def create_key(session: Session, audit: AuditLog, *, by: Principal, values: dict[str, Any]) -> Key:
    if session.scalar(select(Key.id).where(Key.key_number == values["key_number"])):
        raise Conflict(f"key number {values['key_number']!r} is taken")
    _check_refs(session, values)
    slot_id = values.pop("home_slot_id", None)
    key = Key(**values)
    if slot_id is not None:
        key.home_slot = _free_slot(session, slot_id, for_key=None)
    session.add(key)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="key.created",
            actors=by.actors(),
            key_number=key.key_number,
            slot=key.home_slot.number if key.home_slot else None,
            payload={"key": str(key.id), "label": key.label, "group": str(key.group_id)},
        ),
    )
    return key


def update_key(
    session: Session, audit: AuditLog, *, by: Principal, key_id: uuid.UUID, values: dict[str, Any]
) -> Key:
    key = tx.get(session, Key, key_id, "key")
    if key.status == KeyStatus.RETIRED:
        raise Conflict(f"key {key.key_number} is retired")
    _check_refs(session, {**values, "id": key.id})
    changed = tx.changes(key, values)
    if changed:
        tx.log(
            session,
            audit,
            NewEvent(
                type="key.updated",
                actors=by.actors(),
                key_number=key.key_number,
                payload={"key": str(key.id), **changed},
            ),
        )
    return key


def move_key(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    key_id: uuid.UUID,
    slot_id: uuid.UUID | None,
) -> Key:
    """Give a key a new home slot (or none). A key out on loan keeps the move for its return."""
    key = tx.get(session, Key, key_id, "key")
    if key.status == KeyStatus.RETIRED:
        raise Conflict(f"key {key.key_number} is retired")
    old = key.home_slot.number if key.home_slot else None
    if slot_id is None:
        key.home_slot = None
    else:
        key.home_slot = _free_slot(session, slot_id, for_key=key.id)
    new = key.home_slot.number if key.home_slot else None
    if old == new and (slot_id is None or key.home_slot_id == slot_id):
        return key
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="key.moved",
            actors=by.actors(),
            key_number=key.key_number,
            slot=new,
            payload={"key": str(key.id), "from_slot": old, "to_slot": new},
        ),
    )
    return key


def retire_key(
    session: Session, audit: AuditLog, *, by: Principal, key_id: uuid.UUID, reason: str
) -> Key:
    """Take a key out of service; its slot is freed. A key that is out cannot be retired."""
    key = tx.get(session, Key, key_id, "key")
    if key.status == KeyStatus.RETIRED:
        raise Conflict(f"key {key.key_number} is already retired")
    if is_out(session, key.id):
        raise Conflict(f"key {key.key_number} is out on loan; it must be returned first")
    old = key.home_slot.number if key.home_slot else None
    key.status = KeyStatus.RETIRED
    key.home_slot = None
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="key.retired",
            actors=by.actors(),
            key_number=key.key_number,
            slot=old,
            payload={"key": str(key.id), "reason": reason},
        ),
    )
    return key


# -------------------------------------------------------------- the key's fob (issue 13)
def fob_rom_text(text: str) -> str:
    """A typed 1-Wire ROM ID in its stored form (16 upper-case hex digits), or a clear error.

    64 bits with the 1-Wire CRC-8 (Dallas/Maxim) in the last byte, as the chip sends it:
    family code first, CRC last (what the receptor reads and the fob's label prints).
    """
    try:
        return FobId.parse(text).hex
    except IdentityError as exc:
        raise InvalidRequest(f"not a fob ROM ID: {exc}") from None


def fob_in_home_slot(session: Session, *, key_id: uuid.UUID, cabinet_id: uuid.UUID | None,
                     fobs: dict[int, str | None] | None) -> tuple[str, int]:
    """The ROM the running cabinet's receptor read in the key's home slot at its last scan,
    and that slot's number.

    ``cabinet_id`` / ``fobs``: the cabinet attached to this process and its last scan
    (``None``: no cabinet here, or one that senses presence only). Each refusal says why.
    """
    key = tx.get(session, Key, key_id, "key")
    slot = key.home_slot
    if slot is None:
        raise InvalidRequest(f"key {key.key_number} has no home slot to read a fob from")
    if cabinet_id is None or slot.cabinet_id != cabinet_id:
        raise InvalidRequest(f"slot {slot.number} is not in a cabinet running here")
    if fobs is None:
        raise InvalidRequest("this cabinet senses presence only: it cannot read a fob")
    rom = fobs.get(slot.number)
    if not rom:
        raise InvalidRequest(f"no fob read in slot {slot.number} at the last scan: hang the "
                             f"key {key.key_number} there and try again")
    return rom, slot.number


def pair_fob(
    session: Session, audit: AuditLog, *, by: Principal, key_id: uuid.UUID, rom: str,
    source: str, slot: int | None = None,
) -> Key:
    """Pair the key with the fob chip ``rom`` (typed, or read in its slot: ``source``).

    A ROM paired with another key is refused (``Conflict``), so a return can never be
    credited to the wrong key (K4); re-pairing the same ROM changes nothing.
    """
    key = tx.get(session, Key, key_id, "key")
    if key.status == KeyStatus.RETIRED:
        raise Conflict(f"key {key.key_number} is retired")
    rom = fob_rom_text(rom)
    other = session.scalar(select(Key.key_number).where(Key.fob_rom == rom, Key.id != key.id))
    if other is not None:
        raise Conflict(f"fob ROM {rom} is already paired with key {other}; clear it there first")
    if key.fob_rom == rom:
        return key
    previous, key.fob_rom = key.fob_rom, rom
    session.flush()
    tx.log(session, audit, NewEvent(
        type="key.fob_paired", actors=by.actors(), key_number=key.key_number, slot=slot,
        rules=["K4"],
        payload={"key": str(key.id), "fob_rom": rom, "previous": previous, "at": source},
    ))
    return key


def clear_fob(
    session: Session, audit: AuditLog, *, by: Principal, key_id: uuid.UUID, reason: str
) -> Key:
    """Unpair the key's fob chip (lost, broken, moved to another key), saying why. Until it
    is paired again the cabinet knows the key by presence only."""
    key = tx.get(session, Key, key_id, "key")
    if key.fob_rom is None:
        raise Conflict(f"key {key.key_number} has no fob paired")
    previous, key.fob_rom = key.fob_rom, None
    session.flush()
    tx.log(session, audit, NewEvent(
        type="key.fob_cleared", actors=by.actors(), key_number=key.key_number, rules=["K4"],
        payload={"key": str(key.id), "fob_rom": previous, "reason": reason},
    ))
    return key


# ---------------------------------------------------------------------- intake (K1)
def list_intake(
    session: Session,
    *,
    key_id: uuid.UUID | None,
    custodian_id: uuid.UUID | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[IntakeRecord], int]:
    query = select(IntakeRecord)
    if key_id is not None:
        query = query.where(IntakeRecord.key_id == key_id)
    if custodian_id is not None:
        query = query.where(IntakeRecord.custodian_id == custodian_id)
    if since is not None:
        query = query.where(IntakeRecord.received_at >= since)
    if until is not None:
        query = query.where(IntakeRecord.received_at < until)
    return tx.page(
        session,
        query,
        order_by=[IntakeRecord.received_at.desc(), IntakeRecord.id],
        limit=limit,
        offset=offset,
    )


def get_intake(session: Session, *, intake_id: uuid.UUID) -> IntakeRecord:
    return tx.get(session, IntakeRecord, intake_id, "intake record")


def record_intake(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    key_id: uuid.UUID,
    delivered_by_name: str,
    delivered_by_department: str,
    room_number: str | None,
    key_count: int,
    deliverer_confirmed: bool,
    custodian_id: uuid.UUID | None,
    slot_id: uuid.UUID | None,
    received_at: dt.datetime | None,
    note: str | None,
) -> IntakeRecord:
    """K1: record a key received and, when a slot is given, make it the key's home."""
    if not deliverer_confirmed:
        raise InvalidRequest("K1: the deliverer must confirm the handover")
    key = tx.get(session, Key, key_id, "key")
    if key.status == KeyStatus.RETIRED:
        raise Conflict(f"key {key.key_number} is retired")
    custodian_ref = custodian_id or by.person_id
    if custodian_ref is None:
        raise InvalidRequest(
            "K1: name the receiving custodian (custodian_id); this account is not a person"
        )
    custodian = tx.get(session, Person, custodian_ref, "person")
    if not custodian.has_role(Role.CUSTODIAN) or not custodian.active:
        raise InvalidRequest(f"K1: {custodian.name} is not an active key custodian")
    room = room_number or (key.unit.room_number if key.unit else None)
    if room is None:
        raise InvalidRequest("K1: the key has no unit; give the room_number")
    received = received_at or utcnow()
    if received > utcnow() + dt.timedelta(minutes=5):
        raise InvalidRequest("K1: received_at lies in the future")
    slot = None
    if slot_id is not None:
        slot = _free_slot(session, slot_id, for_key=key.id)
        key.home_slot = slot
    record = IntakeRecord(
        key_id=key.id,
        delivered_by_name=delivered_by_name,
        delivered_by_department=delivered_by_department,
        room_number=room,
        key_count=key_count,
        deliverer_confirmed=True,
        custodian_id=custodian.id,
        slot_id=slot.id if slot else key.home_slot_id,
        received_at=received,
        note=note,
    )
    session.add(record)
    session.flush()
    stored = tx.log(
        session,
        audit,
        NewEvent(
            type="key.intake",
            actors=[*by.actors(), str(custodian.id)],
            key_number=key.key_number,
            slot=slot.number if slot else (key.home_slot.number if key.home_slot else None),
            rules=["K1"],
            payload={
                "intake": str(record.id),
                "delivered_by": delivered_by_name,
                "delivered_by_department": delivered_by_department,
                "room_number": room,
                "key_count": key_count,
                "custodian": str(custodian.id),
                "received_at": received.isoformat(),
            },
        ),
    )
    record.event_seq = stored.seq
    return record
