"""A cabinet in a fleet whose hub does not answer (issue 12): a keeper at the screen sees
"离线 自 14:02 / offline since 14:02" (the time /health reports), staff do not, and the
cabinet goes on deciding alone. The banner keeps the layout rules of every screen
(test_kiosk_layout) at both screen sizes.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_rig import Daemon, Kiosk, kiosk_at_size, person, start_daemon
from test_kiosk_layout import LAYOUT_JS, MIN_TEXT_PX, SIZES

from kiosk.audit.device_key import load_or_create
from tests.ports import free_port

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def offline_cabinet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, int]]:
    """A demo cabinet enrolled at a hub that is not there (nothing listens on its port)."""
    root = tmp_path_factory.mktemp("hub-offline")
    start_daemon(root).stop()  # the demo tower, on its own first
    hub_key = load_or_create(root / "hub.pem").public_hex
    hub_url = f"http://127.0.0.1:{free_port()}/hub/v1"
    with contextlib.closing(sqlite3.connect(root / "var" / "kiosk.db")) as db:
        cabinet_id = db.execute("SELECT DISTINCT cabinet_id FROM events").fetchone()[0]
        db.execute("INSERT INTO fleet_state (name, value) VALUES ('enrolment', ?)", (json.dumps(
            {"hub_url": hub_url, "hub_public_key": hub_key, "site": "tower-a",
             "cabinet_id": cabinet_id}),))
        db.commit()
    admin_port = free_port()
    daemon = start_daemon(root, KIOSK_FLEET__HUB_URL=hub_url, KIOSK_ADMIN_PORT=str(admin_port))
    try:
        yield daemon, admin_port
    finally:
        daemon.stop()


def _health(admin_port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/api/v1/health", timeout=10) as r:
        body: dict[str, Any] = json.loads(r.read())
        return body


def _offline_since(admin_port: int) -> str:
    deadline = time.monotonic() + 30
    while True:
        fleet = _health(admin_port).get("fleet") or {}
        if fleet.get("online") is False and fleet.get("offline_since_local"):
            return str(fleet["offline_since_local"])
        assert time.monotonic() < deadline, f"the cabinet never reported the hub away: {fleet}"
        time.sleep(0.3)


@pytest.fixture(params=SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def page_at(request: pytest.FixtureRequest, browser: Any,
            offline_cabinet: tuple[Daemon, int]) -> Iterator[Kiosk]:
    daemon, _ = offline_cabinet
    width, height = request.param
    with kiosk_at_size(browser, daemon, width, height, timeout_ms=15_000) as k:
        yield k


def test_a_keeper_sees_since_when_the_hub_is_away_and_staff_do_not(
        page_at: Kiosk, offline_cabinet: tuple[Daemon, int], screenshots: Path) -> None:
    daemon, admin_port = offline_cabinet
    since = _offline_since(admin_port)
    page = page_at.page
    banner = page.locator("#hub-offline")

    staff = person(daemon, "ENG", 2, roles={"staff"})
    daemon.tap(staff["uid"])
    expect(page.locator("#s-choosing")).to_be_visible()
    expect(banner).to_be_hidden()  # staff: not their business; the draw works as ever
    assert any(k["status"] == "ok" for k in daemon.screen()["keys"])
    daemon.post("/kiosk/api/cancel")
    expect(page.locator("#s-idle")).to_be_visible()
    expect(banner).to_be_hidden()

    custodian = person(daemon, "CS", 0, roles={"staff", "custodian"})
    daemon.tap(custodian["uid"])
    expect(page.locator("#s-choosing")).to_be_visible()
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(f"离线 自 {since}")
    expect(banner).to_contain_text(f"offline since {since}")
    page.wait_for_timeout(150)
    size = page.viewport_size
    page_at.shot(screenshots, f"layout-{size['width']}-hub-offline")
    bad = page.evaluate(LAYOUT_JS, MIN_TEXT_PX)
    assert bad == [], "\n".join(bad)
