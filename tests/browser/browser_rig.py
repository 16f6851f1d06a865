"""The browser tests' rig: a real ``kiosk run`` daemon in a subprocess and the kiosk page in
Chromium, with the ways a test plays the person at the cabinet (page touches, counted) and the
hardware (the simulate-mode control surface)."""

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.ports import free_port

VIEWPORT = {"width": 1024, "height": 600}
REPEAT_TAP_S = 1.0
"""Sim tap holds a badge 0.4 s; the reader forgets it 0.3 s (and two polls) after it left."""
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------- the daemon
@dataclass
class Daemon:
    """A running ``kiosk run`` and the ways a test plays the person at the cabinet."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    kiosk_port: int
    log_path: Path
    people: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _last_tap: tuple[str, float] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.kiosk_port}"

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str) -> Any:
        status, data = self.request("GET", path)
        assert status == 200, (path, status, data)
        return data

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        status, data = self.request("POST", path, body or {})
        assert status == 200, (path, status, data)
        return data

    def tap(self, uid: str) -> None:
        """A badge held to the reader. The same badge again counts as a new tap only once it
        has been off the antenna for the reader's hold-off, as when a person lifts it and taps
        again: so a repeat of the last badge waits for that first."""
        if self._last_tap is not None and self._last_tap[0] == uid:
            time.sleep(max(0.0, self._last_tap[1] + REPEAT_TAP_S - time.monotonic()))
        self.post("/sim/tap", {"uid": uid})
        self._last_tap = (uid, time.monotonic())

    def slot_open(self, slot: int) -> bool:
        return bool(self.get("/sim/state")["slots"][str(slot)]["open"])

    def wait_slot_shut(self, slot: int, timeout: float = 5.0) -> bool:
        """A compartment shut right after it sprang open latches once its door has swung
        back (the simulator's ``door_swing_s``, as a real door): wait for it, within bounds."""
        end = time.monotonic() + timeout
        while self.slot_open(slot):
            if time.monotonic() > end:
                return False
            time.sleep(0.05)
        return True

    def wait_slot_open(self, slot: int, timeout: float = 5.0) -> bool:
        """The screen may show a slot a moment before its latch has popped (the session moves
        first, then the driver pulses the lock): wait for the hardware, within bounds."""
        end = time.monotonic() + timeout
        while not self.slot_open(slot):
            if time.monotonic() > end:
                return False
            time.sleep(0.05)
        return True

    def screen(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get("/kiosk/api/screen")
        return data

    def wait_state(self, state: str, timeout: float = 10.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            data = self.screen()
            if data["state"] == state or time.monotonic() > end:
                assert data["state"] == state, data
                return data
            time.sleep(0.1)

    def db(self, *, settled: bool = True) -> sqlite3.Connection:
        """The daemon's SQLite file, opened once every write the cabinet had queued has
        committed (``/sim/writes``): the screen goes idle as soon as a write is queued, so a
        read right after it could otherwise miss the last loan or event. ``settled=False``
        opens it at once (a test that holds the database locked itself)."""
        if settled and self.proc.poll() is None:  # a stopped daemon has nothing queued
            writes = self.get("/sim/writes")
            assert writes["settled"] is True, writes  # else the read would come too early
        return sqlite3.connect(self.data_dir / "kiosk.db", timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def _load_people(daemon: Daemon) -> dict[str, list[dict[str, Any]]]:
    """Department code → its people in staff-number order, each with name, card uid, roles."""
    with contextlib.closing(daemon.db()) as db:
        rows = db.execute(
            "SELECT d.code, p.id, p.staff_no, p.name, c.uid FROM people p "
            "JOIN departments d ON d.id = p.department_id JOIN cards c ON c.person_id = p.id "
            "ORDER BY p.staff_no"
        ).fetchall()
        roles: dict[Any, set[str]] = {}
        for person_id, role in db.execute("SELECT person_id, role FROM person_roles"):
            roles.setdefault(person_id, set()).add(str(role).lower())
    people: dict[str, list[dict[str, Any]]] = {}
    for dept, pid, staff_no, name, uid in rows:
        people.setdefault(dept, []).append(
            {
                "id": pid,
                "staff_no": staff_no,
                "name": name,
                "uid": uid,
                "roles": roles.get(pid, set()),
            }
        )
    return people


def start_daemon(tmp: Path, *run_args: str, **env_extra: str) -> Daemon:
    """``python -m kiosk run [run_args]`` with its own data folder and ports; waits until it
    answers."""
    tmp.mkdir(parents=True, exist_ok=True)
    data_dir, log_path = tmp / "var", tmp / "daemon.log"
    kiosk_port = free_port()
    env = {
        **os.environ,
        "KIOSK_DATA_DIR": str(data_dir),
        "KIOSK_DATABASE_URL": "",
        "KIOSK_ADMIN_PORT": str(free_port()),
        "KIOSK_KIOSK_PORT": str(kiosk_port),
        "KIOSK_LOG_LEVEL": "WARNING",
        # open all day, every day, so a run at any hour sees the day-time flow (K8 is off)
        "KIOSK_BUSINESS_HOURS__START": "00:00",
        "KIOSK_BUSINESS_HOURS__END": "24:00",
        "KIOSK_BUSINESS_HOURS__WEEKDAYS": "[1,2,3,4,5,6,7]",
        "KIOSK_BUSINESS_HOURS__HOLIDAYS": "[]",
        # H1: the screen stops waiting for the incoming keeper soon (the minimum)
        "KIOSK_CABINET__HANDOVER_TAP_TIMEOUT_S": "10",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        **env_extra,
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kiosk", "run", *run_args],
            cwd=tmp,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    daemon = Daemon(proc, data_dir, kiosk_port, log_path)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"kiosk run exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            daemon.screen()
            break
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                daemon.stop()
                pytest.fail(f"kiosk run did not answer in 60 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
    daemon.people = _load_people(daemon)
    return daemon


# ------------------------------------------------------------------------- the page
@dataclass
class Kiosk:
    """The kiosk page, with a count of the touches a test made on it."""

    page: Any
    errors: list[str]
    touches: int = 0

    def touch(self, selector: str, *, force: bool = False) -> None:
        """One finger touch on the element (``force``: even if it is shown as unavailable)."""
        self.page.locator(selector).click(force=force)
        self.touches += 1

    def shot(self, folder: Path, name: str) -> Path:
        path = folder / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


def open_kiosk(browser: Any, url: str, viewport: dict[str, int] | None = None,
               timeout_ms: int = 10_000) -> Kiosk:
    context = browser.new_context(viewport=viewport or VIEWPORT, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    page.wait_for_selector("#app:not([data-state='loading'])")
    return Kiosk(page, errors)


@contextlib.contextmanager
def kiosk_at_size(browser: Any, daemon: Daemon, width: int, height: int,
                  timeout_ms: int = 10_000) -> Iterator[Kiosk]:
    """The kiosk page at one screen size, on a cabinet with no visit before and after (the
    daemon is shared by a file's tests); fails the test on any script error of the page."""
    daemon.post("/kiosk/api/cancel")
    k = open_kiosk(browser, daemon.url, {"width": width, "height": height}, timeout_ms)
    try:
        yield k
        assert k.errors == [], k.errors
    finally:
        k.page.context.close()
        daemon.post("/kiosk/api/cancel")


# ------------------------------------------------------------------ shared checks
MIN_TOUCH = 64  # px, every button on every screen


def person(
    daemon: Daemon, dept: str, index: int, *, roles: set[str] | None = None
) -> dict[str, Any]:
    """The ``index``-th person of a department (with exactly ``roles``, when given)."""
    people = [p for p in daemon.people[dept] if roles is None or p["roles"] == roles]
    return people[index]


def key_slot(daemon: Daemon, key_number: str) -> int:
    keys = {k["key_number"]: k for k in daemon.screen()["keys"]}
    slot: int = keys[key_number]["slot"]
    return slot


def assert_fits(kiosk: Kiosk) -> None:
    """Nothing scrolls, every visible button is inside 1024×600 and at least 64×64 px."""
    report = kiosk.page.evaluate("""() => {
        const doc = document.scrollingElement;
        const bad = [];
        for (const b of document.querySelectorAll('button')) {
            const r = b.getBoundingClientRect();
            if (!r.width || !r.height || getComputedStyle(b).visibility === 'hidden') continue;
            if (r.width < 64 || r.height < 64 || r.left < 0 || r.top < 0
                || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5) {
                bad.push(`${b.id || b.dataset.key || b.dataset.floor || b.dataset.reason
                           || b.textContent.trim().slice(0, 20)}: ${Math.round(r.left)},${Math.round(r.top)} `
                         + `${Math.round(r.width)}x${Math.round(r.height)}`);
            }
        }
        const grid = document.getElementById('key-grid');
        return {scroll: [doc.scrollWidth, doc.scrollHeight, innerWidth, innerHeight],
                gridScrolls: grid.offsetParent !== null && grid.scrollHeight > grid.clientHeight + 1,
                bad};
    }""")
    width, height, view_w, view_h = report["scroll"]
    assert width <= view_w and height <= view_h, report
    assert not report["gridScrolls"], "the key list needs scrolling"
    assert report["bad"] == [], (
        f"buttons outside the screen or under {MIN_TOUCH} px: {report['bad']}"
    )
