"""The kiosk touchscreen page in a real Chromium against a real ``kiosk run`` daemon.

The test plays both sides: the person's finger on the page (``kiosk.touch``, counted) and
the hardware through the simulate-mode control surface (``/sim/tap``, ``/sim/take``…).
Screenshots land in tests/browser/screenshots/ (gitignored).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from browser_rig import Daemon, Kiosk, assert_fits, key_slot, open_kiosk, person, start_daemon

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

def test_idle_screen(kiosk: Kiosk, screenshots: Path) -> None:
    page = kiosk.page
    expect(page.locator("#s-idle")).to_be_visible()
    expect(page.locator(".tap-zh")).to_have_text("请刷卡")
    expect(page.locator(".tap-en")).to_have_text("Please tap your badge")
    expect(page.locator("#clock-time")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    expect(page.locator("#cancel")).to_be_hidden()
    assert_fits(kiosk)
    kiosk.shot(screenshots, "idle")


def test_staff_draws_a_key_in_three_touches(
    kiosk: Kiosk, daemon: Daemon, screenshots: Path
) -> None:
    page, eng = kiosk.page, person(daemon, "ENG", 1)
    daemon.tap(eng["uid"])
    expect(page.locator("#person-name")).to_have_text(eng["name"])
    expect(page.locator("#s-choosing")).to_be_visible()
    expect(page.locator("#cancel")).to_be_visible()
    slot = key_slot(daemon, "U601")
    assert_fits(kiosk)
    kiosk.shot(screenshots, "choosing")

    kiosk.touch("[data-floor='6']")  # 1: floor tab
    with page.expect_response(lambda r: r.url.endswith("/kiosk/api/pick")) as picked:
        kiosk.touch("[data-key='U601']")  # 2: the key
    # issue 15: the touch told the cabinet, which armed the slot's board while the person
    # reads the reasons (the draw is then one frame from the lock)
    assert picked.value.json() == {"armed": 1}
    expect(page.locator("#reason-sheet")).to_be_visible()
    expect(page.locator("#sheet-keys")).to_contain_text("601")
    assert_fits(kiosk)
    kiosk.shot(screenshots, "reasons")
    kiosk.touch("[data-reason='repair']")  # 3: the reason confirms the draw

    expect(page.locator("#s-slots")).to_be_visible()
    expect(page.locator("#app")).to_have_attribute("data-state", "releasing")
    expect(page.locator(f".slot-tile[data-slot='{slot}'] .slot-no")).to_have_text(str(slot))
    expect(page.locator(".slot-key")).to_contain_text("U601")
    assert kiosk.touches == 3
    assert daemon.wait_slot_open(slot)
    assert_fits(kiosk)
    kiosk.shot(screenshots, "releasing")

    daemon.post("/sim/take", {"slot": slot})
    drawn = page.locator("#idle-message[data-code='drawn']")
    expect(drawn).to_contain_text("已领取")
    expect(drawn).to_contain_text("Drawn")
    expect(drawn).to_have_class(re.compile(r"\blevel-ok\b"))
    loans = daemon.get("/kiosk/api/screen")
    assert loans["state"] == "idle"
    with contextlib.closing(daemon.db()) as db:
        row = db.execute(
            "SELECT l.reason_code FROM loans l JOIN keys k ON k.id = l.key_id "
            "WHERE k.key_number = 'U601' AND l.returned_at IS NULL"
        ).fetchone()
    assert row == ("repair",)

    # the same person again: the list opens on the floor they last drew from (two touches)
    kiosk.touches = 0
    daemon.tap(eng["uid"])
    expect(page.locator("[data-floor='6']")).to_have_class(re.compile(r"\bon\b"))
    kiosk.touch("[data-key='U603']")
    kiosk.touch("[data-reason='patrol']")
    expect(page.locator("#app")).to_have_attribute("data-state", "releasing")
    assert kiosk.touches == 2
    assert daemon.wait_slot_open(key_slot_of(daemon, "U603"))
    kiosk.touch("#cancel")
    expect(page.locator("#app")).to_have_attribute("data-state", "idle")


def test_unknown_card_is_refused_plainly(kiosk: Kiosk, daemon: Daemon, screenshots: Path) -> None:
    daemon.tap("DEADBEEF")
    box = kiosk.page.locator("#idle-message[data-code='card_unknown']")
    expect(box).to_contain_text("卡片未登记")
    expect(box).to_contain_text("Card not registered")
    expect(box).to_have_class(re.compile(r"\blevel-error\b"))
    assert daemon.screen()["state"] == "idle"
    kiosk.shot(screenshots, "error-unknown-card")


def test_special_room_needs_approval_and_cannot_be_drawn(kiosk: Kiosk, daemon: Daemon) -> None:
    page, eng = kiosk.page, person(daemon, "ENG", 3)
    daemon.tap(eng["uid"])
    expect(page.locator("#s-choosing")).to_be_visible()
    slot = key_slot(daemon, "E-配电房-B1")
    kiosk.touch("[data-floor='-1']")
    key = page.locator("[data-key='E-配电房-B1']")
    expect(key).to_contain_text("需领导审批 — 申请")  # why, and what to do (issue 14)

    kiosk.touch("[data-key='E-配电房-B1']")  # touching it asks the leader, opens nothing
    expect(page.locator("#notice[data-code='approval_requested']")).to_contain_text("申请审批")
    expect(page.locator("#reason-sheet")).to_be_hidden()
    assert daemon.screen()["state"] == "choosing"
    assert not daemon.slot_open(slot)
    # and the server refuses it too, whatever a page might send
    status, body = daemon.request(
        "POST", "/kiosk/api/draw", {"keys": ["E-配电房-B1"], "reason_code": "repair"}
    )
    assert (status, body["code"]) == (409, "approval_required")
    assert not daemon.slot_open(slot)


def test_refusal_from_the_server_is_shown_in_both_languages(
    kiosk: Kiosk, daemon: Daemon, screenshots: Path
) -> None:
    """The list was right when shown; an administrator revokes the rights before the reason is
    touched: the draw answers 409 and the page says so in zh and en."""
    page, eng = kiosk.page, person(daemon, "ENG", 4)
    daemon.tap(eng["uid"])
    expect(page.locator("#s-choosing")).to_be_visible()
    slot = key_slot(daemon, "U701")
    with contextlib.closing(daemon.db()) as db, db:
        db.execute("DELETE FROM access_rights WHERE person_id = ?", (eng["id"],))
    kiosk.touch("[data-floor='7']")
    kiosk.touch("[data-key='U701']")
    kiosk.touch("[data-reason='patrol']")
    expect(page.locator("#toast")).to_be_visible()
    expect(page.locator("#toast-zh")).to_have_text("您无权领取此钥匙")
    expect(page.locator("#toast-en")).to_have_text("You may not draw this key now")
    expect(page.locator("#notice")).to_be_hidden()  # said once, not twice; no stale message
    assert not daemon.slot_open(slot)
    assert daemon.screen()["state"] == "choosing"
    kiosk.shot(screenshots, "error-409")


def test_return_from_my_loans_opens_the_slot(
    kiosk: Kiosk, daemon: Daemon, screenshots: Path
) -> None:
    page, eng = kiosk.page, person(daemon, "ENG", 2)
    # a key out with this person (drawn through the same endpoints, then taken out)
    daemon.tap(eng["uid"])
    daemon.wait_state("choosing")
    slot = key_slot(daemon, "U602")
    daemon.post("/kiosk/api/draw", {"keys": ["U602"], "reason_code": "cleaning"})
    fob = daemon.post("/sim/take", {"slot": slot})["took"]
    daemon.wait_state("idle")

    daemon.tap(eng["uid"])
    back = page.locator("[data-return='U602']")
    expect(back).to_contain_text("归还")
    expect(back).to_contain_text("due")  # and when it is due, in full on the button
    kiosk.shot(screenshots, "choosing-my-loans")
    kiosk.touch("[data-return='U602']")
    expect(page.locator("#app")).to_have_attribute("data-state", "returning")
    expect(page.locator(f".slot-tile[data-slot='{slot}'] .slot-no")).to_have_text(str(slot))
    assert daemon.wait_slot_open(slot)
    assert kiosk.touches == 1
    kiosk.shot(screenshots, "returning")

    daemon.post("/sim/insert", {"fob": fob, "slot": slot})
    done = page.locator("#idle-message[data-code='returned']")
    expect(done).to_contain_text("已归还")
    expect(done).to_contain_text("Returned")


def test_master_key_waits_for_a_custodian(kiosk: Kiosk, daemon: Daemon, screenshots: Path) -> None:
    page = kiosk.page
    borrower = person(daemon, "CS", 0, roles={"staff"})
    custodian = person(daemon, "CS", 0, roles={"staff", "custodian"})
    stranger = person(daemon, "SEC", 0)
    daemon.tap(borrower["uid"])
    expect(page.locator("#s-choosing")).to_be_visible()
    slot = key_slot(daemon, "M-01")
    kiosk.touch("[data-floor='other']")
    expect(page.locator("[data-key='M-01']")).to_contain_text("需管理员确认")
    kiosk.touch("[data-key='M-01']")
    kiosk.touch("[data-reason='emergency']")
    assert kiosk.touches == 3
    expect(page.locator("#s-await_cosign")).to_be_visible()
    expect(page.locator("#cosign-keys")).to_contain_text("M-01")
    assert not daemon.slot_open(slot)

    daemon.tap(stranger["uid"])  # not a custodian: refused, still waiting
    notice = page.locator("#notice[data-code='cosigner_not_custodian']")
    expect(notice).to_contain_text("请由钥匙管理员刷卡确认")
    expect(notice).to_contain_text("A key custodian must confirm")
    assert_fits(kiosk)
    kiosk.shot(screenshots, "await-cosign-refused")

    daemon.tap(custodian["uid"])
    expect(page.locator("#app")).to_have_attribute("data-state", "releasing")
    assert daemon.wait_slot_open(slot)
    kiosk.touch("#cancel")  # the compartment is still open: the screen asks to shut it
    expect(page.locator("#idle-message[data-code='close_slot']")).to_contain_text(
        f"请关好格口 {slot}")
    assert daemon.screen()["state"] == "idle"
    daemon.post("/sim/shut", {"slot": slot})


def test_two_keys_and_the_keypad_search(kiosk: Kiosk, daemon: Daemon) -> None:
    page, eng = kiosk.page, person(daemon, "ENG", 5)
    daemon.tap(eng["uid"])
    expect(page.locator("#s-choosing")).to_be_visible()
    kiosk.touch("#mode-search")
    for digit in "1203":
        kiosk.touch(f"[data-pad='{digit}']")
    expect(page.locator("#keypad-display")).to_have_text("1203")
    first = page.locator("#key-grid .key").first
    expect(first).to_have_attribute("data-key", "U1203")
    assert_fits(kiosk)
    kiosk.touch("#key-grid .key >> nth=0")
    kiosk.touch("#sheet-add")  # add a second key before choosing the reason
    kiosk.touch("#mode-floors")
    kiosk.touch("[data-floor='8']")
    kiosk.touch("[data-key='U801']")
    expect(page.locator("#selection-bar")).to_contain_text("2")
    kiosk.touch("#selection-go")
    kiosk.touch("[data-reason='meter']")
    expect(page.locator("#app")).to_have_attribute("data-state", "releasing")
    slots = sorted(
        int(s)
        for s in page.locator(".slot-tile").evaluate_all("tiles => tiles.map(t => t.dataset.slot)")
    )
    assert slots == sorted([key_slot_of(daemon, "U1203"), key_slot_of(daemon, "U801")])
    assert all(daemon.wait_slot_open(s) for s in slots)
    kiosk.touch("#cancel")
    expect(page.locator("#app")).to_have_attribute("data-state", "idle")


def key_slot_of(daemon: Daemon, key_number: str) -> int:
    """A key's home slot from the database (works in any state)."""
    with contextlib.closing(daemon.db()) as db:
        row = db.execute(
            "SELECT s.number FROM keys k JOIN slots s ON s.id = k.home_slot_id "
            "WHERE k.key_number = ?",
            (key_number,),
        ).fetchone()
    return int(row[0])


