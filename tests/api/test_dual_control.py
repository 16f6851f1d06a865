"""Issue 16, item 3: dual control takes two different people, each entitled in their own
right (K2 remote unlock, K7 approvals, new administrators).

Each test replays the attack from the review: one administrator satisfying a K2 remote
unlock alone through an account they made, a leader account linked to the wrong person
approving a K7 draw, and a fresh administrator account acting before anyone else agreed.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from test_remote_unlock import (
    POLICY,
    V1,
    Admin,
    _body,
    _problem,
    _request,
    _token,
    admin,
    admin_person,
)

from kiosk.services import tokens, tx
from kiosk.store.models import Event
from kiosk.store.models_auth import Account, AccountRole
from kiosk.store.types import utcnow
from tests.api.conftest import World

__all__ = ["admin"]  # the fixture, imported for use here
PASSWORD = "correct horse battery"


def _events(engine: Engine, type_: str) -> list[Event]:
    with Session(engine) as session:
        return list(session.scalars(select(Event).where(Event.type == type_)).all())


# ------------------------------------------------------------------------- K2 (rig)
async def test_k2_one_admin_cannot_confirm_their_own_unlock_through_an_account_they_made(
    admin: Admin,
) -> None:
    rig, client = admin.rig, admin.client
    body, slot, _ = _body(rig)
    request_id = await _request(admin, body)
    confirm = f"{V1}/cabinet/remote-unlocks/{request_id}/confirm"

    # The attack: admin A makes a second admin account over the API, for a person who holds
    # the admin role, and confirms with it. The new account cannot even log in yet.
    sock_person = admin_person(rig, "SOCK1")
    made = await client.post(f"{V1}/accounts", headers=admin.admin_a, json={
        "username": "sock.puppet", "password": PASSWORD, "role": "admin",
        "person_id": str(sock_person)})
    assert made.status_code == 201, made.text
    assert made.json()["awaiting_confirmation"] is True
    login = await client.post(f"{V1}/auth/login",
                              json={"username": "sock.puppet", "password": PASSWORD})
    assert login.status_code == 401 and "confirmation" in login.json()["detail"]
    # Nor can its maker confirm it.
    self_confirm = await client.post(f"{V1}/accounts/{made.json()['id']}/confirm",
                                     headers=admin.admin_a)
    assert "second administrator" in _problem(self_confirm, 409)

    # A second account of the requester's own person: still one person.
    with Session(rig.runtime.engine) as session:
        a_person = session.scalars(select(Account.person_id).where(
            Account.username == "admin-a")).one()
    twin = _token(rig, AccountRole.ADMIN, "admin-a-twin", person=a_person)
    got = await client.post(confirm, headers=twin)
    assert "two different people" in _problem(got, 409)

    # An admin account whose person is no administrator by the person records.
    staff_person = rig.card_of(dept="ENG", index=2)[1].id
    paper_admin = _token(rig, AccountRole.ADMIN, "paper-admin", person=staff_person)
    got = await client.post(confirm, headers=paper_admin)
    assert "admin role" in _problem(got, 403)
    assert not rig.hw.model.is_unlocked(slot)

    # Even confirmed by a third admin, an account the requester made after the request
    # does not count as the second person for it.
    confirmed = await client.post(f"{V1}/accounts/{made.json()['id']}/confirm",
                                  headers=admin.admin_b)
    assert confirmed.status_code == 200, confirmed.text
    login = await client.post(f"{V1}/auth/login",
                              json={"username": "sock.puppet", "password": PASSWORD})
    assert login.status_code == 200, login.text
    sock = {"Authorization": f"Bearer {login.json()['access_token']}"}
    got = await client.post(confirm, headers=sock)
    assert "made by the requester after the request" in _problem(got, 409)
    assert not rig.hw.model.is_unlocked(slot)
    assert admin.events("remote_unlock.confirmed") == []

    # The refusals did not use the request up: a real second administrator opens the slot.
    done = await client.post(confirm, headers=admin.admin_b)
    assert done.status_code == 200, done.text
    assert rig.hw.model.is_unlocked(slot)


async def test_k2_the_requester_must_be_an_administrator_in_person(admin: Admin) -> None:
    body, _, _ = _body(admin.rig)
    unlinked = _token(admin.rig, AccountRole.CUSTODIAN, "cust-x")  # not even the permission
    got = await admin.client.post(f"{V1}/cabinet/remote-unlocks", json=body, headers=unlinked)
    _problem(got, 403)
    # An admin account linked to no person (as every account was before issue 16).
    with tx.write(admin.rig.runtime.audit) as session:
        account = Account(username="no-person", password_hash="x", role=AccountRole.ADMIN)
        session.add(account)
        session.flush()
        _, secret = tokens.issue_access_token(session, account=account, policy=POLICY)
    got = await admin.client.post(f"{V1}/cabinet/remote-unlocks", json=body,
                                  headers={"Authorization": f"Bearer {secret}"})
    assert "admin role" in _problem(got, 403)
    assert admin.events("remote_unlock.requested") == []


# ---------------------------------------------------------------------- K7 (world)
def test_k7_only_a_leader_of_the_borrowers_department_by_the_person_records(
    world: World,
) -> None:
    custodian = world.token(AccountRole.CUSTODIAN, person=world.ids["custodian"])
    until = (utcnow() + dt.timedelta(hours=4)).isoformat()
    made = world.client.post(f"{V1}/approvals", headers=custodian, json={
        "key_id": str(world.ids["key:E-PWR"]), "requested_for_id": str(world.ids["staff_a"]),
        "reason": "配电柜检修", "valid_until": until})
    assert made.status_code == 201, made.text
    approve = f"{V1}/approvals/{made.json()['id']}/approve"

    # The attack: an account scoped to department A, linked to the leader of department B.
    wrong_leader = world.token(AccountRole.DEPT_LEADER, dept="A", person=world.ids["leader_b"])
    got = world.client.post(approve, headers=wrong_leader)
    assert got.status_code == 403 and "K7" in got.json()["detail"], got.text
    # ...or to someone of department A who leads nothing.
    colleague = world.person("A002", dept="A")
    not_leader = world.token(AccountRole.DEPT_LEADER, dept="A", person=colleague)
    assert world.client.post(approve, headers=not_leader).status_code == 403
    assert world.client.get(f"{V1}/approvals/{made.json()['id']}",
                            headers=custodian).json()["status"] == "pending"

    leader_a = world.token(AccountRole.DEPT_LEADER, dept="A", person=world.ids["leader_a"])
    ok = world.client.post(approve, headers=leader_a)
    assert ok.status_code == 200 and ok.json()["approver_id"] == str(world.ids["leader_a"])


# ------------------------------------------------------------ new administrators (world)
def test_a_new_admin_waits_for_a_second_admin_and_its_creation_names_its_creator(
    world: World,
) -> None:
    first = world.token(AccountRole.ADMIN, username="first.admin")
    second = world.token(AccountRole.ADMIN, username="second.admin")
    made = world.client.post(f"{V1}/accounts", headers=first, json={
        "username": "new.admin", "password": PASSWORD, "role": "admin"})
    assert made.status_code == 201
    account = made.json()
    me = world.client.get(f"{V1}/auth/me", headers=first).json()["account"]
    assert account["awaiting_confirmation"] is True and account["created_by_id"] == me["id"]
    created, = [e for e in _events(world.runtime.engine, "account.created")
                if json.loads(e.payload)["username"] == "new.admin"]
    assert json.loads(created.actors) == ["account:first.admin"]
    assert json.loads(created.payload)["created_by"] == "account:first.admin"

    login = {"username": "new.admin", "password": PASSWORD}
    assert world.client.post(f"{V1}/auth/login", json=login).status_code == 401
    confirm = f"{V1}/accounts/{account['id']}/confirm"
    assert world.client.post(confirm, headers=first).status_code == 409
    done = world.client.post(confirm, headers=second)
    assert done.status_code == 200 and done.json()["awaiting_confirmation"] is False
    assert done.json()["confirmed_by_id"] != me["id"]
    assert world.client.post(f"{V1}/auth/login", json=login).status_code == 200
    confirmed, = _events(world.runtime.engine, "account.confirmed")
    assert json.loads(confirmed.actors) == ["account:second.admin"]

    # A promotion is a new administrator too; a non-admin account made is usable at once.
    made = world.client.post(f"{V1}/accounts", headers=first, json={
        "username": "new.auditor", "password": PASSWORD, "role": "auditor"})
    assert made.json()["awaiting_confirmation"] is False
    promoted = world.client.patch(f"{V1}/accounts/{made.json()['id']}", headers=first,
                                  json={"role": "admin"})
    assert promoted.json()["awaiting_confirmation"] is True
    got = world.client.post(f"{V1}/auth/login",
                            json={"username": "new.auditor", "password": PASSWORD})
    assert got.status_code == 401


def test_console_made_admins_act_at_once(world: World) -> None:
    """``kiosk admin create`` on the device (the first administrator) is exempt."""
    headers = world.token(AccountRole.ADMIN, username="console.admin")  # by=None: the console
    me = world.client.get(f"{V1}/auth/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["account"]["awaiting_confirmation"] is False
    assert me.json()["account"]["created_by_id"] is None
