"""Fixtures of the K9 report tests: the small tower, and the admin API's world for the API tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_admin_app
from api.deps import AdminOptions
from kiosk.runtime import Runtime
from kiosk.services.credentials import AuthPolicy
from tests.api.conftest import FAST_HASHER, World, build_world
from tests.reports.tower import Tower, build_tower, open_runtime


@pytest.fixture
def tower(tmp_path: Path, db_url: str) -> Iterator[Tower]:
    runtime = open_runtime(tmp_path, db_url)
    yield build_tower(runtime)
    runtime.close()


@pytest.fixture
def world(runtime: Runtime) -> Iterator[World]:
    policy = AuthPolicy(hasher=FAST_HASHER)
    app = create_admin_app(runtime, AdminOptions(auth_policy=policy))
    with TestClient(app) as client:
        yield build_world(runtime, client, policy)
