"""After hours on the screen (issue 14, item 5; K8): the idle screen says it is after hours
and whom to call, and the duty-manager screen names the manager on the roster and their
phone, so nobody waits at the cabinet for a manager they do not know."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from browser_rig import Daemon, assert_fits, open_kiosk, person, start_daemon

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser


def _rostered(daemon: Daemon) -> tuple[str, str]:
    """(name, phone) of the duty manager on the demo roster now."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    with contextlib.closing(daemon.db()) as db:
        row = db.execute(
            "SELECT p.name, p.phone FROM duty_roster d JOIN people p ON p.id = d.person_id "
            "WHERE d.starts_at <= ? AND d.ends_at > ? ORDER BY d.starts_at DESC", (now, now),
        ).fetchone()
    assert row is not None, "the demo roster covers every hour"
    return str(row[0]), str(row[1])


def test_K8_idle_and_manager_screens_name_the_rostered_manager(
    browser: Any, tmp_path: Path, screenshots: Path
) -> None:
    closed = start_daemon(tmp_path, KIOSK_BUSINESS_HOURS__WEEKDAYS="[]")  # never open
    try:
        name, phone = _rostered(closed)
        kiosk = open_kiosk(browser, closed.url)
        page = kiosk.page
        after = page.locator("#idle-after-hours")
        expect(after).to_be_visible()
        expect(after).to_contain_text("非工作时间")
        expect(after).to_contain_text("After hours")
        expect(page.locator("#rostered-name")).to_have_text(name)
        expect(page.locator("#rostered-phone")).to_contain_text(phone)
        assert_fits(kiosk)
        kiosk.shot(screenshots, "idle-after-hours")

        eng = person(closed, "ENG", 0)
        closed.tap(eng["uid"])
        expect(page.locator("#s-await_manager")).to_be_visible()
        expect(page.locator("#manager-rostered")).to_contain_text(name)
        expect(page.locator("#manager-rostered")).to_contain_text(phone)
        assert_fits(kiosk)
        kiosk.shot(screenshots, "await-manager-rostered")
        kiosk.touch("#cancel")  # back at idle: the last result and the after-hours box together
        expect(page.locator("#idle-message[data-code='cancelled']")).to_be_visible()
        expect(after).to_be_visible()
        assert_fits(kiosk)
        kiosk.shot(screenshots, "idle-after-hours-message")
        assert kiosk.errors == []
        page.context.close()
    finally:
        closed.stop()


def test_idle_screen_in_business_hours_says_nothing_of_after_hours(kiosk: Any) -> None:
    expect(kiosk.page.locator("#s-idle")).to_be_visible()
    expect(kiosk.page.locator("#idle-after-hours")).to_be_hidden()
