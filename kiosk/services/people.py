"""People, their kiosk roles, and departments.

A department-scoped account (a department leader) sees and changes only its own
department's people; another department's person answers "does not exist".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict, PermissionDenied
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models import Department, Person, PersonRole, Role


# ---------------------------------------------------------------------- departments
def list_departments(session: Session, *, limit: int, offset: int) -> tuple[list[Department], int]:
    return tx.page(
        session, select(Department), order_by=[Department.code], limit=limit, offset=offset
    )


def get_department(session: Session, *, department_id: uuid.UUID) -> Department:
    return tx.get(session, Department, department_id, "department")


def create_department(
    session: Session, audit: AuditLog, *, by: Principal, code: str, name: str, name_en: str | None
) -> Department:
    if by.department_id is not None:
        raise PermissionDenied("a department-scoped account cannot create departments")
    if session.scalar(select(Department.id).where(Department.code == code)):
        raise Conflict(f"department code {code!r} is taken")
    dept = Department(code=code, name=name, name_en=name_en)
    session.add(dept)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="department.created",
            actors=by.actors(),
            payload={"department": str(dept.id), "code": code, "name": name},
        ),
    )
    return dept


def update_department(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    department_id: uuid.UUID,
    values: dict[str, Any],
) -> Department:
    dept = tx.get(session, Department, department_id, "department")
    by.check_department(dept.id, f"department {department_id}")
    code = values.get("code")
    if (
        code
        and code != dept.code
        and session.scalar(select(Department.id).where(Department.code == code))
    ):
        raise Conflict(f"department code {code!r} is taken")
    changed = tx.changes(dept, values)
    if changed:
        tx.log(
            session,
            audit,
            NewEvent(
                type="department.updated",
                actors=by.actors(),
                payload={"department": str(dept.id), **changed},
            ),
        )
    return dept


# ----------------------------------------------------------------------------- people
def _visible_person(session: Session, by: Principal, person_id: uuid.UUID) -> Person:
    person = tx.get(session, Person, person_id, "person")
    by.check_department(person.department_id, f"person {person_id}")
    return person


def get_person(session: Session, *, by: Principal, person_id: uuid.UUID) -> Person:
    return _visible_person(session, by, person_id)


def visible_person(session: Session, *, by: Principal, person_id: uuid.UUID) -> Person:
    """For other services: a person the caller may act on, or ``NotFound``."""
    return _visible_person(session, by, person_id)


def list_people(
    session: Session,
    *,
    by: Principal,
    department_id: uuid.UUID | None,
    role: Role | None,
    active: bool | None,
    q: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Person], int]:
    query = select(Person).options(selectinload(Person.roles))
    if by.department_id is not None:
        query = query.where(Person.department_id == by.department_id)
    if department_id is not None:
        query = query.where(Person.department_id == department_id)
    if role is not None:
        query = query.where(Person.roles.any(PersonRole.role == role))
    if active is not None:
        query = query.where(Person.active == active)
    if q:
        pattern = tx.like(q)
        query = query.where(
            or_(Person.name.like(pattern, escape="\\"), Person.staff_no.like(pattern, escape="\\"))
        )
    return tx.page(session, query, order_by=[Person.staff_no], limit=limit, offset=offset)


def _check_department(session: Session, by: Principal, department_id: uuid.UUID | None) -> None:
    if department_id is not None:
        tx.get(session, Department, department_id, "department")
    by.check_department(department_id, f"department {department_id}")


def create_person(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    staff_no: str,
    name: str,
    department_id: uuid.UUID | None,
    phone: str | None,
    roles: Sequence[Role],
    active: bool = True,
) -> Person:
    _check_department(session, by, department_id)
    if session.scalar(select(Person.id).where(Person.staff_no == staff_no)):
        raise Conflict(f"staff number {staff_no!r} is taken")
    person = Person(
        staff_no=staff_no, name=name, department_id=department_id, phone=phone, active=active
    )
    person.roles = [PersonRole(role=r) for r in sorted(set(roles))]
    session.add(person)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="person.created",
            actors=by.actors(),
            payload={
                "person": str(person.id),
                "staff_no": staff_no,
                "department": str(department_id) if department_id else None,
                "roles": sorted(r.value for r in set(roles)),
            },
        ),
    )
    return person


def update_person(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    person_id: uuid.UUID,
    values: dict[str, Any],
) -> Person:
    person = _visible_person(session, by, person_id)
    values = dict(values)
    roles = values.pop("roles", None)
    if "department_id" in values:
        _check_department(session, by, values["department_id"])
    staff_no = values.get("staff_no")
    if (
        staff_no
        and staff_no != person.staff_no
        and session.scalar(select(Person.id).where(Person.staff_no == staff_no))
    ):
        raise Conflict(f"staff number {staff_no!r} is taken")
    changed = tx.changes(person, values, private=frozenset({"phone"}))
    if roles is not None:
        wanted = set(roles)
        if wanted != {r.role for r in person.roles}:
            person.roles = [r for r in person.roles if r.role in wanted] + [
                PersonRole(role=r) for r in sorted(wanted - {r.role for r in person.roles})
            ]
            changed["roles"] = sorted(r.value for r in wanted)
    if changed:
        tx.log(
            session,
            audit,
            NewEvent(
                type="person.updated",
                actors=by.actors(),
                payload={"person": str(person.id), **changed},
            ),
        )
    return person
