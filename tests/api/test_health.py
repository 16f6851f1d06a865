"""``GET /api/v1/health`` in-process and from a real ``kiosk run`` daemon over a socket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.app import create_admin_app
from kiosk.config import Settings
from kiosk.runtime import Runtime
from kiosk.store.models import Event
from tests.ports import free_port


def test_health_reports_database_schema_and_log_head(runtime: Runtime) -> None:
    client = TestClient(create_admin_app(runtime))
    body = client.get("/api/v1/health").json()
    assert body["status"] == "ok"
    assert body["database"]["schema_version"] == body["database"]["schema_head"]
    assert body["database"]["up_to_date"] is True
    assert body["database"]["backend"] == runtime.engine.dialect.name
    if runtime.engine.dialect.name == "sqlite":
        assert body["database"]["location"].endswith("kiosk.db")
    else:
        assert body["database"]["location"].startswith("postgresql+psycopg://")
    assert body["audit"]["head_seq"] == 0
    assert body["cabinet_id"] == "cab-test"
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/health" in schema["paths"]


def test_kiosk_run_answers_health_and_logs_start_and_stop(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "KIOSK_DATA_DIR": str(tmp_path / "var"), "KIOSK_ADMIN_PORT": str(port),
           "KIOSK_KIOSK_PORT": str(free_port()), "KIOSK_DATABASE_URL": ""}
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and body is None:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).json()
            except httpx.HTTPError:
                time.sleep(0.1)
        assert body is not None, "daemon did not answer within 30 s"
        assert body["database"]["location"] == str((tmp_path / "var" / "kiosk.db").resolve())
        assert body["database"]["up_to_date"] is True
        assert body["audit"]["head_seq"] >= 1  # daemon.started
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    # once serving, start-up objects leave the full collections (no 90 ms pause in a tap)
    assert "start-up objects frozen out of full collections" in output
    runtime = Runtime.open(Settings(data_dir=tmp_path / "var"))
    with Session(runtime.engine) as s:
        types = s.scalars(select(Event.type).order_by(Event.seq)).all()
    runtime.close()
    assert types[0] == "demo.loaded"  # an empty database in simulate mode gets the demo tower
    assert "daemon.started" in types and "cabinet.reconciled" in types
    assert types[-2:] == ["cabinet.stopped", "daemon.stopped"]
