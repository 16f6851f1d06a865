"""Cabinets and their slots."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter
from pydantic import Field, StrictBool
from sqlalchemy.orm import Session

from api.deps import AuditDep, PrincipalDep, ReadSession, needs
from api.schemas import Label, Limit, Offset, Out, Page, Strict, WholeInt, patch_values
from kiosk.services import cabinets, tx
from kiosk.services.authz import Permission as P
from kiosk.store.models import Slot

router = APIRouter(tags=["cabinets"])

CabinetCode = Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")


class CabinetIn(Strict):
    code: str = CabinetCode
    name: Label
    location: Label | None = None


class CabinetPatch(Strict):
    name: Label | None = Field(default=None, description="null: no change")
    location: Label | None = None


class CabinetOut(Out):
    id: uuid.UUID
    code: str
    name: str
    location: str | None
    updated_at: dt.datetime


class SlotsIn(Strict):
    first: WholeInt = Field(ge=1, le=10_000, description="Number of the first new slot.")
    count: WholeInt = Field(ge=1, le=256)


class SlotPatch(Strict):
    enabled: StrictBool


class SlotOut(Out):
    id: uuid.UUID
    cabinet_id: uuid.UUID
    number: int
    enabled: bool
    key_id: uuid.UUID | None = Field(description="The key whose home this slot is.")
    key_number: str | None


def _slots_out(session: Session, rows: list[Slot]) -> list[SlotOut]:
    homes = cabinets.slot_keys(session, [s.id for s in rows])
    return [
        SlotOut(
            id=s.id,
            cabinet_id=s.cabinet_id,
            number=s.number,
            enabled=s.enabled,
            key_id=homes[s.id].id if s.id in homes else None,
            key_number=homes[s.id].key_number if s.id in homes else None,
        )
        for s in rows
    ]


@router.get("/cabinets", response_model=Page[CabinetOut], dependencies=[needs(P.CABINETS_READ)])
def list_cabinets(session: ReadSession, limit: Limit = 50, offset: Offset = 0) -> Page[CabinetOut]:
    rows, total = cabinets.list_cabinets(session, limit=limit, offset=offset)
    items = [CabinetOut.model_validate(r) for r in rows]
    return Page[CabinetOut](items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/cabinets", response_model=CabinetOut, status_code=201, dependencies=[needs(P.CABINETS_WRITE)]
)
def create_cabinet(body: CabinetIn, by: PrincipalDep, audit: AuditDep) -> CabinetOut:
    with tx.write(audit) as session:
        return CabinetOut.model_validate(
            cabinets.create_cabinet(session, audit, by=by, values=body.model_dump())
        )


@router.get(
    "/cabinets/{cabinet_id:uuid}", response_model=CabinetOut, dependencies=[needs(P.CABINETS_READ)]
)
def get_cabinet(cabinet_id: uuid.UUID, session: ReadSession) -> CabinetOut:
    return CabinetOut.model_validate(cabinets.get_cabinet(session, cabinet_id=cabinet_id))


@router.patch(
    "/cabinets/{cabinet_id:uuid}", response_model=CabinetOut, dependencies=[needs(P.CABINETS_WRITE)]
)
def update_cabinet(
    cabinet_id: uuid.UUID, body: CabinetPatch, by: PrincipalDep, audit: AuditDep
) -> CabinetOut:
    values = patch_values(body, nullable=frozenset({"location"}))
    with tx.write(audit) as session:
        return CabinetOut.model_validate(
            cabinets.update_cabinet(session, audit, by=by, cabinet_id=cabinet_id, values=values)
        )


@router.get(
    "/cabinets/{cabinet_id:uuid}/slots",
    response_model=Page[SlotOut],
    dependencies=[needs(P.CABINETS_READ)],
)
def list_slots(
    cabinet_id: uuid.UUID,
    session: ReadSession,
    enabled: bool | None = None,
    free: bool | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[SlotOut]:
    rows, total = cabinets.list_slots(
        session, cabinet_id=cabinet_id, enabled=enabled, free=free, limit=limit, offset=offset
    )
    return Page[SlotOut](items=_slots_out(session, rows), total=total, limit=limit, offset=offset)


@router.post(
    "/cabinets/{cabinet_id:uuid}/slots",
    response_model=list[SlotOut],
    status_code=201,
    dependencies=[needs(P.CABINETS_WRITE)],
    summary="Add a run of numbered slots (a new lock board)",
)
def add_slots(
    cabinet_id: uuid.UUID, body: SlotsIn, by: PrincipalDep, audit: AuditDep
) -> list[SlotOut]:
    with tx.write(audit) as session:
        rows = cabinets.add_slots(
            session, audit, by=by, cabinet_id=cabinet_id, first=body.first, count=body.count
        )
        return _slots_out(session, rows)


@router.get("/slots/{slot_id:uuid}", response_model=SlotOut, dependencies=[needs(P.CABINETS_READ)])
def get_slot(slot_id: uuid.UUID, session: ReadSession) -> SlotOut:
    return _slots_out(session, [cabinets.get_slot(session, slot_id=slot_id)])[0]


@router.patch(
    "/slots/{slot_id:uuid}",
    response_model=SlotOut,
    dependencies=[needs(P.CABINETS_WRITE)],
    summary="Enable or disable a slot (refused while it is a key's home)",
)
def update_slot(slot_id: uuid.UUID, body: SlotPatch, by: PrincipalDep, audit: AuditDep) -> SlotOut:
    with tx.write(audit) as session:
        slot = cabinets.update_slot(session, audit, by=by, slot_id=slot_id, enabled=body.enabled)
        return _slots_out(session, [slot])[0]
