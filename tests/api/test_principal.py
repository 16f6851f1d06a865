"""The caller of a request (``kiosk.services.authz.Principal``): what it may do and how it
appears in the log. Unit tests: the role × endpoint matrix drives the same code through
HTTP, these pin the messages and edges the matrix does not look at (mutation testing
found them unpinned; docs/testing.md)."""

from __future__ import annotations

import uuid

import pytest

from kiosk.errors import NotFound, PermissionDenied
from kiosk.services.authz import ROLE_PERMISSIONS, Permission, Principal, parse_scopes
from kiosk.store.models_auth import AccountRole, TokenKind

DEPT_A, DEPT_B = uuid.uuid4(), uuid.uuid4()


def principal(role: AccountRole = AccountRole.CUSTODIAN, *, person: uuid.UUID | None = None,
              department: uuid.UUID | None = None) -> Principal:
    return Principal(account_id=uuid.uuid4(), username="li.na", role=role, person_id=person,
                     department_id=department, permissions=ROLE_PERMISSIONS[role],
                     token_id=uuid.uuid4(), token_kind=TokenKind.ACCESS)


def test_actors_name_the_account_and_the_person_behind_it() -> None:
    person = uuid.uuid4()
    assert principal(person=person).actors() == ["account:li.na", str(person)]
    assert principal().actors() == ["account:li.na"]


def test_can_and_require_follow_the_roles_permissions() -> None:
    custodian = principal()
    assert custodian.can(Permission.KEYS_INTAKE)
    assert not custodian.can(Permission.ACCOUNTS_WRITE)
    custodian.require(Permission.KEYS_INTAKE)
    with pytest.raises(PermissionDenied, match="role custodian lacks permission accounts:write"):
        custodian.require(Permission.ACCOUNTS_WRITE)


def test_another_departments_record_looks_absent() -> None:
    leader = principal(AccountRole.DEPT_LEADER, department=DEPT_A)
    assert leader.sees_department(DEPT_A) and not leader.sees_department(DEPT_B)
    leader.check_department(DEPT_A, "person")
    with pytest.raises(NotFound, match=r"^person does not exist$"):
        leader.check_department(DEPT_B, "person")
    assert principal(AccountRole.ADMIN).sees_department(DEPT_B)  # unscoped sees all


def test_unknown_scope_is_named() -> None:
    assert parse_scopes(["keys:read", "events:read"]) == {Permission.KEYS_READ,
                                                          Permission.EVENTS_READ}
    with pytest.raises(PermissionDenied, match="unknown scope 'keys:steal'"):
        parse_scopes(["keys:read", "keys:steal"])
