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
from api.version import package_version
from kiosk.config import Settings
from kiosk.runtime import Runtime
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models import Event
from kiosk.store.models_auth import AccountRole
from tests.ports import free_port


def test_public_health_is_liveness_only_details_need_audit_read(runtime: Runtime) -> None:
    """Issue 16, item 12: no database path or log head hash for an unauthenticated caller."""
    from api.deps import AdminOptions
    from tests.api.conftest import FAST_HASHER, build_world

    app = create_admin_app(runtime, AdminOptions(auth_policy=AuthPolicy(hasher=FAST_HASHER)))
    with TestClient(app) as client:
        world = build_world(runtime, client, AuthPolicy(hasher=FAST_HASHER))
        public = client.get("/api/v1/health")
        assert public.status_code == 200
        assert public.json() == {"status": "ok", "version": package_version()}
        head_seq, head_hash = runtime.audit.head()
        assert head_hash not in public.text and "kiosk.db" not in public.text

        assert client.get("/api/v1/health/details").status_code == 401
        custodian = world.token(AccountRole.CUSTODIAN)
        assert client.get("/api/v1/health/details", headers=custodian).status_code == 403
        body = client.get("/api/v1/health/details", headers=world.token(AccountRole.AUDITOR)).json()
    assert body["status"] == "ok"
    assert body["database"]["schema_version"] == body["database"]["schema_head"]
    assert body["database"]["up_to_date"] is True
    assert body["database"]["backend"] == runtime.engine.dialect.name
    if runtime.engine.dialect.name == "sqlite":
        assert body["database"]["location"].endswith("kiosk.db")
    else:
        assert body["database"]["location"].startswith("postgresql+psycopg://")
    assert body["audit"]["head_seq"] >= head_seq
    assert body["cabinet_id"] == "cab-test"
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/health" in schema["paths"]
    assert schema["paths"]["/api/v1/health/details"]["get"]["x-permission"] == "audit:read"


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
        assert body["status"] == "ok" and set(body) == {"status", "version"}
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
