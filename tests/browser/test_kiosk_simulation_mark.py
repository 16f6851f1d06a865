"""Simulate mode says so on every screen (issue 14, item 16): a small 模拟 SIMULATION mark
that touches pass through, so a demo cabinet is never taken for a real one."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_rig import Daemon, Kiosk, person

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser


def test_simulation_mark_on_every_screen(kiosk: Kiosk, daemon: Daemon, screenshots: Path) -> None:
    page = kiosk.page
    mark = page.locator("#sim-mark")
    expect(page.locator("#s-idle")).to_be_visible()
    expect(mark).to_be_visible()
    expect(mark).to_have_text("模拟 SIMULATION")
    eng = person(daemon, "ENG", 1)
    daemon.tap(eng["uid"])
    expect(page.locator("#s-choosing")).to_be_visible()
    expect(mark).to_be_visible()
    assert mark.evaluate("n => getComputedStyle(n).pointerEvents") == "none"
    kiosk.shot(screenshots, "simulation-mark-choosing")
    kiosk.touch("#cancel")
    expect(page.locator("#s-idle")).to_be_visible()
    expect(mark).to_be_visible()
