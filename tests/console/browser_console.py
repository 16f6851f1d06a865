"""The console's browser rig: a real ``kiosk run`` (demo tower, simulated hardware) with a
known admin port, accounts per role made with ``kiosk admin create``, and the checks every
screen gets: no horizontal scrolling, axe-core with no serious or critical violation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.browser.browser_rig import ROOT, Daemon, start_daemon
from tests.ports import free_port

PASSWORD = "console test password"
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 360, "height": 740}
SHOTS = Path(os.environ.get("CONSOLE_SHOTS", "/tmp/console-shots"))


@dataclass
class ConsoleDaemon:
    daemon: Daemon
    admin_port: int
    env: dict[str, str]
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def create_account(self, username: str, role: str, *, staff_no: str | None = None,
                       department: str | None = None) -> None:
        args = [sys.executable, "-m", "kiosk", "admin", "create", username, "--role", role,
                "--password-stdin"]
        if staff_no:
            args += ["--person", staff_no]
        if department:
            args += ["--department", department]
        done = subprocess.run(args, input=PASSWORD + "\n", capture_output=True, text=True,
                              env=self.env, cwd=self.daemon.data_dir.parent, check=False,
                              timeout=60)
        assert done.returncode == 0, done.stderr + done.stdout
        self.accounts[username] = {"role": role, "staff_no": staff_no}

    def api(self, method: str, path: str, body: Any = None, *, user: str) -> Any:
        token = self._token(user)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.url}/api/v1{path}", data=data, method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()!r}") from None

    def _token(self, user: str) -> str:
        cached = self.accounts[user].get("token")
        if cached:
            return str(cached)
        req = urllib.request.Request(
            f"{self.url}/api/v1/auth/login",
            data=json.dumps({"username": user, "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=15) as r:
            token = json.loads(r.read())["access_token"]
        self.accounts[user]["token"] = token
        return str(token)


def start_console_daemon(tmp: Path, *run_args: str, port: int | None = None,
                         **env_extra: str) -> ConsoleDaemon:
    """``kiosk run [run_args]`` with its admin listener on ``port`` (a free one by default)."""
    port = port or free_port()
    daemon = start_daemon(tmp, *run_args, KIOSK_ADMIN_PORT=str(port), **env_extra)
    env = {**os.environ, "KIOSK_DATA_DIR": str(daemon.data_dir), "KIOSK_DATABASE_URL": "",
           "KIOSK_LOG_LEVEL": "WARNING",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                         if p)}
    return ConsoleDaemon(daemon, port, env)


def with_role(daemon: Daemon, dept: str, role: str) -> dict[str, Any]:
    return next(p for p in daemon.people[dept] if role in p["roles"])


# ------------------------------------------------------------------------- checks
def no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("() => [document.scrollingElement.scrollWidth, innerWidth]")
    assert width[0] <= width[1], f"{page.url}: page is {width[0]} px wide in {width[1]} px"


def axe_clean(page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(n["target"][0] if isinstance(n["target"][0], str) else str(n["target"])
                    for n in v["nodes"][:3])
        for v in results.response["violations"]
        if v.get("impact") in ("serious", "critical")
    ]
    assert bad == [], f"{page.url}: {bad}"


def check_screen(page: Any, name: str, size: str) -> None:
    """The checks every screen gets, and its screenshot (looked at by a person)."""
    no_horizontal_scroll(page)
    axe_clean(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)


def sign_in(page: Any, base: str, username: str, *, path: str = "/console/") -> None:
    page.goto(base + path)
    page.fill("#f-username", username)
    page.fill("#f-password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "/console/login" not in page.url, page.inner_text("main")
