"""H1 shift handover on the kiosk page, in Chromium: start, the summary, the second tap.

Screenshots land in tests/browser/screenshots/ (gitignored).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from browser_rig import Daemon, Kiosk, assert_fits, key_slot, person

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser


def test_handover_at_the_screen_needs_the_incoming_badge_H1(
    kiosk: Kiosk, daemon: Daemon, screenshots: Path
) -> None:
    page = kiosk.page
    staff = person(daemon, "ENG", 10)  # used by no other browser test
    outgoing = person(daemon, "CS", 1, roles={"staff", "custodian"})
    incoming = person(daemon, "CS", 0, roles={"staff", "supervisor"})

    # A key is out, so the handover has something to hand over.
    daemon.tap(staff["uid"])
    daemon.wait_state("choosing")
    slot = key_slot(daemon, "U1101")
    daemon.post("/kiosk/api/draw", {"keys": ["U1101"], "reason_code": "repair"})
    assert daemon.wait_slot_open(slot)
    fob = daemon.post("/sim/take", {"slot": slot})["took"]
    daemon.wait_state("idle")

    daemon.tap(outgoing["uid"])
    button = page.locator("#handover-open[data-action='start']")
    expect(button).to_contain_text("交接班")
    kiosk.shot(screenshots, "handover-choosing")
    assert_fits(kiosk)
    kiosk.touch("#handover-open")  # one touch starts it

    expect(page.locator("#s-await_incoming")).to_be_visible()
    summary = page.locator("#incoming-summary")
    expect(summary).to_contain_text(outgoing["name"])
    expect(summary).to_contain_text("U1101")
    expect(summary.locator(".chip-warn")).not_to_have_count(0)  # a key out is flagged
    assert_fits(kiosk)
    kiosk.shot(screenshots, "handover-await-incoming")

    daemon.tap(outgoing["uid"])  # the outgoing cannot accept their own handover
    notice = page.locator("#notice[data-code='handover_same_person']")
    expect(notice).to_contain_text("交班人和接班人不能是同一人")
    expect(notice).to_contain_text("someone else")
    kiosk.shot(screenshots, "handover-refused")

    daemon.tap(incoming["uid"])
    done = page.locator("#idle-message[data-code='handed_over']")
    expect(done).to_contain_text("交接班完成")
    expect(done).to_contain_text("Handover accepted")
    with contextlib.closing(daemon.db()) as db:
        row = db.execute(
            "SELECT h.state, h.outgoing_card, h.incoming_card, r.kind FROM handovers h "
            "JOIN reports r ON r.id = h.report_id"
        ).fetchone()
    assert row == ("accepted", outgoing["uid"], incoming["uid"], "handover")

    # the borrower puts the key back, for the tests that follow on this daemon
    daemon.tap(staff["uid"])
    daemon.wait_state("choosing")
    daemon.post("/kiosk/api/return", {"key_number": "U1101"})
    assert daemon.wait_slot_open(slot)
    daemon.post("/sim/insert", {"fob": fob, "slot": slot})
    daemon.wait_state("idle")


def test_a_waiting_handover_is_accepted_from_the_incoming_keepers_screen_H1(
    kiosk: Kiosk, daemon: Daemon, screenshots: Path
) -> None:
    page = kiosk.page
    outgoing = person(daemon, "CS", 2, roles={"staff", "custodian"})
    incoming = person(daemon, "CS", 3, roles={"staff", "custodian"})
    daemon.tap(outgoing["uid"])
    daemon.wait_state("choosing")
    daemon.post("/kiosk/api/handover/start", {"notes": "night keys all in"})
    # The outgoing walks away: the screen gives up waiting (10 s in this daemon's config),
    # the handover itself keeps waiting for its acceptance.
    expect(page.locator("#idle-message[data-code='incoming_timeout']")).to_contain_text(
        "交接班仍在等待确认", timeout=15_000)

    daemon.tap(incoming["uid"])
    button = page.locator("#handover-open[data-action='accept']")
    expect(button).to_contain_text(outgoing["name"])
    kiosk.touches = 0
    kiosk.touch("#handover-open")
    sheet = page.locator("#handover-sheet")
    expect(sheet).to_be_visible()
    expect(page.locator("#handover-from")).to_have_text(outgoing["name"])
    expect(page.locator("#handover-summary")).to_contain_text("钥匙总数")
    expect(page.locator("#handover-summary")).not_to_contain_text("null")
    assert_fits(kiosk)
    kiosk.shot(screenshots, "handover-accept-sheet")
    kiosk.touch("#handover-accept")
    expect(page.locator("#idle-message[data-code='handed_over']")).to_contain_text("交接班完成")
    assert kiosk.touches == 2
    with contextlib.closing(daemon.db()) as db:
        row = db.execute(
            "SELECT state, incoming_card FROM handovers WHERE outgoing_card = ?",
            (outgoing["uid"],),
        ).fetchone()
    assert row == ("accepted", incoming["uid"])
