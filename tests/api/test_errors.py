"""One error shape for every failure: RFC 9457 problem details, also for 404/405/422/500."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.testclient import TestClient

from api.app import create_admin_app
from api.deps import AdminOptions
from kiosk.runtime import Runtime
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World

V1 = "/api/v1"
PROBLEM_KEYS = {"type", "title", "status", "instance"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS and body["status"] == status
    assert body["type"].startswith("urn:keycabinet:problem:")
    return body


def test_every_kind_of_failure_is_a_problem_document(world: World) -> None:
    admin = world.token(AccountRole.ADMIN)
    auditor = world.token(AccountRole.AUDITOR)
    c = world.client
    assert_problem(c.get(f"{V1}/no-such-thing", headers=admin), 404)
    assert_problem(c.get(f"{V1}/people/00000000-0000-0000-0000-000000000000", headers=admin), 404)
    not_allowed = assert_problem(c.put(f"{V1}/people", headers=admin), 405)
    assert not_allowed["instance"] == f"{V1}/people"
    assert c.put(f"{V1}/people", headers=admin).headers["allow"] == "GET, POST"
    assert_problem(c.get(f"{V1}/people"), 401)
    assert_problem(c.post(f"{V1}/people", headers=auditor, json={}), 403)
    dup = {"code": "ENG", "name": "工程部"}
    assert_problem(c.post(f"{V1}/departments", headers=admin, json=dup), 409)
    # A path that cannot be an id names no resource.
    assert_problem(c.get(f"{V1}/people/not-a-uuid", headers=admin), 404)
    invalid = assert_problem(c.get(f"{V1}/keys", headers=admin, params={"limit": "x"}), 422)
    assert invalid["errors"][0]["loc"] == ["query", "limit"]


def test_inputs_are_bounded_and_unknown_fields_rejected(world: World) -> None:
    admin = world.token(AccountRole.ADMIN)
    c = world.client
    # No mass assignment: a field the endpoint does not offer is an error, not ignored.
    sneaky = {"staff_no": "E9", "name": "x", "id": "00000000-0000-0000-0000-000000000001"}
    body = assert_problem(c.post(f"{V1}/people", headers=admin, json=sneaky), 422)
    assert body["errors"][0]["type"] == "extra_forbidden"
    approve_body = {"note": "ok", "status": "approved"}
    assert_problem(c.post(f"{V1}/cards/{world.ids['card_a']}/lost", headers=admin,
                          json=approve_body), 422)
    # Page sizes are capped.
    assert_problem(c.get(f"{V1}/keys", headers=admin, params={"limit": 201}), 422)
    assert c.get(f"{V1}/keys", headers=admin, params={"limit": 200}).status_code == 200
    # Control characters and over-long text never reach the database.
    assert_problem(c.get(f"{V1}/people", headers=admin, params={"q": "a\x00b"}), 422)
    assert_problem(c.post(f"{V1}/departments", headers=admin,
                          json={"code": "X", "name": "n" * 101}), 422)
    # Naive times are refused: every stored time is UTC.
    naive = {"person_id": str(world.ids["manager"]), "starts_at": "2026-12-01T18:00:00",
             "ends_at": "2026-12-02T08:00:00"}
    assert_problem(c.post(f"{V1}/duty-roster", headers=admin, json=naive), 422)
    assert_problem(c.post(f"{V1}/departments", headers=admin, content=b"{not json",
                          ), 422)


def test_unhandled_errors_are_problems_without_internals(runtime: Runtime) -> None:
    app = create_admin_app(runtime, AdminOptions(auth_policy=AuthPolicy()))

    def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route(f"{V1}/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(f"{V1}/boom")
    body = assert_problem(response, 500)
    assert "secret" not in response.text and body["title"] == "Internal error"


def test_openapi_documents_problems_and_permissions(world: World) -> None:
    doc = world.client.get(f"{V1}/openapi.json").json()
    assert world.client.get(f"{V1}/docs").status_code == 200
    public = {("get", "/api/v1/health"), ("post", "/api/v1/auth/login")}
    self_service = {("post", "/api/v1/auth/logout"), ("get", "/api/v1/auth/me"),
                    ("post", "/api/v1/auth/password")}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            problem = operation["responses"]["4XX"]["content"]["application/problem+json"]
            assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
            if (method, path) in public:
                assert "security" not in operation
            elif (method, path) not in self_service:
                assert operation["x-permission"], (method, path)
                assert operation["security"] == [{"HTTPBearer": []}]
