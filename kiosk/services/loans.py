"""Loans, read-only: which keys are out, with whom, since when, due when (K9, K10).

Loans are written by the cabinet on draw and return; the admin API only reads them. A
department-scoped account sees the loans of its own department's borrowers.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models import Loan, Person
from kiosk.store.types import utcnow


class LoanState(enum.StrEnum):
    OPEN = "open"
    RETURNED = "returned"
    ALL = "all"


def is_overdue(loan: Loan, at: dt.datetime) -> bool:
    return loan.returned_at is None and loan.due_at < at


def list_loans(
    session: Session,
    *,
    by: Principal,
    state: LoanState,
    overdue: bool | None,
    person_id: uuid.UUID | None,
    key_id: uuid.UUID | None,
    drawn_since: dt.datetime | None,
    drawn_before: dt.datetime | None,
    limit: int,
    offset: int,
    now: dt.datetime | None = None,
) -> tuple[list[Loan], int]:
    """``overdue=True``: open and past due (K9's "long overdue"), most overdue first;
    ``False``: everything else, newest draw first."""
    now = now or utcnow()
    # a page shows each loan's key number: one IN query for the page, not one per loan
    query = select(Loan).join(Person, Loan.borrower_id == Person.id).options(
        selectinload(Loan.key))
    if by.department_id is not None:
        query = query.where(Person.department_id == by.department_id)
    if state == LoanState.OPEN:
        query = query.where(Loan.returned_at.is_(None))
    elif state == LoanState.RETURNED:
        query = query.where(Loan.returned_at.is_not(None))
    if overdue is True:
        query = query.where(Loan.returned_at.is_(None), Loan.due_at < now)
    elif overdue is False:
        query = query.where((Loan.returned_at.is_not(None)) | (Loan.due_at >= now))
    if person_id is not None:
        query = query.where(Loan.borrower_id == person_id)
    if key_id is not None:
        query = query.where(Loan.key_id == key_id)
    if drawn_since is not None:
        query = query.where(Loan.drawn_at >= drawn_since)
    if drawn_before is not None:
        query = query.where(Loan.drawn_at < drawn_before)
    # K9: the overdue list leads with the key to chase first (most overdue), as the
    # cabinet's overdue report and the hub's overdue list do; the others newest draw first.
    order_by = ([Loan.due_at, Loan.id] if overdue is True
                else [Loan.drawn_at.desc(), Loan.id])
    return tx.page(session, query, order_by=order_by, limit=limit, offset=offset)


def get_loan(session: Session, *, by: Principal, loan_id: uuid.UUID) -> Loan:
    loan = tx.get(session, Loan, loan_id, "loan")
    by.check_department(loan.borrower.department_id, f"loan {loan_id}")
    return loan
