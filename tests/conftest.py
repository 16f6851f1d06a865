"""Fixtures shared by the whole suite.

Database tests run on SQLite always and on a real PostgreSQL server too when ``CI=true``
or ``KIOSK_TEST_POSTGRES=1`` (see ``tests/pg_server.py``): use the ``db_url`` fixture.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import migrated_template
import pg_server
import pytest
from chromium_browser import browser, chromium_path  # noqa: F401  (fixtures for every browser test)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from kiosk.config import Settings
from kiosk.reports import pdf_process
from kiosk.runtime import Runtime

BACKENDS = ["sqlite", "postgres"] if pg_server.wanted() else ["sqlite"]


def pytest_configure(config: pytest.Config) -> None:
    """Every cabinet's empty SQLite database is a copy of one migrated per worker
    (``tests/migrated_template.py``); and KIOSK_TEST_CLOCK=ISO-time runs the suite as if
    the wall clock read that moment.

    Tests pin their own clocks (a fixed Friday, 18:31 Shanghai time...); code that reads the
    wall clock where it should read the caller's clock passes on the day the test was
    written and fails later (CI once did, after 18:31 on the tests' own day). `make test`
    runs the clock-sensitive tests a second time at an awkward moment to catch that.
    """
    migrated_template.install()
    config.add_cleanup(migrated_template.remove)
    # The PDF renderer's child process (kiosk.reports.pdf_process) is reaped at the end of
    # the run, not by its idle timer later: mutmut runs pytest in its own process and then
    # waits for any child, and a renderer exiting meanwhile crashed it (KeyError: <pid>).
    config.add_cleanup(pdf_process.stop)
    moment = os.environ.get("KIOSK_TEST_CLOCK")
    if moment:
        import time_machine

        traveller = time_machine.travel(dt.datetime.fromisoformat(moment), tick=True)
        traveller.start()
        config.add_cleanup(traveller.stop)


LONGEST_FILES_FIRST = (
    "tests/api/test_schemathesis_documents_postgres.py",
    "tests/api/test_schemathesis_records_postgres.py",
    "tests/api/test_schemathesis_access_postgres.py",
    "tests/api/test_schemathesis_rest_postgres.py",
    "tests/api/test_schemathesis_documents.py",
    "tests/api/test_schemathesis_records.py",
    "tests/api/test_schemathesis_access.py",
    "tests/api/test_schemathesis_rest.py",
    "tests/console/test_matrix.py",
    "tests/console/test_browser.py",
    "tests/fleet/test_fleet.py",
    "tests/fleet/test_hub_scope.py",
    "tests/fleet/test_hub_console_browser.py",
    "tests/test_cli.py",
    "tests/fleet/test_hub_site_records.py",
    "tests/api/test_matrix.py",
)
"""The suite's longest test files (a loaded run's JUnit times), started first. pytest-xdist
hands whole files to workers in the order they were collected, so a five-minute file
collected late ran alone at the end while the other workers stood idle (a fresh-clone CI
run: schemathesis on PostgreSQL, alone, for its last minutes)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest files first, everything else in its collected order (a stable sort on
    the file alone: the tests inside a file keep theirs). Every worker sorts alike, as
    pytest-xdist requires. Only in pytest-xdist's workers: a run in one process (mutmut's,
    which stops at a mutant's first failing test) keeps the fast tests first, or each mutant
    of a function the API matrix reaches would wait for the matrix before its quick kill."""
    if not hasattr(config, "workerinput"):
        return
    rank = {path: place for place, path in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with pg_server.postgres_server() as url:
        yield url


@contextlib.contextmanager
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on ``backend``: a file under ``tmp_path``, or a database of its own
    on the suite's PostgreSQL server, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'kiosk.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend under test."""
    with database_url(request.param, request, tmp_path) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "var", database_url=db_url, cabinet_id="cab-test")


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = Runtime.open(settings)
    yield rt
    rt.close()
