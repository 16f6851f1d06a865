"""Accounts, login, lockout, rate limit, access and API tokens, and ``kiosk admin create``."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.app import create_admin_app
from api.deps import AdminOptions
from kiosk.config import Settings
from kiosk.runtime import Runtime
from kiosk.services import accounts, credentials, tokens, tx
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models import Event
from kiosk.store.models_auth import Account, AccountRole, ApiToken
from tests.api.conftest import FAST_HASHER, World

V1 = "/api/v1"
PASSWORD = "correct horse battery"


def make_account(world: World, username: str, role: AccountRole = AccountRole.ADMIN) -> None:
    world.token(role, username=username)


def login(client: TestClient, username: str, password: str = PASSWORD) -> tuple[int, dict]:
    response = client.post(f"{V1}/auth/login", json={"username": username, "password": password})
    return response.status_code, {**response.json(), "_headers": dict(response.headers)}


def test_login_issues_a_short_lived_token_that_logout_ends(world: World) -> None:
    make_account(world, "zhang.wei", AccountRole.SUPERVISOR)
    status, body = login(world.client, "zhang.wei")
    assert status == 200, body
    assert body["token_type"] == "bearer" and body["account"]["role"] == "supervisor"
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert dt.timedelta(minutes=14) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=15)
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    me = world.client.get(f"{V1}/auth/me", headers=headers).json()
    assert me["account"]["username"] == "zhang.wei" and "alarms:write" in me["permissions"]
    assert "accounts:read" not in me["permissions"]
    # Only the hash of the secret is stored.
    with Session(world.runtime.engine) as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
    assert body["access_token"] not in stored
    assert credentials.token_digest(body["access_token"]) in stored

    assert world.client.post(f"{V1}/auth/logout", headers=headers).status_code == 204
    after = world.client.get(f"{V1}/auth/me", headers=headers)
    assert after.status_code == 401 and after.headers["www-authenticate"] == "Bearer"
    assert after.headers["content-type"] == "application/problem+json"


def test_wrong_password_unknown_user_and_inactive_account_look_the_same(world: World) -> None:
    make_account(world, "li.na")
    wrong = login(world.client, "li.na", "not the password")
    unknown = login(world.client, "nobody", PASSWORD)
    assert wrong[0] == unknown[0] == 401
    assert wrong[1]["detail"] == unknown[1]["detail"] == "wrong username or password"
    admin = world.token(AccountRole.ADMIN)
    account_id = _account_id(world, "li.na")
    world.client.patch(f"{V1}/accounts/{account_id}", headers=admin, json={"active": False})
    assert login(world.client, "li.na")[0] == 401


def _account_id(world: World, username: str) -> str:
    with Session(world.runtime.engine) as session:
        return str(session.scalars(select(Account.id).where(Account.username == username)).one())


def test_repeated_failures_lock_the_account_until_an_admin_unlocks_it(world: World) -> None:
    make_account(world, "wang.fang", AccountRole.CUSTODIAN)
    for _ in range(world.policy.max_failures):
        assert login(world.client, "wang.fang", "guess guess guess")[0] == 401
    status, body = login(world.client, "wang.fang")  # even the right password
    assert status == 429
    retry = int(body["_headers"]["retry-after"])
    assert 0 < retry <= world.policy.lockout_minutes * 60
    assert body["type"] == "urn:keycabinet:problem:too-many-attempts"

    admin = world.token(AccountRole.ADMIN)
    unlocked = world.client.post(
        f"{V1}/accounts/{_account_id(world, 'wang.fang')}/unlock", headers=admin
    )
    assert unlocked.status_code == 200
    assert login(world.client, "wang.fang")[0] == 200
    with Session(world.runtime.engine) as session:
        types = session.scalars(select(Event.type).where(Event.type.like("auth.%"))).all()
    assert types.count("auth.login_failed") == world.policy.max_failures
    assert "auth.account_locked" in types and "auth.login_refused" in types


def test_one_address_is_rate_limited_across_usernames(runtime: Runtime) -> None:
    policy = AuthPolicy(hasher=FAST_HASHER, remote_max_attempts=3)
    with TestClient(create_admin_app(runtime, AdminOptions(auth_policy=policy))) as client:
        for name in ("a1", "a2", "a3"):
            assert login(client, name)[0] == 401
        assert login(client, "a4")[0] == 429


def test_api_tokens_are_scoped_revocable_and_limited_to_the_role(world: World) -> None:
    admin = world.token(AccountRole.ADMIN)
    make_account(world, "integration", AccountRole.AUDITOR)
    account_id = _account_id(world, "integration")
    too_much = world.client.post(
        f"{V1}/api-tokens",
        headers=admin,
        json={"account_id": account_id, "name": "sync", "scopes": ["keys:write"]},
    )
    assert too_much.status_code == 422 and "keys:write" in too_much.json()["detail"]
    made = world.client.post(
        f"{V1}/api-tokens",
        headers=admin,
        json={"account_id": account_id, "name": "sync", "scopes": ["keys:read", "events:read"]},
    )
    assert made.status_code == 201, made.text
    secret, info = made.json()["token"], made.json()["info"]
    assert secret.startswith("kcp_") and info["prefix"] == secret[:12]
    token = {"Authorization": f"Bearer {secret}"}
    assert world.client.get(f"{V1}/keys", headers=token).status_code == 200
    assert world.client.get(f"{V1}/people", headers=token).status_code == 403  # outside scopes
    listed = world.client.get(f"{V1}/api-tokens", headers=admin).json()
    assert [t["id"] for t in listed] == [info["id"]] and listed[0]["last_used_at"] is not None
    revoked = world.client.post(f"{V1}/api-tokens/{info['id']}/revoke", headers=admin)
    assert revoked.json()["revoked_at"] is not None
    assert world.client.get(f"{V1}/keys", headers=token).status_code == 401
    assert world.client.post(f"{V1}/auth/logout", headers=token).status_code == 401


def test_expired_access_token_is_refused(world: World) -> None:
    with tx.write(world.audit) as session:
        account = accounts.create_account(
            session, world.audit, by=None, username="old", password=PASSWORD,
            role=AccountRole.ADMIN, policy=world.policy,
        )
        _, secret = tokens.issue_access_token(
            session, account=account, policy=world.policy,
            now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16),
        )
    got = world.client.get(f"{V1}/auth/me", headers={"Authorization": f"Bearer {secret}"})
    assert got.status_code == 401
    garbage = world.client.get(f"{V1}/auth/me", headers={"Authorization": "Bearer kca_nope"})
    assert garbage.status_code == 401


def test_password_change_ends_other_sessions(world: World) -> None:
    make_account(world, "chen.jing")
    first = login(world.client, "chen.jing")[1]["access_token"]
    second = login(world.client, "chen.jing")[1]["access_token"]
    changed = world.client.post(
        f"{V1}/auth/password",
        headers={"Authorization": f"Bearer {second}"},
        json={"current_password": PASSWORD, "new_password": "a much longer secret"},
    )
    assert changed.status_code == 204
    assert world.client.get(
        f"{V1}/auth/me", headers={"Authorization": f"Bearer {first}"}
    ).status_code == 401
    assert world.client.get(
        f"{V1}/auth/me", headers={"Authorization": f"Bearer {second}"}
    ).status_code == 200
    assert login(world.client, "chen.jing", "a much longer secret")[0] == 200


def test_department_leader_account_needs_a_department(world: World) -> None:
    admin = world.token(AccountRole.ADMIN)
    body = {"username": "leader", "password": PASSWORD, "role": "dept_leader"}
    assert world.client.post(f"{V1}/accounts", headers=admin, json=body).status_code == 422
    scoped = {**body, "department_id": str(world.ids["dept:A"])}
    made = world.client.post(f"{V1}/accounts", headers=admin, json=scoped)
    assert made.status_code == 201 and made.json()["department_id"] == str(world.ids["dept:A"])
    assert "password" not in made.json() and "password_hash" not in made.json()
    dup = world.client.post(f"{V1}/accounts", headers=admin, json=scoped)
    assert dup.status_code == 409


def test_kiosk_admin_create_makes_the_first_admin(tmp_path: Path) -> None:
    env = {**os.environ, "KIOSK_DATA_DIR": str(tmp_path / "var"), "KIOSK_DATABASE_URL": ""}
    made = subprocess.run(
        [sys.executable, "-m", "kiosk", "admin", "create", "root", "--password-stdin"],
        input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=120,
    )
    assert made.returncode == 0, made.stderr
    assert "created admin account root" in made.stdout
    short = subprocess.run(
        [sys.executable, "-m", "kiosk", "admin", "create", "other", "--password-stdin"],
        input="short\n", env=env, capture_output=True, text=True, timeout=120,
    )
    assert short.returncode == 2 and "10 to 256 characters" in short.stderr
    runtime = Runtime.open(Settings(data_dir=tmp_path / "var"))
    try:
        with TestClient(create_admin_app(runtime)) as client:
            status, body = login(client, "root")
            assert status == 200 and body["account"]["role"] == "admin"
    finally:
        runtime.close()
