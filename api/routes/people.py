"""People (staff and owner proxies), their kiosk roles, and departments."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter
from pydantic import Field, StrictBool, field_validator

from api.deps import AuditDep, PrincipalDep, ReadSession, needs
from api.schemas import (
    Code,
    Limit,
    Name,
    Offset,
    Out,
    Page,
    Phone,
    Search,
    Strict,
    page_of,
    patch_values,
)
from kiosk.services import people, tx
from kiosk.services.authz import Permission as P
from kiosk.store.models import Person, Role

router = APIRouter(tags=["people"])


class DepartmentIn(Strict):
    code: Code
    name: Name
    name_en: Name | None = None


class DepartmentPatch(Strict):
    code: Code | None = Field(default=None, description="null: no change")
    name: Name | None = Field(default=None, description="null: no change")
    name_en: Name | None = None


class DepartmentOut(Out):
    id: uuid.UUID
    code: str
    name: str
    name_en: str | None
    updated_at: dt.datetime


class PersonIn(Strict):
    staff_no: Code
    name: Name
    department_id: uuid.UUID | None = None
    phone: Phone | None = None
    roles: list[Role] = Field(default_factory=lambda: [Role.STAFF], max_length=len(Role))
    active: StrictBool = True


class PersonPatch(Strict):
    staff_no: Code | None = Field(default=None, description="null: no change")
    name: Name | None = Field(default=None, description="null: no change")
    department_id: uuid.UUID | None = None
    phone: Phone | None = None
    roles: list[Role] | None = Field(
        default=None, max_length=len(Role), description="null: no change"
    )
    active: StrictBool | None = Field(default=None, description="null: no change")


class PersonOut(Out):
    id: uuid.UUID
    staff_no: str
    name: str
    department_id: uuid.UUID | None
    phone: str | None
    active: bool
    roles: list[Role]
    updated_at: dt.datetime

    @field_validator("roles", mode="before")
    @classmethod
    def _role_names(cls, value: object) -> object:
        if isinstance(value, list):
            return sorted(str(getattr(r, "role", r)) for r in value)
        return value


# ------------------------------------------------------------------------ departments
@router.get(
    "/departments", response_model=Page[DepartmentOut], dependencies=[needs(P.DEPARTMENTS_READ)]
)
def list_departments(
    session: ReadSession, limit: Limit = 50, offset: Offset = 0
) -> Page[DepartmentOut]:
    rows, total = people.list_departments(session, limit=limit, offset=offset)
    return page_of(DepartmentOut, rows, total, limit, offset)


@router.post(
    "/departments",
    response_model=DepartmentOut,
    status_code=201,
    dependencies=[needs(P.DEPARTMENTS_WRITE)],
)
def create_department(body: DepartmentIn, by: PrincipalDep, audit: AuditDep) -> DepartmentOut:
    with tx.write(audit) as session:
        dept = people.create_department(session, audit, by=by, **body.model_dump())
        return DepartmentOut.model_validate(dept)


@router.get(
    "/departments/{department_id:uuid}",
    response_model=DepartmentOut,
    dependencies=[needs(P.DEPARTMENTS_READ)],
)
def get_department(department_id: uuid.UUID, session: ReadSession) -> DepartmentOut:
    return DepartmentOut.model_validate(people.get_department(session, department_id=department_id))


@router.patch(
    "/departments/{department_id:uuid}",
    response_model=DepartmentOut,
    dependencies=[needs(P.DEPARTMENTS_WRITE)],
)
def update_department(
    department_id: uuid.UUID, body: DepartmentPatch, by: PrincipalDep, audit: AuditDep
) -> DepartmentOut:
    values = patch_values(body, nullable=frozenset({"name_en"}))
    with tx.write(audit) as session:
        dept = people.update_department(
            session, audit, by=by, department_id=department_id, values=values
        )
        return DepartmentOut.model_validate(dept)


# ----------------------------------------------------------------------------- people
def _out(person: Person) -> PersonOut:
    return PersonOut.model_validate(person)


@router.get("/people", response_model=Page[PersonOut], dependencies=[needs(P.PEOPLE_READ)])
def list_people(
    by: PrincipalDep,
    session: ReadSession,
    department_id: uuid.UUID | None = None,
    role: Role | None = None,
    active: bool | None = None,
    q: Search | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[PersonOut]:
    rows, total = people.list_people(
        session,
        by=by,
        department_id=department_id,
        role=role,
        active=active,
        q=q,
        limit=limit,
        offset=offset,
    )
    return page_of(PersonOut, rows, total, limit, offset)


@router.post(
    "/people", response_model=PersonOut, status_code=201, dependencies=[needs(P.PEOPLE_WRITE)]
)
def create_person(body: PersonIn, by: PrincipalDep, audit: AuditDep) -> PersonOut:
    with tx.write(audit) as session:
        return _out(people.create_person(session, audit, by=by, **body.model_dump()))


@router.get(
    "/people/{person_id:uuid}", response_model=PersonOut, dependencies=[needs(P.PEOPLE_READ)]
)
def get_person(person_id: uuid.UUID, by: PrincipalDep, session: ReadSession) -> PersonOut:
    return _out(people.get_person(session, by=by, person_id=person_id))


@router.patch(
    "/people/{person_id:uuid}", response_model=PersonOut, dependencies=[needs(P.PEOPLE_WRITE)]
)
def update_person(
    person_id: uuid.UUID, body: PersonPatch, by: PrincipalDep, audit: AuditDep
) -> PersonOut:
    values = patch_values(body, nullable=frozenset({"department_id", "phone"}))
    with tx.write(audit) as session:
        return _out(people.update_person(session, audit, by=by, person_id=person_id, values=values))