def test_after_hours_duty_manager_then_reconnecting(
    browser: Any, tmp_path: Path, screenshots: Path
) -> None:
    """A daemon whose calendar makes today a closed day: the K8 screen; then the daemon stops
    and the page says it is reconnecting."""
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).isoweekday()
    open_days = [d for d in range(1, 8) if d != today]
    night = start_daemon(tmp_path, KIOSK_BUSINESS_HOURS__WEEKDAYS=str(open_days))
    try:
        kiosk = open_kiosk(browser, night.url)
        page = kiosk.page
        eng = person(night, "ENG", 0)
        night.tap(eng["uid"])
        expect(page.locator("#s-await_manager")).to_be_visible()
        expect(page.locator("#s-await_manager")).to_contain_text("值班经理")
        expect(page.locator("#manager-sub")).to_contain_text(eng["name"])
        expect(page.locator("#manager-count")).to_have_text(re.compile(r"^[1-9]\d*$"))
        assert_fits(kiosk)
        kiosk.shot(screenshots, "await-manager")
        kiosk.touch("#cancel")
        expect(page.locator("#idle-message[data-code='cancelled']")).to_be_visible()

        night.stop()
        expect(page.locator("#conn")).to_be_visible()
        expect(page.locator("#conn")).to_contain_text("正在重新连接")
        kiosk.shot(screenshots, "reconnecting")
        assert kiosk.errors == []
        page.context.close()
    finally:
        night.stop()
