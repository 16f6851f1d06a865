"""K4/K5 on the kiosk page: a key's fob asks for the returner's badge before its slot opens.

Screenshots land in tests/browser/screenshots/ (gitignored).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from browser_rig import Daemon, Kiosk, assert_fits, key_slot, person

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

# The browser tests share one daemon: these people and keys are used by no other test
# (test_kiosk_page, for one, deletes the access rights of ENG 4).


def _draw(daemon: Daemon, uid: str, key_number: str) -> tuple[int, str]:
    daemon.tap(uid)
    daemon.wait_state("choosing")
    slot = key_slot(daemon, key_number)
    daemon.post("/kiosk/api/draw", {"keys": [key_number], "reason_code": "repair"})
    assert daemon.wait_slot_open(slot)
    fob: str = daemon.post("/sim/take", {"slot": slot})["took"]
    assert daemon.wait_slot_shut(slot)
    daemon.wait_state("idle")
    return slot, fob


def test_fob_then_badge_opens_the_slot_and_records_the_returner_K4(
    kiosk: Kiosk, daemon: Daemon, screenshots: Path
) -> None:
    page, borrower = kiosk.page, person(daemon, "ENG", 8)
    slot, fob = _draw(daemon, borrower["uid"], "U1303")

    daemon.tap(fob)
    expect(page.locator("#s-await_returner")).to_be_visible()
    expect(page.locator("#returner-key")).to_contain_text("U1303")
    expect(page.locator("#returner-skip")).to_contain_text("没带工卡")
    assert not daemon.slot_open(slot), "nothing opens before a badge or the no-badge choice"
    assert_fits(kiosk)
    kiosk.shot(screenshots, "await-returner")

    daemon.tap(borrower["uid"])
    expect(page.locator("#app")).to_have_attribute("data-state", "returning")
    assert daemon.wait_slot_open(slot)
    daemon.post("/sim/insert", {"fob": fob, "slot": slot})
    expect(page.locator("#idle-message[data-code='returned']")).to_contain_text("已归还")
    with contextlib.closing(daemon.db()) as db:
        row = db.execute(
            "SELECT l.returned_by_other, p.name FROM loans l JOIN keys k ON k.id = l.key_id "
            "JOIN people p ON p.id = l.returned_by_id WHERE k.key_number = 'U1303'"
        ).fetchone()
    assert row == (0, borrower["name"])


def test_no_badge_with_me_returns_it_flagged_K5(kiosk: Kiosk, daemon: Daemon) -> None:
    page, borrower = kiosk.page, person(daemon, "ENG", 9)
    slot, fob = _draw(daemon, borrower["uid"], "U1305")
    daemon.tap(fob)
    expect(page.locator("#s-await_returner")).to_be_visible()
    kiosk.touch("#returner-skip")
    expect(page.locator("#app")).to_have_attribute("data-state", "returning")
    assert daemon.wait_slot_open(slot)
    daemon.post("/sim/insert", {"fob": fob, "slot": slot})
    # K5: the screen says the return was recorded without a badge and flagged, not "thank you"
    flagged = page.locator("#idle-message[data-code='returned_unidentified']")
    expect(flagged).to_contain_text("未刷工卡")
    with contextlib.closing(daemon.db()) as db:
        row = db.execute(
            "SELECT l.returned_by_other, l.returned_by_id FROM loans l "
            "JOIN keys k ON k.id = l.key_id WHERE k.key_number = 'U1305'"
        ).fetchone()
        alarms = db.execute(
            "SELECT count(*) FROM alarms a JOIN keys k ON k.id = a.key_id "
            "WHERE k.key_number = 'U1305' AND a.kind = 'returned_by_other'"
        ).fetchone()
    assert row == (1, None) and alarms == (1,)
