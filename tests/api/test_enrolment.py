"""Enrol a card by tapping it (issue 11) over the admin API, against a whole simulated
cabinet: ``POST /people/{id}/cards/enrol`` answers 202 with the deadline, the next unknown
card tapped at the cabinet is bound, ``GET …/enrol/{id}`` tells the outcome."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from rig import Rig, close_rig, make_rig

from api.app import create_admin_app
from api.deps import AdminOptions
from kiosk.services import accounts, tokens, tx
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models import Department, Person
from kiosk.store.models_auth import AccountRole

V1 = "http://admin/api/v1"
POLICY = AuthPolicy(hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))
NEW_UID = "E2B0C0D0"


def _headers(rig: Rig, role: AccountRole, *, department: uuid.UUID | None = None
             ) -> dict[str, str]:
    with tx.write(rig.runtime.audit) as session:
        account = accounts.create_account(
            session, rig.runtime.audit, by=None, username=f"{role.value}-{uuid.uuid4().hex[:6]}",
            password="correct horse battery", role=role, department_id=department, policy=POLICY,
        )
        _, secret = tokens.issue_access_token(session, account=account, policy=POLICY)
    return {"Authorization": f"Bearer {secret}"}


def _person(rig: Rig, department: uuid.UUID | None = None) -> uuid.UUID:
    person = Person(staff_no=f"N-{uuid.uuid4().hex[:6]}", name="新员工", department_id=department)
    with tx.write(rig.runtime.audit) as session:
        session.add(person)
    return person.id


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Rig, httpx.AsyncClient]]:
    rig = await make_rig(tmp_path)
    app = create_admin_app(rig.runtime, AdminOptions(auth_policy=POLICY), cabinet=rig.cabinet)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://admin") as client:
        yield rig, client
    await close_rig(rig)


async def test_enrol_then_tap_binds_the_card(api: tuple[Rig, httpx.AsyncClient]) -> None:
    rig, client = api
    custodian = _headers(rig, AccountRole.CUSTODIAN)
    person = _person(rig)

    started = await client.post(f"{V1}/people/{person}/cards/enrol", headers=custodian)
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["state"] == "waiting" and body["seconds_left"] == 60
    url = f"{V1}/people/{person}/cards/enrol/{body['id']}"

    again = await client.post(f"{V1}/people/{_person(rig)}/cards/enrol", headers=custodian)
    assert again.status_code == 409  # one enrolment waits at a time

    known_uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(known_uid)
    waiting = (await client.get(url, headers=custodian)).json()
    assert waiting["state"] == "waiting" and waiting["refused"] == 1

    await rig.cabinet.tap(NEW_UID)
    done = (await client.get(url, headers=custodian)).json()
    assert done["state"] == "enrolled" and done["card_uid"] == NEW_UID
    cards = (await client.get(f"{V1}/cards", params={"person_id": str(person)},
                              headers=custodian)).json()
    assert [c["uid"] for c in cards["items"]] == [NEW_UID]


async def test_enrolment_checks_like_the_other_card_operations(
        api: tuple[Rig, httpx.AsyncClient]) -> None:
    rig, client = api
    person = _person(rig)
    auditor = await client.post(f"{V1}/people/{person}/cards/enrol",
                                headers=_headers(rig, AccountRole.AUDITOR))
    assert auditor.status_code == 403  # cards:write is needed
    with tx.write(rig.runtime.audit) as session:
        other = Department(code="OTHER", name="其他部门")
        session.add(other)
    leader = _headers(rig, AccountRole.DEPT_LEADER, department=other.id)
    foreign = await client.post(f"{V1}/people/{person}/cards/enrol", headers=leader)
    assert foreign.status_code in (403, 404)
    assert rig.events("card.enrolment_started") == []

    detached = create_admin_app(rig.runtime, AdminOptions(auth_policy=POLICY))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=detached),
                                 base_url="http://admin") as plain:
        missing = await plain.post(f"{V1}/people/{person}/cards/enrol",
                                   headers=_headers(rig, AccountRole.CUSTODIAN))
    assert missing.status_code == 503
