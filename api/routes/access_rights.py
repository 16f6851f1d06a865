"""Access rights: who (a person or a role) may draw which key group, when."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter, Response
from pydantic import Field

from api.deps import AuditDep, PrincipalDep, ReadSession, needs
from api.schemas import (
    Instant,
    Limit,
    LocalTime,
    Offset,
    Out,
    Page,
    Strict,
    page_of,
    patch_values,
)
from kiosk.services import rights, tx
from kiosk.services.authz import Permission as P
from kiosk.store.models import Role

router = APIRouter(tags=["access rights"])


class RightIn(Strict):
    key_group_id: uuid.UUID
    person_id: uuid.UUID | None = Field(default=None, description="Exactly one of person_id, role.")
    role: Role | None = None
    weekdays: str = Field(
        default="1234567",
        min_length=1,
        max_length=7,
        pattern=r"^[1-7]+$",
        description="ISO weekdays, e.g. 12345 for Monday to Friday.",
    )
    start_time: LocalTime | None = None
    end_time: LocalTime | None = None
    valid_from: Instant | None = None
    valid_to: Instant | None = None


class RightPatch(Strict):
    """Who holds the right is not editable: withdraw it and grant a new one for that."""

    key_group_id: uuid.UUID | None = Field(default=None, description="null: no change")
    weekdays: str | None = Field(
        default=None, min_length=1, max_length=7, pattern=r"^[1-7]+$",
        description="null: no change",
    )
    start_time: LocalTime | None = Field(default=None, description="null: any hour (with end)")
    end_time: LocalTime | None = None
    valid_from: Instant | None = None
    valid_to: Instant | None = None


class RightOut(Out):
    id: uuid.UUID
    key_group_id: uuid.UUID
    person_id: uuid.UUID | None
    role: Role | None
    weekdays: str
    start_time: dt.time | None
    end_time: dt.time | None
    valid_from: dt.datetime | None
    valid_to: dt.datetime | None
    updated_at: dt.datetime


@router.get("/access-rights", response_model=Page[RightOut], dependencies=[needs(P.RIGHTS_READ)])
def list_rights(
    by: PrincipalDep,
    session: ReadSession,
    person_id: uuid.UUID | None = None,
    role: Role | None = None,
    key_group_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[RightOut]:
    rows, total = rights.list_rights(
        session,
        by=by,
        person_id=person_id,
        role=role,
        key_group_id=key_group_id,
        limit=limit,
        offset=offset,
    )
    return page_of(RightOut, rows, total, limit, offset)


@router.post(
    "/access-rights", response_model=RightOut, status_code=201, dependencies=[needs(P.RIGHTS_WRITE)]
)
def grant(body: RightIn, by: PrincipalDep, audit: AuditDep) -> RightOut:
    with tx.write(audit) as session:
        return RightOut.model_validate(rights.grant(session, audit, by=by, **body.model_dump()))


@router.get(
    "/access-rights/{right_id:uuid}", response_model=RightOut, dependencies=[needs(P.RIGHTS_READ)]
)
def get_right(right_id: uuid.UUID, by: PrincipalDep, session: ReadSession) -> RightOut:
    return RightOut.model_validate(rights.get_right(session, by=by, right_id=right_id))


@router.patch(
    "/access-rights/{right_id:uuid}", response_model=RightOut, dependencies=[needs(P.RIGHTS_WRITE)],
    summary="Change a right's key group, weekdays, hours or validity",
)
def update_right(
    right_id: uuid.UUID, body: RightPatch, by: PrincipalDep, audit: AuditDep
) -> RightOut:
    values = patch_values(
        body, nullable=frozenset({"start_time", "end_time", "valid_from", "valid_to"})
    )
    with tx.write(audit) as session:
        return RightOut.model_validate(
            rights.update(session, audit, by=by, right_id=right_id, values=values)
        )


@router.delete(
    "/access-rights/{right_id:uuid}",
    status_code=204,
    response_class=Response,
    dependencies=[needs(P.RIGHTS_WRITE)],
)
def withdraw(right_id: uuid.UUID, by: PrincipalDep, audit: AuditDep) -> Response:
    with tx.write(audit) as session:
        rights.withdraw(session, audit, by=by, right_id=right_id)
    return Response(status_code=204)
