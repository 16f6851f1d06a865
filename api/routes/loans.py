"""Loans, read-only: which keys are out, with whom, due when; overdue ones (K9, K10)."""

from __future__ import annotations

import datetime as dt
import uuid

from fastapi import APIRouter
from pydantic import Field

from api.deps import PrincipalDep, ReadSession, needs
from api.schemas import Instant, Limit, Offset, Out, Page
from kiosk.services import loans
from kiosk.services.authz import Permission as P
from kiosk.services.loans import LoanState
from kiosk.store.models import Loan
from kiosk.store.types import utcnow

router = APIRouter(tags=["loans"])


class LoanOut(Out):
    id: uuid.UUID
    key_id: uuid.UUID
    key_number: str
    cabinet_id: uuid.UUID
    borrower_id: uuid.UUID
    issuer_id: uuid.UUID | None
    duty_manager_id: uuid.UUID | None
    approval_id: uuid.UUID | None
    authorization_id: uuid.UUID | None
    quantity: int
    reason_code: str
    reason_text: str | None
    drawn_at: dt.datetime
    due_at: dt.datetime
    returned_at: dt.datetime | None
    returned_by_id: uuid.UUID | None
    received_by_id: uuid.UUID | None
    returned_by_other: bool
    overdue: bool = Field(description="K9: still out and past due.")

    @classmethod
    def of(cls, loan: Loan, now: dt.datetime) -> LoanOut:
        return cls(
            id=loan.id,
            key_id=loan.key_id,
            key_number=loan.key.key_number,
            cabinet_id=loan.cabinet_id,
            borrower_id=loan.borrower_id,
            issuer_id=loan.issuer_id,
            duty_manager_id=loan.duty_manager_id,
            approval_id=loan.approval_id,
            authorization_id=loan.authorization_id,
            quantity=loan.quantity,
            reason_code=loan.reason_code,
            reason_text=loan.reason_text,
            drawn_at=loan.drawn_at,
            due_at=loan.due_at,
            returned_at=loan.returned_at,
            returned_by_id=loan.returned_by_id,
            received_by_id=loan.received_by_id,
            returned_by_other=loan.returned_by_other,
            overdue=loans.is_overdue(loan, now),
        )


@router.get("/loans", response_model=Page[LoanOut], dependencies=[needs(P.LOANS_READ)],
            summary="Loans, newest draw first; overdue=true: the keys out past due, most "
                    "overdue first (K9)")
def list_loans(
    by: PrincipalDep,
    session: ReadSession,
    state: LoanState = LoanState.ALL,
    overdue: bool | None = None,
    person_id: uuid.UUID | None = None,
    key_id: uuid.UUID | None = None,
    drawn_since: Instant | None = None,
    drawn_before: Instant | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[LoanOut]:
    now = utcnow()
    rows, total = loans.list_loans(
        session,
        by=by,
        state=state,
        overdue=overdue,
        person_id=person_id,
        key_id=key_id,
        drawn_since=drawn_since,
        drawn_before=drawn_before,
        limit=limit,
        offset=offset,
        now=now,
    )
    items = [LoanOut.of(r, now) for r in rows]
    return Page[LoanOut](items=items, total=total, limit=limit, offset=offset)


@router.get("/loans/{loan_id:uuid}", response_model=LoanOut, dependencies=[needs(P.LOANS_READ)])
def get_loan(loan_id: uuid.UUID, by: PrincipalDep, session: ReadSession) -> LoanOut:
    return LoanOut.of(loans.get_loan(session, by=by, loan_id=loan_id), utcnow())
