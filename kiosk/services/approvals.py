"""K7 approvals: a department leader's approval for one draw of a special-room key.

Lifecycle: pending → approved | rejected | expired; approved → used (by the cabinet, on the
draw) | expired. Only a leader of the borrower's department decides (department scope),
never for their own draw, and never after ``valid_until``. Every step is an event citing K7.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict, InvalidRequest
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.services.dual_control import check_department_leader
from kiosk.services.people import visible_person
from kiosk.store.models import Approval, ApprovalStatus, Key, KeyStatus, Person, Role
from kiosk.store.types import utcnow

MAX_VALIDITY = dt.timedelta(days=31)
OPEN_STATES = frozenset({ApprovalStatus.PENDING, ApprovalStatus.APPROVED})


def _visible(session: Session, by: Principal, approval_id: uuid.UUID) -> Approval:
    approval = tx.get(session, Approval, approval_id, "approval")
    person = session.get(Person, approval.requested_for_id)
    by.check_department(person.department_id if person else None, f"approval {approval_id}")
    return approval


def _event(
    approval: Approval, key: Key | None, kind: str, by: list[str], **extra: object
) -> NewEvent:
    return NewEvent(
        type=f"approval.{kind}",
        actors=by,
        key_number=key.key_number if key else None,
        rules=["K7"],
        payload={
            "approval": str(approval.id),
            "for": str(approval.requested_for_id),
            "valid_until": approval.valid_until.isoformat(),
            **extra,
        },
    )


def list_approvals(
    session: Session,
    *,
    by: Principal,
    status: ApprovalStatus | None,
    key_id: uuid.UUID | None,
    person_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[Approval], int]:
    query = select(Approval).join(Person, Approval.requested_for_id == Person.id)
    if by.department_id is not None:
        query = query.where(Person.department_id == by.department_id)
    if status is not None:
        query = query.where(Approval.status == status)
    if key_id is not None:
        query = query.where(Approval.key_id == key_id)
    if person_id is not None:
        query = query.where(Approval.requested_for_id == person_id)
    return tx.page(
        session,
        query,
        order_by=[Approval.created_at.desc(), Approval.id],
        limit=limit,
        offset=offset,
    )


def get_approval(session: Session, *, by: Principal, approval_id: uuid.UUID) -> Approval:
    return _visible(session, by, approval_id)


def request(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    key_id: uuid.UUID,
    requested_for_id: uuid.UUID,
    reason: str,
    valid_until: dt.datetime,
) -> Approval:
    """Ask a department leader to approve one draw of a special-room key (K7)."""
    person = visible_person(session, by=by, person_id=requested_for_id)
    key = tx.get(session, Key, key_id, "key")
    if key.status != KeyStatus.ACTIVE:
        raise Conflict(f"key {key.key_number} is retired")
    if key.unit is None or not key.unit.special:
        raise InvalidRequest(f"K7: key {key.key_number} is not a special-room key")
    if not person.active:
        raise Conflict(f"{person.name} is not active")
    now = utcnow()
    if not now < valid_until <= now + MAX_VALIDITY:
        raise InvalidRequest(f"K7: valid_until must lie in the next {MAX_VALIDITY.days} days")
    approval = Approval(
        key_id=key.id,
        requested_for_id=person.id,
        requested_by_id=by.person_id,
        reason=reason,
        valid_until=valid_until,
        created_at=now,
    )
    session.add(approval)
    session.flush()
    tx.log(session, audit, _event(approval, key, "requested", by.actors(), reason=reason))
    return approval


AT_CABINET_VALIDITY = dt.timedelta(days=1)
"""A request made at the cabinet asks for today's draw: the approval is good for a day."""


def leaders_of(session: Session, person: Person) -> list[Person]:
    """The active department leaders who decide for ``person`` (K7), never the person."""
    if person.department_id is None:
        return []
    people = session.scalars(
        select(Person).where(Person.department_id == person.department_id, Person.active)
    ).all()
    return [p for p in people if p.id != person.id and p.has_role(Role.DEPT_LEADER)]


