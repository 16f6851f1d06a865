"""Browser tests: a real ``kiosk run`` daemon on simulated hardware, a real headless Chromium.

Chromium itself (``browser``, ``chromium_path``) comes from ``tests/chromium_browser.py``, shared by
every browser test of the suite through the root conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_rig import Daemon, Kiosk, open_kiosk, start_daemon

SCREENSHOTS = Path(__file__).parent / "screenshots"


# ------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(tmp_path_factory.mktemp("kiosk"))
    try:
        yield d
    finally:
        d.stop()


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
