"""What an idle daemon holds in memory (issue 15, item 4: idle RSS ≤ 85 MB).

``kiosk run`` is started for real in a fresh interpreter, on SQLite with simulated hardware
(the demo tower, both listeners, the scheduler), on a database that has run before. A probe thread in that process waits for
the kiosk screen to answer, reads ``sys.modules``, then uses the admin API and reads it
again, then stops the daemon with SIGTERM as systemd would. The probe talks HTTP through
urllib so it loads nothing the daemon itself might not.

What must not be loaded at start: libraries a SQLite cabinet on simulated hardware never
uses (PostgreSQL, Modbus, USB NFC, XLSX, PDF, notifications' HTTP client, Alembic when the
schema is at its head) and the admin API with FastAPI, made by its first request
(``kiosk.daemon.AdminOnFirstRequest``; the screen's listener is plain Starlette). What must
still work: the admin API answers its first request and the ones after, and the daemon
stops cleanly (its stop is in the log).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.config import Settings
from kiosk.demo import load_demo
from kiosk.runtime import Runtime
from kiosk.store.models import Event
from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, os, signal, sys, threading, time, urllib.request, urllib.error

def get(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()

kiosk, admin, out_file = sys.argv[1:4]

def probe():
    deadline = time.monotonic() + 240
    while True:
        try:
            get(f"http://127.0.0.1:{kiosk}/kiosk/api/screen")
            break
        except OSError:
            if time.monotonic() > deadline:
                os._exit(3)
            time.sleep(0.1)
    seen = {"at_start": sorted(sys.modules)}
    seen["health"] = get(f"http://127.0.0.1:{admin}/api/v1/health")
    seen["after_health"] = sorted(sys.modules)
    seen["unauthorised"] = get(f"http://127.0.0.1:{admin}/api/v1/people")[0]
    seen["after_admin"] = sorted(sys.modules)
    seen["health_by_the_api"] = get(f"http://127.0.0.1:{admin}/api/v1/health")
    seen["openapi_paths"] = len(json.loads(
        get(f"http://127.0.0.1:{admin}/api/v1/openapi.json")[1])["paths"])
    with open(out_file, "w") as out:
        json.dump(seen, out)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=probe, daemon=True).start()
sys.argv = ["kiosk", "run"]
from kiosk.cli import main
main()
"""

NOT_AT_START = {
    "psycopg": "PostgreSQL driver: this cabinet is on SQLite",
    "pymodbus": "Modbus lock boards: the simulated cabinet has Kerong boards",
    "nfc": "USB NFC readers (nfcpy): the simulated reader is an MFRC522",
    "httpx": "notifications' HTTP client: no channel is configured",
    "openpyxl": "XLSX import/export: only when a file is read or made",
    "reportlab": "PDF rendering: only in the child process that makes one",
    "alembic": "migrations: the schema is already at its head",
    "jinja2": "the console's templates: mounted by its first request",
    "api.app": "the admin API: made by its first request",
    "fastapi": "the admin API's framework: the screen's listener is plain Starlette",
    "api.routes": "the admin API's routes",
    "prometheus_client": "metrics: only with the admin API",
    "cryptography": "the device key signs with libsodium (PyNaCl); cryptography only makes "
                    "TLS certificates and reads unusual key files",
    "kiosk.store.models_fleet": "the hub's tables: a cabinet never maps them (models_link)",
    "watchfiles": "uvicorn's file watcher for --reload (uvicorn[standard]), never used here",
}


