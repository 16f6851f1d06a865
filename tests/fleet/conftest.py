"""The fleet's process tests need a real PostgreSQL (the hub refuses anything else): they
run when ``KIOSK_TEST_POSTGRES=1`` or under CI, like the PostgreSQL half of the suite. The
unit tests of ingest, authentication and the change cursor run on every backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests import pg_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if pg_server.wanted():
        return
    skip = pytest.mark.skip(reason="fleet tests need PostgreSQL: KIOSK_TEST_POSTGRES=1 or CI")
    for item in items:
        if str(item.fspath).endswith("tests/fleet/test_fleet.py"):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def hub_db(postgres_url: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own for one module's hub."""
    name = f"hub_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
