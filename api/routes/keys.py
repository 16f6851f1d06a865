"""Keys, key groups, and intake records (K1): create, move slot, retire."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import Field, StrictBool
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import AuditDep, PrincipalDep, ReadSession, needs
from api.schemas import (
    WHOLE,
    Code,
    Instant,
    KeyNumber,
    Label,
    Limit,
    Name,
    Note,
    Offset,
    Out,
    Page,
    RoomNumber,
    Search,
    Strict,
    WholeInt,
    page_of,
    patch_values,
)
from kiosk.services import keys, tx
from kiosk.services.authz import Permission as P
from kiosk.store.models import Key, KeyCategory, KeyStatus, Loan

router = APIRouter(tags=["keys"])

FobTag = Field(default=None, min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_-]+$")


class KeyGroupIn(Strict):
    code: Code
    name: Name
    requires_cosign: StrictBool = Field(
        default=False, description="K3: a custodian co-signs draws."
    )
    loan_minutes: Annotated[int, Field(ge=1, le=60 * 24 * 14), WHOLE] | None = Field(
        default=None, description="null: due at end of business day."
    )


class KeyGroupPatch(Strict):
    code: Code | None = Field(default=None, description="null: no change")
    name: Name | None = Field(default=None, description="null: no change")
    requires_cosign: StrictBool | None = Field(default=None, description="null: no change")
    loan_minutes: Annotated[int, Field(ge=1, le=60 * 24 * 14), WHOLE] | None = None


class KeyGroupOut(Out):
    id: uuid.UUID
    code: str
    name: str
    requires_cosign: bool
    loan_minutes: int | None
    updated_at: dt.datetime


class KeyIn(Strict):
    key_number: KeyNumber
    label: Label
    group_id: uuid.UUID
    category: KeyCategory
    unit_id: uuid.UUID | None = None
    copies: WholeInt = Field(default=1, ge=1, le=99)
    fob_tag: str | None = FobTag
    home_slot_id: uuid.UUID | None = None


class KeyPatch(Strict):
    label: Label | None = Field(default=None, description="null: no change")
    group_id: uuid.UUID | None = Field(default=None, description="null: no change")
    category: KeyCategory | None = Field(default=None, description="null: no change")
    copies: Annotated[int, Field(ge=1, le=99), WHOLE] | None = Field(
        default=None, description="null: no change"
    )
    unit_id: uuid.UUID | None = None
    fob_tag: str | None = FobTag


class KeyOut(Out):
    id: uuid.UUID
    key_number: str
    label: str
    unit_id: uuid.UUID | None
    group_id: uuid.UUID
    category: KeyCategory
    copies: int
    fob_tag: str | None
    fob_rom: str | None = Field(description=(
        "Issue 13: the 1-Wire ROM ID of the chip in the key's fob (16 hex digits), which an "
        "identity cabinet reads in the slot; null: not paired (known by presence only)."))
    home_slot_id: uuid.UUID | None
    home_slot_number: int | None
    status: KeyStatus
    special: bool = Field(description="K7: a special-room key (its unit is special).")
    out: bool = Field(description="K10: on loan right now.")
    awaiting_stock: bool = Field(
        default=False, description="K1/K2: imported with its home slot and never hung in the "
        "cabinet yet; a custodian stocks it at the cabinet (上架).")
    updated_at: dt.datetime


class MoveIn(Strict):
    slot_id: uuid.UUID | None = Field(description="The new home slot; null: no home slot.")


class RetireIn(Strict):
    reason: Note


class FobTyped(Strict):
    rom: str = Field(
        min_length=16, max_length=23, pattern=r"^[0-9A-Fa-f :-]+$",
        description="The fob chip's 1-Wire ROM ID: 16 hex digits (spaces, '-' or ':' "
                    "allowed), family code first, CRC-8 last; it is checked.")


class FobFromSlot(Strict):
    from_slot: Literal[True] = Field(
        description="Instead of typing it: the ROM the cabinet's receptor read in the key's "
                    "home slot at its last scan.")


class FobClearIn(Strict):
    reason: Note


class IntakeIn(Strict):
    """K1: who delivered the key, when, which room, how many, who received it, which slot."""

    key_id: uuid.UUID
    delivered_by_name: Name
    delivered_by_department: Name
    key_count: WholeInt = Field(ge=1, le=99)
    deliverer_confirmed: Literal[True] = Field(description="K1: the deliverer confirmed.")
    room_number: RoomNumber | None = Field(default=None, description="Default: the key's unit.")
    custodian_id: uuid.UUID | None = Field(
        default=None, description="The receiving custodian; default: the caller's person."
    )
    slot_id: uuid.UUID | None = Field(default=None, description="Assign this home slot.")
    received_at: Instant | None = Field(default=None, description="Default: now.")
    note: Note | None = None


class IntakeOut(Out):
    id: uuid.UUID
    key_id: uuid.UUID
    delivered_by_name: str
    delivered_by_department: str
    room_number: str
    key_count: int
    deliverer_confirmed: bool
    custodian_id: uuid.UUID
    slot_id: uuid.UUID | None
    received_at: dt.datetime
    note: str | None
    event_seq: int | None


def _keys_out(session: Session, rows: list[Key]) -> list[KeyOut]:
    ids = [k.id for k in rows]
    out_now = (
        set(
            session.scalars(
                select(Loan.key_id).where(Loan.key_id.in_(ids), Loan.returned_at.is_(None))
            )
        )
        if ids
        else set()
    )
    return [
        KeyOut(
            id=k.id,
            key_number=k.key_number,
            label=k.label,
            unit_id=k.unit_id,
            group_id=k.group_id,
            category=k.category,
            copies=k.copies,
            fob_tag=k.fob_tag,
            fob_rom=k.fob_rom,
            home_slot_id=k.home_slot_id,
            home_slot_number=k.home_slot.number if k.home_slot else None,
            status=k.status,
            special=bool(k.unit and k.unit.special),
            out=k.id in out_now,
            awaiting_stock=k.awaiting_stock,
            updated_at=k.updated_at,
        )
        for k in rows
    ]


def _key_out(session: Session, key: Key) -> KeyOut:
    return _keys_out(session, [key])[0]


# ------------------------------------------------------------------------- key groups
@router.get("/key-groups", response_model=Page[KeyGroupOut], dependencies=[needs(P.KEYS_READ)])
def list_groups(session: ReadSession, limit: Limit = 50, offset: Offset = 0) -> Page[KeyGroupOut]:
    rows, total = keys.list_groups(session, limit=limit, offset=offset)
    return page_of(KeyGroupOut, rows, total, limit, offset)


@router.post(
    "/key-groups", response_model=KeyGroupOut, status_code=201, dependencies=[needs(P.KEYS_WRITE)]
)
def create_group(body: KeyGroupIn, by: PrincipalDep, audit: AuditDep) -> KeyGroupOut:
    with tx.write(audit) as session:
        return KeyGroupOut.model_validate(
            keys.create_group(session, audit, by=by, values=body.model_dump())
        )


@router.get(
    "/key-groups/{group_id:uuid}", response_model=KeyGroupOut, dependencies=[needs(P.KEYS_READ)]
)
def get_group(group_id: uuid.UUID, session: ReadSession) -> KeyGroupOut:
    return KeyGroupOut.model_validate(keys.get_group(session, group_id=group_id))


@router.patch(
    "/key-groups/{group_id:uuid}", response_model=KeyGroupOut, dependencies=[needs(P.KEYS_WRITE)]
)
def update_group(
    group_id: uuid.UUID, body: KeyGroupPatch, by: PrincipalDep, audit: AuditDep
) -> KeyGroupOut:
    values = patch_values(body, nullable=frozenset({"loan_minutes"}))
    with tx.write(audit) as session:
        return KeyGroupOut.model_validate(
            keys.update_group(session, audit, by=by, group_id=group_id, values=values)
        )


# ------------------------------------------------------------------------------- keys
@router.get("/keys", response_model=Page[KeyOut], dependencies=[needs(P.KEYS_READ)])
def list_keys(
    session: ReadSession,
    status: KeyStatus | None = None,
    group_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    category: KeyCategory | None = None,
    special: bool | None = None,
    q: Search | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[KeyOut]:
    rows, total = keys.list_keys(
        session,
        status=status,
        group_id=group_id,
        unit_id=unit_id,
        category=category,
        special=special,
        q=q,
        limit=limit,
        offset=offset,
    )
    return Page[KeyOut](items=_keys_out(session, rows), total=total, limit=limit, offset=offset)


@router.post("/keys", response_model=KeyOut, status_code=201, dependencies=[needs(P.KEYS_WRITE)])
def create_key(body: KeyIn, by: PrincipalDep, audit: AuditDep) -> KeyOut:
    with tx.write(audit) as session:
        return _key_out(session, keys.create_key(session, audit, by=by, values=body.model_dump()))


@router.get("/keys/{key_id:uuid}", response_model=KeyOut, dependencies=[needs(P.KEYS_READ)])
def get_key(key_id: uuid.UUID, session: ReadSession) -> KeyOut:
    return _key_out(session, keys.get_key(session, key_id=key_id))


@router.patch("/keys/{key_id:uuid}", response_model=KeyOut, dependencies=[needs(P.KEYS_WRITE)])
def update_key(key_id: uuid.UUID, body: KeyPatch, by: PrincipalDep, audit: AuditDep) -> KeyOut:
    values = patch_values(body, nullable=frozenset({"unit_id", "fob_tag"}))
    with tx.write(audit) as session:
        return _key_out(
            session, keys.update_key(session, audit, by=by, key_id=key_id, values=values)
        )


@router.post(
    "/keys/{key_id:uuid}/move",
    response_model=KeyOut,
    dependencies=[needs(P.KEYS_WRITE)],
    summary="Give the key another home slot",
)
def move_key(key_id: uuid.UUID, body: MoveIn, by: PrincipalDep, audit: AuditDep) -> KeyOut:
    with tx.write(audit) as session:
        return _key_out(
            session, keys.move_key(session, audit, by=by, key_id=key_id, slot_id=body.slot_id)
        )


@router.post(
    "/keys/{key_id:uuid}/retire",
    response_model=KeyOut,
    dependencies=[needs(P.KEYS_WRITE)],
    summary="Take the key out of service (frees its slot; refused while it is out)",
)
def retire_key(key_id: uuid.UUID, body: RetireIn, by: PrincipalDep, audit: AuditDep) -> KeyOut:
    with tx.write(audit) as session:
        return _key_out(
            session, keys.retire_key(session, audit, by=by, key_id=key_id, reason=body.reason)
        )


@router.post(
    "/keys/{key_id:uuid}/fob",
    response_model=KeyOut,
    dependencies=[needs(P.KEYS_WRITE)],
    summary="Pair the key's fob chip: a typed ROM ID, or the one read in its slot (issue 13)",
    responses={409: {"description": "the ROM is paired with another key"}},
)
def pair_fob(
    key_id: uuid.UUID, body: FobTyped | FobFromSlot, by: PrincipalDep, audit: AuditDep,
    request: Request,
) -> KeyOut:
    with tx.write(audit) as session:
        slot = None
        if isinstance(body, FobFromSlot):
            cabinet = getattr(request.app.state, "cabinet", None)
            rom, slot = keys.fob_in_home_slot(
                session, key_id=key_id, cabinet_id=getattr(cabinet, "cabinet_id", None),
                fobs=cabinet.last_fobs() if cabinet is not None else None)
        else:
            rom = body.rom
        key = keys.pair_fob(session, audit, by=by, key_id=key_id, rom=rom,
                            source="typed" if slot is None else "slot", slot=slot)
        return _key_out(session, key)


@router.post(
    "/keys/{key_id:uuid}/fob/clear",
    response_model=KeyOut,
    dependencies=[needs(P.KEYS_WRITE)],
    summary="Unpair the key's fob chip, with the reason (logged; issue 13)",
)
def clear_fob(key_id: uuid.UUID, body: FobClearIn, by: PrincipalDep, audit: AuditDep) -> KeyOut:
    with tx.write(audit) as session:
        return _key_out(
            session, keys.clear_fob(session, audit, by=by, key_id=key_id, reason=body.reason)
        )


# ----------------------------------------------------------------------- intake (K1)
@router.get("/intake-records", response_model=Page[IntakeOut], dependencies=[needs(P.KEYS_READ)])
def list_intake(
    session: ReadSession,
    key_id: uuid.UUID | None = None,
    custodian_id: uuid.UUID | None = None,
    since: Instant | None = None,
    until: Instant | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[IntakeOut]:
    rows, total = keys.list_intake(
        session,
        key_id=key_id,
        custodian_id=custodian_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return page_of(IntakeOut, rows, total, limit, offset)


@router.post(
    "/intake-records",
    response_model=IntakeOut,
    status_code=201,
    dependencies=[needs(P.KEYS_INTAKE)],
    summary="K1: record a key received (and assign its slot)",
)
def record_intake(body: IntakeIn, by: PrincipalDep, audit: AuditDep) -> IntakeOut:
    with tx.write(audit) as session:
        record = keys.record_intake(session, audit, by=by, **body.model_dump())
        return IntakeOut.model_validate(record)


@router.get(
    "/intake-records/{intake_id:uuid}", response_model=IntakeOut, dependencies=[needs(P.KEYS_READ)]
)
def get_intake(intake_id: uuid.UUID, session: ReadSession) -> IntakeOut:
    return IntakeOut.model_validate(keys.get_intake(session, intake_id=intake_id))
