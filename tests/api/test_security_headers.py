"""No browser or proxy keeps a copy of an answer that may hold a token or an owner's phone
number (A1); HTTPS answers tell browsers to stay on HTTPS."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.app import create_admin_app
from api.deps import AdminOptions
from kiosk.runtime import Runtime
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World

V1 = "/api/v1"


def test_answers_with_tokens_or_personal_data_are_never_cached(world: World) -> None:
    admin = world.token(AccountRole.ADMIN)
    owners = world.client.get(f"{V1}/owners", headers=admin)  # phone numbers, addresses (A1)
    refused = world.client.get(f"{V1}/owners")  # a 401 problem document too
    for response in (owners, refused):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in response.headers  # plain HTTP: loopback
    assert owners.status_code == 200 and refused.status_code == 401


def test_https_answers_carry_hsts(runtime: Runtime) -> None:
    app = create_admin_app(runtime, AdminOptions(auth_policy=AuthPolicy()))
    with TestClient(app, base_url="https://cab-01:8080") as client:
        health = client.get(f"{V1}/health")
    assert health.status_code == 200
    assert health.headers["strict-transport-security"] == "max-age=31536000"
    assert health.headers["cache-control"] == "no-store"