def request_at_cabinet(
    session: Session,
    audit: AuditLog,
    *,
    key_id: uuid.UUID,
    person_id: uuid.UUID,
    cabinet: str,
    now: dt.datetime,
) -> tuple[Approval, list[Person], bool]:
    """K7 from the screen: the person refused a special-room key asks their department
    leader. The badge at the reader is the person's authentication, so the request is theirs
    (``requested_by`` is themself). The ``approval.requested`` event names the leaders it is
    for; the notification routes for that event type carry it to them, with a link to
    decide. A second touch while one is pending asks nothing new (returns ``False``)."""
    person = tx.get(session, Person, person_id, "person")
    key = tx.get(session, Key, key_id, "key")
    if key.unit is None or not key.unit.special:
        raise InvalidRequest(f"K7: key {key.key_number} is not a special-room key")
    leaders = leaders_of(session, person)
    if not leaders:
        raise Conflict("K7: nobody leads this person's department; ask the supervisor")
    open_one = session.scalars(
        select(Approval).where(
            Approval.key_id == key.id, Approval.requested_for_id == person.id,
            Approval.status == ApprovalStatus.PENDING, Approval.valid_until > now,
        )
    ).first()
    if open_one is not None:
        return open_one, leaders, False
    approval = Approval(
        key_id=key.id, requested_for_id=person.id, requested_by_id=person.id,
        reason="requested at the cabinet", valid_until=now + AT_CABINET_VALIDITY,
        created_at=now,
    )
    session.add(approval)
    session.flush()
    tx.log(session, audit, _event(
        approval, key, "requested", [str(person.id)], reason=approval.reason,
        cabinet=cabinet, borrower_name=person.name, staff_no=person.staff_no,
        leaders=[{"id": str(p.id), "name": p.name} for p in leaders],
    ))
    return approval, leaders, True


def _pending(session: Session, by: Principal, approval_id: uuid.UUID) -> Approval:
    approval = _visible(session, by, approval_id)
    if approval.status != ApprovalStatus.PENDING:
        raise Conflict(f"K7: approval is {approval.status.value}, not pending")
    if approval.valid_until <= utcnow():
        raise Conflict("K7: approval has passed its valid_until; it expires unanswered")
    return approval


def _decider(session: Session, by: Principal, approval: Approval) -> uuid.UUID:
    if by.person_id is None:
        raise InvalidRequest("K7: the deciding account must be linked to a person (the leader)")
    if by.person_id == approval.requested_for_id:
        raise Conflict("K7: a leader cannot approve or reject their own draw")
    # The account's scope is what an administrator typed; the person records say who leads
    # the borrower's department (issue 16).
    check_department_leader(session, by, approval.requested_for_id)
    return by.person_id


def approve(
    session: Session, audit: AuditLog, *, by: Principal, approval_id: uuid.UUID, note: str | None
) -> Approval:
    approval = _pending(session, by, approval_id)
    approval.approver_id = _decider(session, by, approval)
    approval.status = ApprovalStatus.APPROVED
    approval.decided_at = utcnow()
    key = session.get(Key, approval.key_id)
    tx.log(session, audit, _event(approval, key, "approved", by.actors(), note=note))
    return approval


def reject(
    session: Session, audit: AuditLog, *, by: Principal, approval_id: uuid.UUID, note: str | None
) -> Approval:
    approval = _pending(session, by, approval_id)
    approval.approver_id = _decider(session, by, approval)
    approval.status = ApprovalStatus.REJECTED
    approval.decided_at = utcnow()
    key = session.get(Key, approval.key_id)
    tx.log(session, audit, _event(approval, key, "rejected", by.actors(), note=note))
    return approval


def expire(
    session: Session, audit: AuditLog, *, by: Principal, approval_id: uuid.UUID, note: str | None
) -> Approval:
    """Withdraw a pending or approved (unused) approval before its time."""
    approval = _visible(session, by, approval_id)
    if approval.status not in OPEN_STATES:
        raise Conflict(f"K7: approval is {approval.status.value}; only open ones expire")
    approval.status = ApprovalStatus.EXPIRED
    approval.decided_at = approval.decided_at or utcnow()
    key = session.get(Key, approval.key_id)
    tx.log(session, audit, _event(approval, key, "expired", by.actors(), note=note))
    return approval


def expire_due(
    session: Session, audit: AuditLog, *, actors: list[str], now: dt.datetime | None = None
) -> list[Approval]:
    """Expire every open approval whose ``valid_until`` has passed (a scheduler's sweep)."""
    now = now or utcnow()
    due = session.scalars(
        select(Approval).where(Approval.status.in_(OPEN_STATES), Approval.valid_until <= now)
    ).all()
    for approval in due:
        approval.status = ApprovalStatus.EXPIRED
        key = session.get(Key, approval.key_id)
        tx.log(session, audit, _event(approval, key, "expired", actors, note="valid_until passed"))
    return list(due)
