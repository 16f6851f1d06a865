"""K7 approvals: request, approve, reject, expire."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Body

from api.deps import AuditDep, PrincipalDep, ReadSession, needs
from api.schemas import Instant, Label, Limit, Note, Offset, Out, Page, Strict, page_of
from kiosk.services import approvals, tx
from kiosk.services.authz import Permission as P
from kiosk.store.models import ApprovalStatus

router = APIRouter(tags=["approvals (K7)"])


class ApprovalIn(Strict):
    key_id: uuid.UUID
    requested_for_id: uuid.UUID
    reason: Label
    valid_until: Instant


class DecisionIn(Strict):
    note: Note | None = None


class ApprovalOut(Out):
    id: uuid.UUID
    key_id: uuid.UUID
    requested_for_id: uuid.UUID
    requested_by_id: uuid.UUID | None
    approver_id: uuid.UUID | None
    status: ApprovalStatus
    reason: str
    valid_until: dt.datetime
    created_at: dt.datetime
    decided_at: dt.datetime | None
    used_loan_id: uuid.UUID | None
    updated_at: dt.datetime


class ExpiredOut(Out):
    expired: list[uuid.UUID]


OptionalDecision = Annotated[DecisionIn | None, Body()]


@router.get("/approvals", response_model=Page[ApprovalOut], dependencies=[needs(P.APPROVALS_READ)])
def list_approvals(
    by: PrincipalDep,
    session: ReadSession,
    status: ApprovalStatus | None = None,
    key_id: uuid.UUID | None = None,
    person_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ApprovalOut]:
    rows, total = approvals.list_approvals(
        session,
        by=by,
        status=status,
        key_id=key_id,
        person_id=person_id,
        limit=limit,
        offset=offset,
    )
    return page_of(ApprovalOut, rows, total, limit, offset)


@router.post(
    "/approvals",
    response_model=ApprovalOut,
    status_code=201,
    dependencies=[needs(P.APPROVALS_REQUEST)],
    summary="K7: request a leader's approval for one draw of a special-room key",
)
def request_approval(body: ApprovalIn, by: PrincipalDep, audit: AuditDep) -> ApprovalOut:
    with tx.write(audit) as session:
        return ApprovalOut.model_validate(
            approvals.request(session, audit, by=by, **body.model_dump())
        )


@router.post(
    "/approvals/expire-due",
    response_model=ExpiredOut,
    dependencies=[needs(P.APPROVALS_EXPIRE)],
    summary="K7: expire every open approval whose valid_until has passed",
)
def expire_due(by: PrincipalDep, audit: AuditDep) -> ExpiredOut:
    with tx.write(audit) as session:
        done = approvals.expire_due(session, audit, actors=by.actors())
        return ExpiredOut(expired=[a.id for a in done])


@router.get(
    "/approvals/{approval_id:uuid}",
    response_model=ApprovalOut,
    dependencies=[needs(P.APPROVALS_READ)],
)
def get_approval(approval_id: uuid.UUID, by: PrincipalDep, session: ReadSession) -> ApprovalOut:
    return ApprovalOut.model_validate(
        approvals.get_approval(session, by=by, approval_id=approval_id)
    )


def _decide(
    action: str, approval_id: uuid.UUID, by: PrincipalDep, audit: AuditDep, body: DecisionIn | None
) -> ApprovalOut:
    operation = {
        "approve": approvals.approve,
        "reject": approvals.reject,
        "expire": approvals.expire,
    }[action]
    with tx.write(audit) as session:
        row = operation(
            session, audit, by=by, approval_id=approval_id, note=body.note if body else None
        )
        return ApprovalOut.model_validate(row)


@router.post(
    "/approvals/{approval_id:uuid}/approve",
    response_model=ApprovalOut,
    dependencies=[needs(P.APPROVALS_DECIDE)],
    summary="K7: approve (a leader of the borrower's department; not for oneself)",
)
def approve(
    approval_id: uuid.UUID, by: PrincipalDep, audit: AuditDep, body: OptionalDecision = None
) -> ApprovalOut:
    return _decide("approve", approval_id, by, audit, body)


@router.post(
    "/approvals/{approval_id:uuid}/reject",
    response_model=ApprovalOut,
    dependencies=[needs(P.APPROVALS_DECIDE)],
)
def reject(
    approval_id: uuid.UUID, by: PrincipalDep, audit: AuditDep, body: OptionalDecision = None
) -> ApprovalOut:
    return _decide("reject", approval_id, by, audit, body)


@router.post(
    "/approvals/{approval_id:uuid}/expire",
    response_model=ApprovalOut,
    dependencies=[needs(P.APPROVALS_EXPIRE)],
    summary="K7: withdraw an open approval before its time",
)
def expire(
    approval_id: uuid.UUID, by: PrincipalDep, audit: AuditDep, body: OptionalDecision = None
) -> ApprovalOut:
    return _decide("expire", approval_id, by, audit, body)
