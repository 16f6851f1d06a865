"""Access rights: which person or role may draw keys of which group, on which days and hours.

A right granted to a person belongs to that person's department for scoping; a right
granted to a role belongs to no department and only unscoped accounts may change it.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import InvalidRequest, NotFound
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.services.people import visible_person
from kiosk.store.models import AccessRight, KeyGroup, Person, Role


def _visible_right(session: Session, by: Principal, right_id: uuid.UUID) -> AccessRight:
    right = tx.get(session, AccessRight, right_id, "access right")
    if right.person_id is not None:
        person = session.get(Person, right.person_id)
        by.check_department(person.department_id if person else None, f"access right {right_id}")
    return right


def list_rights(
    session: Session,
    *,
    by: Principal,
    person_id: uuid.UUID | None,
    role: Role | None,
    key_group_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[AccessRight], int]:
    query = select(AccessRight)
    if by.department_id is not None:
        own = select(Person.id).where(Person.department_id == by.department_id)
        query = query.where(or_(AccessRight.person_id.is_(None), AccessRight.person_id.in_(own)))
    if person_id is not None:
        query = query.where(AccessRight.person_id == person_id)
    if role is not None:
        query = query.where(AccessRight.role == role)
    if key_group_id is not None:
        query = query.where(AccessRight.key_group_id == key_group_id)
    return tx.page(session, query, order_by=[AccessRight.id], limit=limit, offset=offset)


def get_right(session: Session, *, by: Principal, right_id: uuid.UUID) -> AccessRight:
    return _visible_right(session, by, right_id)


def _check_window(
    start_time: dt.time | None,
    end_time: dt.time | None,
    valid_from: dt.datetime | None,
    valid_to: dt.datetime | None,
) -> None:
    if (start_time is None) != (end_time is None):
        raise InvalidRequest("give both start_time and end_time, or neither")
    if start_time is not None and end_time is not None and start_time >= end_time:
        raise InvalidRequest("start_time must be before end_time")
    if valid_from and valid_to and valid_to <= valid_from:
        raise InvalidRequest("valid_to must be after valid_from")


def grant(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    person_id: uuid.UUID | None,
    role: Role | None,
    key_group_id: uuid.UUID,
    weekdays: str,
    start_time: dt.time | None,
    end_time: dt.time | None,
    valid_from: dt.datetime | None,
    valid_to: dt.datetime | None,
) -> AccessRight:
    if (person_id is None) == (role is None):
        raise InvalidRequest("grant a right to exactly one of person_id or role")
    if person_id is not None:
        visible_person(session, by=by, person_id=person_id)
    elif by.department_id is not None:
        raise NotFound("role-wide rights are managed by unscoped accounts")
    tx.get(session, KeyGroup, key_group_id, "key group")
    _check_window(start_time, end_time, valid_from, valid_to)
    right = AccessRight(
        person_id=person_id,
        role=role,
        key_group_id=key_group_id,
        weekdays="".join(sorted(set(weekdays))),
        start_time=start_time,
        end_time=end_time,
        valid_from=valid_from,
        valid_to=valid_to,
    )
    session.add(right)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="right.granted",
            actors=by.actors(),
            payload={
                "right": str(right.id),
                "person": str(person_id) if person_id else None,
                "role": role.value if role else None,
                "group": str(key_group_id),
                "weekdays": right.weekdays,
                "start_time": start_time.isoformat() if start_time else None,
                "end_time": end_time.isoformat() if end_time else None,
            },
        ),
    )
    return right


def withdraw(session: Session, audit: AuditLog, *, by: Principal, right_id: uuid.UUID) -> None:
    """Delete a right (configuration, not history: the log keeps the grant and the removal)."""
    right = _visible_right(session, by, right_id)
    if right.person_id is None and by.department_id is not None:
        raise NotFound(f"access right {right_id} does not exist")
    session.delete(right)
    tx.log(
        session,
        audit,
        NewEvent(
            type="right.withdrawn",
            actors=by.actors(),
            payload={
                "right": str(right_id),
                "person": str(right.person_id) if right.person_id else None,
                "role": right.role.value if right.role else None,
                "group": str(right.key_group_id),
            },
        ),
    )


EDITABLE = frozenset({"key_group_id", "weekdays", "start_time", "end_time", "valid_from",
                      "valid_to"})
"""What an edit may change. Who holds the right (person or role) is not among them: giving
it to someone else is a withdrawal and a new grant, two events a reviewer can read."""


def update(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    right_id: uuid.UUID,
    values: dict[str, object],
) -> AccessRight:
    """Change a right's key group, weekdays, hours or validity, with the grant's checks
    applied to the result; the same department scoping as ``withdraw``."""
    unknown = set(values) - EDITABLE
    if unknown:
        raise InvalidRequest(f"cannot change {', '.join(sorted(unknown))} of a right")
    right = _visible_right(session, by, right_id)
    if right.person_id is None and by.department_id is not None:
        raise NotFound(f"access right {right_id} does not exist")
    merged = {name: values.get(name, getattr(right, name)) for name in EDITABLE}
    if "key_group_id" in values:
        tx.get(session, KeyGroup, merged["key_group_id"], "key group")  # type: ignore[arg-type]
    _check_window(merged["start_time"], merged["end_time"],  # type: ignore[arg-type]
                  merged["valid_from"], merged["valid_to"])  # type: ignore[arg-type]
    if "weekdays" in values:
        values = {**values, "weekdays": "".join(sorted(set(str(values["weekdays"]))))}
    changed = tx.changes(right, values)
    if changed:
        tx.log(
            session,
            audit,
            NewEvent(
                type="right.updated",
                actors=by.actors(),
                payload={
                    "right": str(right.id),
                    "person": str(right.person_id) if right.person_id else None,
                    "role": right.role.value if right.role else None,
                    **changed,
                },
            ),
        )
    return right
