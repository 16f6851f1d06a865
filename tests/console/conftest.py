"""Console tests over HTTP (TestClient on the real admin app and a real SQLite database) and
in a real headless Chromium (``test_browser_*``, on a real ``kiosk run`` daemon)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kiosk.store.models_auth import AccountRole
from tests.api import conftest as api_fixtures
from tests.api.conftest import World

# the admin API's fixtures, reused: a real app on a real SQLite database with a small tower
policy = api_fixtures.policy
world = api_fixtures.world

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ROLES = [AccountRole.ADMIN, AccountRole.SUPERVISOR, AccountRole.DEPT_LEADER,
         AccountRole.DUTY_MANAGER, AccountRole.CUSTODIAN, AccountRole.AUDITOR]


class ConsoleUser:
    """One browser's worth of cookies, signed in to the console through its own form."""

    def __init__(self, world: World, username: str | None = None) -> None:
        self.world = world
        self.client = TestClient(world.client.app, base_url="http://testserver",
                                 follow_redirects=False)
        self.username = username
        self.csrf = ""

    def login(self, username: str, password: str = PASSWORD) -> Any:
        page = self.client.get("/console/login")
        assert page.status_code == 200, page.text
        token = CSRF.search(page.text)
        assert token
        response = self.client.post(
            "/console/login",
            data={"csrf": token.group(1), "username": username, "password": password},
            headers={"Origin": "http://testserver"},
        )
        if response.status_code == 303:
            self.username = username
            self.refresh_csrf()
        return response

    def refresh_csrf(self) -> None:
        page = self.client.get("/console/")
        found = CSRF.search(page.text)
        assert found, page.text[:2000]
        self.csrf = found.group(1)

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        body = {"csrf": self.csrf, **(data or {})}
        headers = {"Origin": "http://testserver", **kw.pop("headers", {})}
        return self.client.post(path, data=body, headers=headers, **kw)


def console_user(world: World, role: AccountRole, *, dept: str | None = None,
                 person: Any = None) -> ConsoleUser:
    """A fresh account of ``role`` (scoped to ``dept``), signed in to the console."""
    name = f"{role.value.replace('_', '-')}-{len(world.ids)}-{id(object()) % 100000}"
    world.token(role, dept=dept, person=person, username=name)
    user = ConsoleUser(world)
    response = user.login(name)
    assert response.status_code == 303, response.text
    return user


@pytest.fixture
def as_role(world: World) -> Any:
    def make(role: AccountRole, dept: str | None = None, person: Any = None) -> ConsoleUser:
        return console_user(world, role, dept=dept, person=person)
    return make
