"""The screen tells the person what happened (issue 14, item 3): after a draw which key,
which slot and when it is due, in Chinese too; after a cancel with a compartment still
open, which one to shut."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_rig import Daemon, Kiosk, assert_fits, key_slot, person

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser


def test_after_a_draw_the_idle_screen_names_key_slot_and_due_time(
    kiosk: Kiosk, daemon: Daemon, screenshots: Path
) -> None:
    page, eng = kiosk.page, person(daemon, "ENG", 3)
    daemon.tap(eng["uid"])
    daemon.wait_state("choosing")
    slot = key_slot(daemon, "U603")
    daemon.post("/kiosk/api/draw", {"keys": ["U603"], "reason_code": "repair"})
    fob = daemon.post("/sim/take", {"slot": slot})["took"]
    drawn = page.locator("#idle-message[data-code='drawn']")
    expect(drawn.locator(".message-detail-zh")).to_contain_text(f"U603，格口 {slot}）请于")
    expect(drawn.locator(".message-detail-zh")).to_contain_text("前归还")
    expect(drawn.locator(".message-detail-en")).to_contain_text(f"U603 from slot {slot}: due back")
    assert_fits(kiosk)
    kiosk.shot(screenshots, "told-drawn")
    # put it back, so the shared daemon's cabinet is as it was
    daemon.tap(fob)
    daemon.wait_state("await_returner")
    daemon.tap(eng["uid"])
    daemon.wait_state("returning")
    assert daemon.wait_slot_open(slot)  # the screen moves before the latch pops
    daemon.post("/sim/insert", {"fob": fob, "slot": slot})
    daemon.wait_state("idle")


def test_cancel_with_the_compartment_open_asks_to_shut_it(
    kiosk: Kiosk, daemon: Daemon, screenshots: Path
) -> None:
    page, eng = kiosk.page, person(daemon, "ENG", 3)
    daemon.tap(eng["uid"])
    daemon.wait_state("choosing")
    slot = key_slot(daemon, "U604")
    daemon.post("/kiosk/api/draw", {"keys": ["U604"], "reason_code": "repair"})
    assert daemon.wait_slot_open(slot)
    kiosk.touch("#cancel")
    shut = page.locator("#idle-message[data-code='close_slot']")
    expect(shut).to_contain_text(f"请关好格口 {slot}")
    expect(shut).to_contain_text(f"Please shut slot {slot}")
    assert_fits(kiosk)
    kiosk.shot(screenshots, "told-close-slot")
    daemon.post("/sim/shut", {"slot": slot})
