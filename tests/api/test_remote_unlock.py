"""Live slot status and remote unlocks (K2) against a whole simulated cabinet.

The admin app runs on the rig's runtime with the rig's cabinet attached, in the rig's event
loop (httpx over ASGI), so a confirmed remote unlock moves the simulated lock for real.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from rig import Rig, close_rig, make_rig

from api.app import create_admin_app
from api.deps import AdminOptions
from kiosk.services import accounts, tokens, tx
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models import Event, Person, PersonRole, Role
from kiosk.store.models_auth import AccountRole
from kiosk.store.types import utcnow

V1 = "http://admin/api/v1"
POLICY = AuthPolicy(hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))


@dataclass
class Admin:
    rig: Rig
    client: httpx.AsyncClient
    admin_a: dict[str, str]
    admin_b: dict[str, str]

    def events(self, type_: str) -> list[Event]:
        return self.rig.events(type_)


def admin_person(rig: Rig, staff_no: str) -> uuid.UUID:
    """A person who holds the admin role in the person records (K2 needs one per admin)."""
    person = Person(staff_no=staff_no, name=f"管理员{staff_no}")
    person.roles = [PersonRole(role=Role.STAFF), PersonRole(role=Role.ADMIN)]
    with tx.write(rig.runtime.audit) as session:
        session.add(person)
    return person.id


def _token(rig: Rig, role: AccountRole, name: str, *,
           person: uuid.UUID | None = None) -> dict[str, str]:
    if person is None and role == AccountRole.ADMIN:
        person = admin_person(rig, f"ADM-{name}")
    with tx.write(rig.runtime.audit) as session:
        account = accounts.create_account(
            session, rig.runtime.audit, by=None, username=name,
            password="correct horse battery", role=role, person_id=person, department_id=None,
            policy=POLICY,
        )
        _, secret = tokens.issue_access_token(session, account=account, policy=POLICY)
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    rig = await make_rig(tmp_path)
    app = create_admin_app(rig.runtime, AdminOptions(auth_policy=POLICY), cabinet=rig.cabinet)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        yield Admin(rig, client, _token(rig, AccountRole.ADMIN, "admin-a"),
                    _token(rig, AccountRole.ADMIN, "admin-b"))
    await close_rig(rig)


def _body(rig: Rig) -> tuple[dict[str, str], int, uuid.UUID]:
    key_number = rig.first_key("UNIT")
    slot, _ = rig.key(key_number)
    _, person = rig.card_of(dept="ENG")
    body = {"key_number": key_number, "person_id": str(person.id), "reason_code": "repair",
            "reason_text": "漏水"}
    return body, slot, person.id


async def _request(a: Admin, body: dict[str, str]) -> str:
    got = await a.client.post(f"{V1}/cabinet/remote-unlocks", json=body, headers=a.admin_a)
    assert got.status_code == 202, got.text
    assert dt.datetime.fromisoformat(got.json()["expires_at"]) > utcnow()
    return str(got.json()["id"])


def _problem(got: httpx.Response, status: int) -> str:
    assert got.status_code == status, got.text
    assert got.headers["content-type"].startswith("application/problem+json")
    return str(got.json()["detail"])


async def test_two_admins_open_the_slot_and_the_take_is_a_loan(admin: Admin) -> None:
    rig = admin.rig
    body, slot, person_id = _body(rig)
    request_id = await _request(admin, body)
    assert not rig.hw.model.is_unlocked(slot)

    confirm = f"{V1}/cabinet/remote-unlocks/{request_id}/confirm"
    same = await admin.client.post(confirm, headers=admin.admin_a)
    assert "two different admins" in _problem(same, 409)
    assert not rig.hw.model.is_unlocked(slot)

    done = await admin.client.post(confirm, headers=admin.admin_b)
    assert done.status_code == 200, done.text
    assert done.json()["slot"] == slot
    assert rig.hw.model.is_unlocked(slot)
    again = await admin.client.post(confirm, headers=admin.admin_b)
    assert "already used" in _problem(again, 409)

    await rig.take(slot)
    loans = rig.open_loans()
    assert [(loan.borrower_id, loan.reason_code) for loan in loans] == [(person_id, "repair")]
    assert rig.cabinet.session.state.value == "idle"

    requested, = admin.events("remote_unlock.requested")
    assert json.loads(requested.actors) == ["account:admin-a"]
    assert json.loads(requested.rules) == ["K2"]
    confirmed, = admin.events("remote_unlock.confirmed")
    assert json.loads(confirmed.actors) == ["account:admin-a", "account:admin-b"]
    intent, = admin.events("draw.intent")
    assert json.loads(intent.rules) == ["K2", "K8"]
    assert json.loads(intent.payload)["remote_admins"] == ["account:admin-a", "account:admin-b"]
    assert {"account:admin-a", "account:admin-b"} <= set(json.loads(intent.actors))
    drawn, = admin.events("key.drawn")
    assert json.loads(drawn.payload)["remote_admins"] == ["account:admin-a", "account:admin-b"]

    live = await admin.client.get(f"{V1}/cabinet/live", headers=admin.admin_b)
    assert live.status_code == 200, live.text
    status = live.json()
    assert status["state"] == "idle" and status["lock_bus_ok"] is True
    row, = [s for s in status["slots"] if s["number"] == slot]
    assert row == {"number": slot, "key_present": False, "key_number": body["key_number"],
                   "on_loan": True, "released": False, "fob": None, "check": None}
    assert status["identity"] is False  # issue 13: a presence-only cabinet says so


async def test_live_status_before_any_draw(admin: Admin) -> None:
    _, slot, _ = _body(admin.rig)
    live = await admin.client.get(f"{V1}/cabinet/live", headers=admin.admin_a)
    assert live.status_code == 200, live.text
    status = live.json()
    assert status["door_open"] is False
    row, = [s for s in status["slots"] if s["number"] == slot]
    assert row["key_present"] is True and row["on_loan"] is False


async def test_an_expired_request_is_refused(admin: Admin) -> None:
    body, slot, _ = _body(admin.rig)
    request_id = await _request(admin, body)
    store = admin.client._transport.app.state.remote_unlocks  # type: ignore[attr-defined]
    store.clock = lambda: utcnow() + dt.timedelta(seconds=121)
    got = await admin.client.post(f"{V1}/cabinet/remote-unlocks/{request_id}/confirm",
                                  headers=admin.admin_b)
    assert "expired" in _problem(got, 409)
    assert not admin.rig.hw.model.is_unlocked(slot)
    assert admin.events("remote_unlock.confirmed") == []


async def test_refused_while_the_cabinet_is_in_use(admin: Admin) -> None:
    rig = admin.rig
    body, slot, _ = _body(rig)
    request_id = await _request(admin, body)
    uid, _ = rig.card_of(dept="ENG", index=1)
    await rig.cabinet.tap(uid)
    assert rig.cabinet.session.state.value == "choosing"
    got = await admin.client.post(f"{V1}/cabinet/remote-unlocks/{request_id}/confirm",
                                  headers=admin.admin_b)
    assert "busy" in _problem(got, 409)
    assert not rig.hw.model.is_unlocked(slot)
    refused, = admin.events("remote_unlock.refused")
    assert json.loads(refused.payload)["code"] == "busy"


async def test_only_admins_and_only_with_a_cabinet(admin: Admin, tmp_path: Path) -> None:
    body, _, _ = _body(admin.rig)
    custodian = _token(admin.rig, AccountRole.CUSTODIAN, "cust")
    got = await admin.client.post(f"{V1}/cabinet/remote-unlocks", json=body, headers=custodian)
    _problem(got, 403)
    missing = {**body, "key_number": "NO-SUCH-KEY"}
    got = await admin.client.post(f"{V1}/cabinet/remote-unlocks", json=missing,
                                  headers=admin.admin_a)
    _problem(got, 404)

    bare = create_admin_app(admin.rig.runtime, AdminOptions(auth_policy=POLICY))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bare),
                                 base_url="http://admin") as client:
        got = await client.get(f"{V1}/cabinet/live", headers=admin.admin_a)
        _problem(got, 503)
        got = await client.post(f"{V1}/cabinet/remote-unlocks", json=body, headers=admin.admin_a)
        _problem(got, 503)
