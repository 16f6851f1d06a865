"""The fleet tests' rig: a real ``kiosk hub`` on a real PostgreSQL and real ``kiosk run``
cabinet daemons on simulated hardware, each a process of its own (issue 12)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.browser.browser_rig import ROOT, Daemon, start_daemon
from tests.ports import free_port

T = TypeVar("T")
PASSWORD = "fleet-test-password-1"


def kiosk_cli(env: dict[str, str], *args: str, stdin: str | None = None,
              cwd: Path | None = None) -> str:
    """Run ``python -m kiosk ARGS`` and return its stdout; fail the test on a non-zero exit."""
    done = subprocess.run([sys.executable, "-m", "kiosk", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def eventually(check: Callable[[], T | None], *, timeout: float = 30.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy (bounded: a correctness wait, not
    a timing assertion)."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.2)


@dataclass
class Hub:
    """A running ``kiosk hub`` process."""

    env: dict[str, str]
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    token: str | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def fleet_url(self) -> str:
        return self.base + "/hub/v1"

    def start(self) -> Hub:
        log = (self.workdir / f"hub-{self.port}.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "kiosk", "hub"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        eventually(self._answers, timeout=60, what="the hub to answer")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"kiosk hub exited with {self.proc.returncode}: {self.log()[-3000:]}")
        try:
            return http("GET", self.base + "/api/v1/health")[0] == 200
        except OSError:
            return False

    def log(self) -> str:
        return (self.workdir / f"hub-{self.port}.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def login(self) -> str:
        status, body = http("POST", self.base + "/api/v1/auth/login",
                            {"username": "root", "password": PASSWORD})
        assert status == 200, body
        self.token = body["access_token"]
        return self.token

    def get(self, path: str) -> Any:
        status, body = http("GET", self.base + path, token=self.token)
        assert status == 200, (path, status, body)
        return body

    def post(self, path: str, body: Any = None) -> Any:
        status, answer = http("POST", self.base + path, body or {}, token=self.token)
        assert status in (200, 201), (path, status, answer)
        return answer

    def events(self, cabinet_id: str, type: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            query = f"cabinet_id={cabinet_id}&after_seq={out[-1]['seq'] if out else 0}&limit=1000"
            page = self.get(f"/hub/v1/events?{query}" + (f"&type={type}" if type else ""))
            out += page
            if len(page) < 1000:
                return out

    def alarms(self, cabinet_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get(f"/hub/v1/alarms?cabinet_id={cabinet_id}")
        return result


def hub_env(workdir: Path, db_url: str, port: int) -> dict[str, str]:
    return {**os.environ, "KIOSK_DATA_DIR": str(workdir / "var"), "KIOSK_DATABASE_URL": db_url,
            "KIOSK_CABINET_ID": "hub", "KIOSK_FLEET__HUB_PORT": str(port),
            "KIOSK_LOG_LEVEL": "WARNING", "KIOSK_SCHEDULE__ENABLED": "false",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


def prepare_hub(workdir: Path, db_url: str) -> Hub:
    """Migrate, load the demo tower's people and cards, add an admin."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = hub_env(workdir, db_url, port)
    kiosk_cli(env, "demo-data", cwd=workdir)
    kiosk_cli(env, "admin", "create", "root", "--password-stdin", stdin=PASSWORD + "\n",
              cwd=workdir)
    return Hub(env, port, workdir)


def enrolment_code(hub: Hub, site: str) -> str:
    """A one-time code through the REST endpoint an admin (or the console) uses."""
    code: str = hub.post(f"/hub/v1/sites/{site}/enrolment-codes")["code"]
    return code


@dataclass
class Cabinet:
    daemon: Daemon
    cabinet_id: str
    workdir: Path
    env: dict[str, str]

    @property
    def cli_env(self) -> dict[str, str]:
        return {**os.environ, "KIOSK_DATA_DIR": str(self.workdir / "var"),
                "KIOSK_DATABASE_URL": "", "PYTHONPATH": str(ROOT), **self.env}

    def restart(self) -> None:
        self.daemon.stop()
        self.daemon = start_daemon(self.workdir, **self.env)

    def sqlite(self) -> sqlite3.Connection:
        return sqlite3.connect(self.workdir / "var" / "kiosk.db", timeout=10)

    def local_events(self) -> dict[int, tuple[str, str]]:
        """seq → (type, hash) of this cabinet's own log."""
        with contextlib.closing(self.sqlite()) as db:
            return {seq: (type_, digest) for seq, type_, digest in db.execute(
                "SELECT seq, type, hash FROM events WHERE cabinet_id = ?", (self.cabinet_id,))}

    def daemon_events(self, type_: str) -> list[tuple[int, dict[str, Any]]]:
        """(seq, payload) of this cabinet's own events of one type."""
        with contextlib.closing(self.sqlite()) as db:
            return [(seq, json.loads(payload)) for seq, payload in db.execute(
                "SELECT seq, payload FROM events WHERE type = ? ORDER BY seq", (type_,))]

    def health(self) -> dict[str, Any]:
        port = self.env["KIOSK_ADMIN_PORT"]
        status, body = http("GET", f"http://127.0.0.1:{port}/api/v1/health")
        assert status == 200, body
        result: dict[str, Any] = body
        return result


def cabinet_env(workdir: Path, cabinet_id: str, hub: Hub, **extra: str) -> dict[str, str]:
    return {"KIOSK_CABINET_ID": cabinet_id, "KIOSK_FLEET__HUB_URL": hub.fleet_url,
            "KIOSK_FLEET__POLL_WAIT_S": "5", "KIOSK_SCHEDULE__ENABLED": "false", **extra}


def enrol_and_start_all(hub: Hub, wanted: list[tuple[Path, str, str, dict[str, str]]]
                        ) -> list[Cabinet]:
    """Several cabinets enrolled and started side by side (each is a few processes)."""
    with ThreadPoolExecutor(len(wanted)) as pool:
        return list(pool.map(lambda w: enrol_and_start(w[0], w[1], hub, w[2], **w[3]), wanted))


def enrol_and_start(workdir: Path, cabinet_id: str, hub: Hub, site: str,
                    **extra: str) -> Cabinet:
    """``kiosk fleet enrol`` with a fresh code, then ``kiosk run`` on simulated hardware."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = cabinet_env(workdir, cabinet_id, hub, **extra)
    cli_env = {**os.environ, "KIOSK_DATA_DIR": str(workdir / "var"), "KIOSK_DATABASE_URL": "",
               "PYTHONPATH": str(ROOT), **env}
    out = kiosk_cli(cli_env, "fleet", "enrol", hub.fleet_url, enrolment_code(hub, site),
                    cwd=workdir)
    assert f"cabinet {cabinet_id} enrolled" in out
    return start_cabinet(workdir, cabinet_id, env)


def start_cabinet(workdir: Path, cabinet_id: str, env: dict[str, str]) -> Cabinet:
    admin_port = str(free_port())
    env = {**env, "KIOSK_ADMIN_PORT": admin_port}
    daemon = start_daemon(workdir, **env)
    return Cabinet(daemon, cabinet_id, workdir, env)
