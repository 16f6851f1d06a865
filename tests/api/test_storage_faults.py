"""Issue 16, item 11: a full disk is a clear 503 on the admin API and a one-line error at
start-up, never a 500 or a traceback.

The disk is made "full" the way ``tests/kiosk/test_faults.py`` does it: SQLite's
``max_page_count`` caps the file at its current size, and the free pages inside it are used
up, so every write fails with SQLite's own "database or disk is full".
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event

from api.app import create_admin_app
from api.deps import AdminOptions
from kiosk.audit import AuditLog, NewEvent
from kiosk.config import Settings
from kiosk.errors import AuditError
from kiosk.runtime import Runtime
from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World
from tests.api.test_security import serve

V1 = "/api/v1"


@contextmanager
def disk_full(engine: Engine, audit: AuditLog) -> Iterator[int]:
    """Every write fails as on a full disk while inside; the cap (pages) is yielded."""
    with engine.connect() as conn:
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar() or 0)

    def _cap(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    engine.dispose()
    event.listen(engine, "connect", _cap)
    try:
        # Large rows first, then ever smaller ones, until not even a tiny row fits.
        for pad in (200, 40, 0):
            with pytest.raises(AuditError, match="full"):
                for i in range(10_000):
                    audit.append(NewEvent(type="test.filler", payload={"i": i, "pad": "x" * pad}))
        yield pages
    finally:
        event.remove(engine, "connect", _cap)
        engine.dispose()


def test_full_disk_is_a_503_naming_it_and_the_connection_stays_usable(
    world: World, runtime: Runtime
) -> None:
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("the full-disk simulation caps an SQLite file")
    admin = world.token(AccountRole.ADMIN)
    app = create_admin_app(runtime, AdminOptions(auth_policy=world.policy))
    with serve(app, runtime.settings) as address, httpx.Client(
            base_url=f"http://{address}", headers=admin, timeout=10) as client:
        with disk_full(runtime.engine, runtime.audit):
            got = client.post(f"{V1}/people", json={"staff_no": "F001", "name": "王芳"})
            assert got.status_code == 503, got.text
            assert got.headers["content-type"] == "application/problem+json"
            assert "disk is full" in got.json()["detail"]
            assert "INSERT" not in got.text
            assert got.headers.get("connection") != "close"
            login = client.post(f"{V1}/auth/login", json={"username": "x", "password": "y"})
            assert login.status_code == 503 and "disk is full" in login.json()["detail"]
            # The same keep-alive connection answers the next request.
            assert client.get(f"{V1}/people").status_code == 200
        made = client.post(f"{V1}/people", json={"staff_no": "F001", "name": "王芳"})
        assert made.status_code == 201, made.text


def test_start_on_a_full_disk_prints_one_line_not_a_traceback(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path / "var", database_url="", cabinet_id="cab-full")
    runtime = Runtime.open(settings)
    try:
        with disk_full(runtime.engine, runtime.audit) as pages:
            pass
    finally:
        runtime.close()
    # The daemon's own start-up, with every SQLite connection capped as the disk would be.
    script = (
        "import sys\n"
        "from sqlalchemy import Engine, event\n"
        "event.listen(Engine, 'connect', lambda c, r: "
        f"c.execute('PRAGMA max_page_count={pages}'))\n"
        "from kiosk.cli import main\n"
        "sys.argv = ['kiosk', 'run']\n"
        "main()\n"
    )
    env = {**os.environ, "KIOSK_DATA_DIR": str(settings.data_dir), "KIOSK_DATABASE_URL": "",
           "KIOSK_CABINET_ID": "cab-full", "KIOSK_LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip() == ("error: cannot run the daemon: the database could not be "
                                   "written: the disk is full")
