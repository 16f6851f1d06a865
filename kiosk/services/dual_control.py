"""Dual control that takes two different people, each entitled in their own right.

Why (issue 16, item 3): an administrator once created a second admin account over the API
and confirmed their own K2 remote unlock with it, and a department-leader *account* linked
to a person who led another department approved a K7 draw. An account is a login, not a
person, and an account's role is whatever an administrator typed. So:

- A new administrator made (or promoted) over the API cannot act until a *different*
  administrator confirms it. ``kiosk admin create`` on the device is exempt: whoever has a
  shell on the cabinet already holds its database and keys, and the first administrator
  has nobody to confirm it.
- K2: the requester and the confirmer of a remote unlock are each linked to a person who
  holds the admin role in the person records; the two persons differ; and the confirmer's
  account existed before the request or was made by someone other than the requester.
- K7: whoever decides an approval is, by the person records, a department leader of the
  borrower's own department, not only an account scoped to it.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict, PermissionDenied
from kiosk.services import tx
from kiosk.services.accounts import visible_account
from kiosk.services.authz import Principal
from kiosk.services.credentials import actors_of
from kiosk.store.models import Person, Role
from kiosk.store.models_auth import Account


# --------------------------------------------------------------- new administrators
def confirm_account(
    session: Session, audit: AuditLog, *, by: Principal | None, account_id: uuid.UUID
) -> Account:
    """A second administrator lets a new administrator account act (``by=None``: the device
    console, ``kiosk admin confirm``, for a cabinet with one administrator so far)."""
    account = visible_account(session, by, account_id)
    if not account.awaiting_confirmation:
        raise Conflict(f"account {account.username} is not awaiting confirmation")
    if by is None:
        pass
    elif by.account_id in (account.id, account.created_by_id):
        raise Conflict("a new administrator is confirmed by a second administrator, "
                       "not by the one who made it")
    else:
        creator = session.get(Account, account.created_by_id) if account.created_by_id else None
        if creator is not None and by.person_id is not None and by.person_id == creator.person_id:
            raise Conflict("the confirming administrator is the same person who made it")
    account.awaiting_confirmation = False
    account.confirmed_by_id = by.account_id if by else None
    tx.log(session, audit, NewEvent(
        type="account.confirmed", actors=actors_of(by),
        payload={"account": str(account.id), "username": account.username,
                 "role": account.role.value,
                 "created_by": str(account.created_by_id) if account.created_by_id else None},
    ))
    return account


# -------------------------------------------------------------------- K2 remote unlock
def entitled_admin(session: Session, by: Principal) -> Person:
    """The person behind ``by`` when the person records make them an administrator."""
    person = session.get(Person, by.person_id) if by.person_id else None
    if person is None or not person.active or not person.has_role(Role.ADMIN):
        raise PermissionDenied(
            "K2: a remote unlock takes two administrators in person: this account must be "
            "linked to an active person who holds the admin role"
        )
    return person


def check_second_admin(
    session: Session,
    *,
    by: Principal,
    requester_account: uuid.UUID,
    requester_person: uuid.UUID,
    requested_at: dt.datetime,
) -> Person:
    """``by`` may confirm a remote unlock another administrator asked for at ``requested_at``."""
    person = entitled_admin(session, by)
    if person.id == requester_person:
        raise Conflict("K2: a remote unlock needs two different people; the requester "
                       "cannot confirm it with another account")
    account = tx.get(session, Account, by.account_id, "account")
    if account.created_at >= requested_at and account.created_by_id == requester_account:
        raise Conflict("K2: the confirming account was made by the requester after the "
                       "request; a second administrator confirms with their own account")
    return person


# ------------------------------------------------------------------------ K7 approvals
def check_department_leader(session: Session, by: Principal, borrower_id: uuid.UUID) -> None:
    """``by`` is, by the person records, a leader of the borrower's department (K7)."""
    leader = session.get(Person, by.person_id) if by.person_id else None
    borrower = session.get(Person, borrower_id)
    if (
        leader is None
        or borrower is None
        or not leader.active
        or not leader.has_role(Role.DEPT_LEADER)
        or leader.department_id is None
        or leader.department_id != borrower.department_id
    ):
        raise PermissionDenied(
            "K7: only a leader of the borrower's own department decides, by the person "
            "records (the linked person must hold dept_leader in that department)"
        )
