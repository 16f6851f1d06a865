"""Owners and units. Owner phone, address and employer only via ``/personal-data`` (A1)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field, StrictBool

from api.deps import AuditDep, PrincipalDep, ReadSession, needs
from api.schemas import (
    WHOLE,
    Label,
    Limit,
    Name,
    Offset,
    Out,
    Page,
    Phone,
    RoomNumber,
    Search,
    Strict,
    WholeInt,
    page_of,
    patch_values,
)
from kiosk.services import owners, tx
from kiosk.services.authz import Permission as P
from kiosk.store.models import UnitKind

router = APIRouter(tags=["owners and units"])


class OwnerIn(Strict):
    name: Name
    phone: Phone | None = None
    address: Label | None = None
    employer: Label | None = None


class OwnerPatch(Strict):
    name: Name | None = Field(default=None, description="null: no change")
    phone: Phone | None = None
    address: Label | None = None
    employer: Label | None = None


class OwnerOut(Out):
    """An owner without personal data: safe for every role that reads owners."""

    id: uuid.UUID
    name: str
    updated_at: dt.datetime


class OwnerPersonalData(OwnerOut):
    """A1: confidential fields; each read of them is an audit event."""

    phone: str | None
    address: str | None
    employer: str | None


class UnitIn(Strict):
    room_number: RoomNumber
    floor: WholeInt = Field(ge=-10, le=200)
    kind: UnitKind = UnitKind.OFFICE
    name: Name | None = None
    owner_id: uuid.UUID | None = None
    special: StrictBool = Field(default=False, description="K7: its keys need a leader's approval.")
    vacant: StrictBool = False


class UnitPatch(Strict):
    room_number: RoomNumber | None = Field(default=None, description="null: no change")
    floor: Annotated[int, Field(ge=-10, le=200), WHOLE] | None = Field(
        default=None, description="null: no change"
    )
    kind: UnitKind | None = Field(default=None, description="null: no change")
    name: Name | None = None
    owner_id: uuid.UUID | None = None
    special: StrictBool | None = Field(default=None, description="null: no change")
    vacant: StrictBool | None = Field(default=None, description="null: no change")


class UnitOut(Out):
    id: uuid.UUID
    room_number: str
    floor: int
    kind: UnitKind
    name: str | None
    owner_id: uuid.UUID | None
    special: bool
    vacant: bool
    updated_at: dt.datetime


# ----------------------------------------------------------------------------- owners
@router.get("/owners", response_model=Page[OwnerOut], dependencies=[needs(P.OWNERS_READ)])
def list_owners(
    session: ReadSession, q: Search | None = None, limit: Limit = 50, offset: Offset = 0
) -> Page[OwnerOut]:
    rows, total = owners.list_owners(session, q=q, limit=limit, offset=offset)
    return page_of(OwnerOut, rows, total, limit, offset)


@router.post(
    "/owners", response_model=OwnerOut, status_code=201, dependencies=[needs(P.OWNERS_WRITE)]
)
def create_owner(body: OwnerIn, by: PrincipalDep, audit: AuditDep) -> OwnerOut:
    with tx.write(audit) as session:
        return OwnerOut.model_validate(
            owners.create_owner(session, audit, by=by, **body.model_dump())
        )


@router.get("/owners/{owner_id:uuid}", response_model=OwnerOut, dependencies=[needs(P.OWNERS_READ)])
def get_owner(owner_id: uuid.UUID, session: ReadSession) -> OwnerOut:
    return OwnerOut.model_validate(owners.get_owner(session, owner_id=owner_id))


@router.patch(
    "/owners/{owner_id:uuid}", response_model=OwnerOut, dependencies=[needs(P.OWNERS_WRITE)]
)
def update_owner(
    owner_id: uuid.UUID, body: OwnerPatch, by: PrincipalDep, audit: AuditDep
) -> OwnerOut:
    values = patch_values(body, nullable=frozenset({"phone", "address", "employer"}))
    with tx.write(audit) as session:
        return OwnerOut.model_validate(
            owners.update_owner(session, audit, by=by, owner_id=owner_id, values=values)
        )


@router.get(
    "/owners/{owner_id:uuid}/personal-data",
    response_model=OwnerPersonalData,
    dependencies=[needs(P.OWNERS_PERSONAL_DATA)],
    summary="Read an owner's phone, address and employer (A1: the read is logged)",
)
def read_personal_data(
    owner_id: uuid.UUID, by: PrincipalDep, audit: AuditDep, purpose: Search | None = None
) -> OwnerPersonalData:
    with tx.write(audit) as session:
        owner = owners.read_personal_data(session, audit, by=by, owner_id=owner_id, purpose=purpose)
        return OwnerPersonalData.model_validate(owner)


# ------------------------------------------------------------------------------ units
@router.get("/units", response_model=Page[UnitOut], dependencies=[needs(P.UNITS_READ)])
def list_units(
    session: ReadSession,
    floor: Annotated[int | None, Query(ge=-10, le=200)] = None,
    kind: UnitKind | None = None,
    owner_id: uuid.UUID | None = None,
    special: bool | None = None,
    vacant: bool | None = None,
    q: Search | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[UnitOut]:
    rows, total = owners.list_units(
        session,
        floor=floor,
        kind=kind,
        owner_id=owner_id,
        special=special,
        vacant=vacant,
        q=q,
        limit=limit,
        offset=offset,
    )
    return page_of(UnitOut, rows, total, limit, offset)


@router.post("/units", response_model=UnitOut, status_code=201, dependencies=[needs(P.UNITS_WRITE)])
def create_unit(body: UnitIn, by: PrincipalDep, audit: AuditDep) -> UnitOut:
    with tx.write(audit) as session:
        return UnitOut.model_validate(
            owners.create_unit(session, audit, by=by, values=body.model_dump())
        )


@router.get("/units/{unit_id:uuid}", response_model=UnitOut, dependencies=[needs(P.UNITS_READ)])
def get_unit(unit_id: uuid.UUID, session: ReadSession) -> UnitOut:
    return UnitOut.model_validate(owners.get_unit(session, unit_id=unit_id))


@router.patch("/units/{unit_id:uuid}", response_model=UnitOut, dependencies=[needs(P.UNITS_WRITE)])
def update_unit(unit_id: uuid.UUID, body: UnitPatch, by: PrincipalDep, audit: AuditDep) -> UnitOut:
    values = patch_values(body, nullable=frozenset({"name", "owner_id"}))
    with tx.write(audit) as session:
        return UnitOut.model_validate(
            owners.update_unit(session, audit, by=by, unit_id=unit_id, values=values)
        )
