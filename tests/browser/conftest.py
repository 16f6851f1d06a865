"""Browser tests: a real ``kiosk run`` daemon on simulated hardware, a real headless Chromium.

Chromium and a CJK font come from Debian (``chromium``, ``fonts-noto-cjk``): installed with
apt-get when missing and running as root (CI), otherwise the tests are skipped with the
reason. Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from browser_rig import Daemon, Kiosk, open_kiosk, start_daemon

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"


# ----------------------------------------------------------------- Chromium and a font
def _has_cjk_font() -> bool:
    if shutil.which("fc-list") is None:
        return False
    out = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False)
    return bool(out.stdout.strip())


def _missing_packages() -> list[str]:
    missing = []
    if not CHROMIUM.exists():
        missing.append("chromium")
    if not _has_cjk_font():
        missing.append("fonts-noto-cjk")
    return missing


def _apt_install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """/usr/bin/chromium with a CJK font present; installs both as root, else skips."""
    missing = _missing_packages()
    if missing:
        if os.geteuid() != 0:
            pytest.skip(
                f"browser tests need the Debian packages {', '.join(missing)} "
                "(/usr/bin/chromium and a CJK font for `fc-list :lang=zh`); not root, "
                "so they cannot be installed here: apt-get install -y chromium fonts-noto-cjk"
            )
        _apt_install(missing)
        still = _missing_packages()
        if still:
            pytest.fail(f"still missing after apt-get install: {', '.join(still)}")
    return str(CHROMIUM)


# ------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("kiosk"))
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """Module scope on purpose: while Playwright's sync API is open, the main thread counts as
    running an asyncio loop, which would break the suite's async tests that run after these."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def identity_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A second daemon whose cabinet has key identity receptors (issue 13), shared by the
    identity tests (each uses its own people and keys, like the shared daemon's tests)."""
    d = start_daemon(tmp_path_factory.mktemp("kiosk-identity"), "--simulate",
                     KIOSK_HARDWARE__IDENTITY__ENABLED="true")
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def identity_kiosk(browser: Any, identity_daemon: Daemon) -> Iterator[Kiosk]:
    """The kiosk page at 1024×600 on the identity cabinet, idle."""
    identity_daemon.post("/kiosk/api/cancel")
    k = open_kiosk(browser, identity_daemon.url)
    try:
        yield k
        assert k.errors == [], k.errors
    finally:
        k.page.context.close()
        identity_daemon.post("/kiosk/api/cancel")


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


@pytest.fixture
def kiosk(browser: Any, daemon: Daemon) -> Iterator[Kiosk]:
    """The kiosk page at 1024×600 on an idle cabinet (any left-over visit is cancelled)."""
    daemon.post("/kiosk/api/cancel")
    k = open_kiosk(browser, daemon.url)
    try:
        yield k
        assert k.errors == [], k.errors
    finally:
        k.page.context.close()
        daemon.post("/kiosk/api/cancel")
