"""Chromium for every browser test: the Debian browser and a CJK font, and one headless
browser per test module.

Chromium and a CJK font come from Debian (``chromium``, ``fonts-noto-cjk``): installed with
apt-get when missing and running as root (CI), otherwise the tests are skipped with the
reason. Playwright's own browser downloads are never used. The fixtures are registered by
the suite's root conftest, so the kiosk page, console and hub tests share one definition.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


EXPECT_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """Module scope on purpose: while Playwright's sync API is open, the main thread counts as
    running an asyncio loop, which would break the suite's async tests that run after these."""
    sync_api = pytest.importorskip("playwright.sync_api")
    # What a page shows after a tap or a scan comes from a daemon sharing two cores with the
    # rest of the suite (CI runs its passes side by side): Playwright's 5 s default for
    # `expect` failed two healthy screens there. Waiting longer changes no verdict: an
    # element that never appears still fails, only later.
    sync_api.expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