def _loaded(modules: list[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_an_idle_daemon_holds_no_library_it_does_not_use_and_loads_the_admin_api_on_demand(
    tmp_path: Path,
) -> None:
    kiosk, admin = free_port(), free_port()
    out, data = tmp_path / "seen.json", tmp_path / "data"
    # A cabinet that has run before: its schema at the head, the demo tower in it.
    runtime = Runtime.open(Settings(data_dir=data, cabinet_id="cab-01"))
    load_demo(runtime)
    runtime.close()
    env = {**os.environ, "KIOSK_DATA_DIR": str(data), "KIOSK_CABINET_ID": "cab-01", "KIOSK_DATABASE_URL": "",
           "KIOSK_KIOSK_PORT": str(kiosk), "KIOSK_ADMIN_PORT": str(admin),
           "KIOSK_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE, str(kiosk), str(admin), str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(out.read_text())
    held = {pkg: why for pkg, why in NOT_AT_START.items() if _loaded(seen["at_start"], pkg)}
    assert held == {}
    assert _loaded(seen["at_start"], "api.kiosk")  # the screen's own app is there from start
    # A monitor's liveness poll is answered without making the admin API (api.liveness) ...
    assert seen["health"][0] == 200 and json.loads(seen["health"][1])["status"] == "ok"
    assert not _loaded(seen["after_health"], "api.app")
    assert not _loaded(seen["after_health"], "prometheus_client")
    # ... the admin API's first other request made it: it answers that request and the later
    # ones as an eagerly made app does (a bearer token is still needed, the whole API is
    # documented), and its own health route gives the same answer.
    assert _loaded(seen["after_admin"], "api.app")
    assert _loaded(seen["after_admin"], "fastapi")  # FastAPI came with it
    assert seen["health_by_the_api"] == seen["health"]
    assert seen["unauthorised"] == 401
    assert seen["openapi_paths"] > 50
    assert "kiosk: cabinet cab-01" in done.stdout
    # It stopped as it always does, the admin app's lifespan ended with it: the stop is the
    # log's last event.
    runtime = Runtime.open(Settings(data_dir=data, cabinet_id="cab-01"))
    with Session(runtime.engine) as s:
        last = s.scalars(select(Event.type).order_by(Event.seq.desc()).limit(1)).one()
    runtime.close()
    assert last == "daemon.stopped"


async def test_the_admin_app_is_made_once_for_concurrent_first_requests_and_ends_with_its_listener(
    tmp_path: Path,
) -> None:
    """Two first requests at once make one app (a liveness poll meanwhile makes none); the
    listener's shutdown ends the made app's lifespan (its event feed stops listening to the
    log), as an eager app's would."""
    import asyncio

    import httpx

    from api.app import create_admin_app
    from api.liveness import LivenessAnswer
    from kiosk.daemon import AdminOnFirstRequest

    runtime = Runtime.open(Settings(data_dir=tmp_path, cabinet_id="cab-01"))
    made = []

    def build() -> object:
        made.append(1)
        return create_admin_app(runtime, lazy_console=True)

    lazy = AdminOnFirstRequest(build, LivenessAnswer(runtime))  # type: ignore[arg-type]
    to_lifespan: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    from_lifespan: list[dict[str, str]] = []

    async def send(message: dict[str, str]) -> None:
        from_lifespan.append(message)

    lifespan = asyncio.create_task(lazy({"type": "lifespan"}, to_lifespan.get, send))  # type: ignore[arg-type]
    await to_lifespan.put({"type": "lifespan.startup"})
    while not from_lifespan:
        await asyncio.sleep(0.01)
    assert from_lifespan == [{"type": "lifespan.startup.complete"}] and made == []
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lazy),
                                     base_url="http://admin") as client:
            assert (await client.get("/api/v1/health")).status_code == 200
            assert made == [] and lazy.app is None
            first, second = await asyncio.gather(client.get("/api/v1/people"),
                                                 client.get("/api/v1/people"))
            assert (first.status_code, second.status_code) == (401, 401)
            assert (await client.get("/api/v1/health")).status_code == 200
        assert made == [1] and lazy.app is not None
        feed = lazy.app.state.feed.notify  # the event stream's feed listens to the log
        assert feed in runtime.audit.listeners
        await to_lifespan.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, 30)
        assert from_lifespan[-1] == {"type": "lifespan.shutdown.complete"}
        assert feed not in runtime.audit.listeners
    finally:
        lifespan.cancel()
        runtime.close()


async def test_an_admin_api_that_cannot_be_made_fails_its_requests_without_building_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """An eager start would have stopped the daemon on a broken admin app; made lazily, the
    cabinet goes on, the failure is logged once at critical level and every admin request
    fails at once, without half-building the app again each time."""
    import httpx

    from kiosk.daemon import AdminOnFirstRequest

    tries = []

    def build() -> object:
        tries.append(1)
        raise ValueError("a setting the admin API cannot take")

    lazy = AdminOnFirstRequest(build)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lazy),
                                 base_url="http://admin") as client:
        for _ in range(3):
            with pytest.raises(Exception, match=r"admin API|cannot take"):
                await client.get("/api/v1/health")
    assert tries == [1]
    critical = [r for r in caplog.records if r.levelname == "CRITICAL"]
    assert len(critical) == 1 and "admin API could not be made" in critical[0].getMessage()
