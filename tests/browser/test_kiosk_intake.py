"""K1 intake on the kiosk screen (a custodian registers a received key) and the "other" reason
typed on the on-screen keyboard, in a real Chromium against a real ``kiosk run`` daemon.

As in test_kiosk_page.py, the test plays the finger (``kiosk.touch``, counted) and the
hardware (``/sim/*``). Screenshots land in tests/browser/screenshots/ (gitignored).
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any

import pytest
from browser_rig import Daemon, Kiosk

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

MIN_TARGET = 56  # px: every touch target on the intake form and the keyboard


def custodian(daemon: Daemon) -> dict[str, Any]:
    """A key custodian's name and card, read from the daemon's database (person_roles)."""
    with contextlib.closing(daemon.db()) as db:
        row = db.execute(
            "SELECT p.name, c.uid FROM people p JOIN cards c ON c.person_id = p.id "
            "JOIN person_roles r ON r.person_id = p.id WHERE lower(r.role) = 'custodian' "
            "ORDER BY p.staff_no LIMIT 1"
        ).fetchone()
    assert row, "the demo data has no custodian"
    return {"name": row[0], "uid": row[1]}


def staff(daemon: Daemon, dept: str, index: int) -> dict[str, Any]:
    """A department's ``index``-th person who is not a custodian."""
    people = [p for p in daemon.people[dept] if "custodian" not in p["roles"]]
    return people[index]


def open_slots(daemon: Daemon) -> list[int]:
    return sorted(int(n) for n, s in daemon.get("/sim/state")["slots"].items() if s["open"])


@pytest.fixture(autouse=True)
def compartments_shut(daemon: Daemon) -> None:
    """Another test on the shared daemon may have left a compartment open (its person walked
    off: the screen said 请关好格口 and a slot_left_open alarm followed). Someone shuts them
    before the custodian's turn, as at a real cabinet, so each test here sees only the
    compartments that its own intake opens."""
    for slot in open_slots(daemon):
        daemon.post("/sim/shut", {"slot": slot})
    deadline = time.monotonic() + 5
    while open_slots(daemon) and time.monotonic() < deadline:
        time.sleep(0.05)


def type_text(kiosk: Kiosk, host: str, text: str) -> None:
    """Type on the on-screen keyboard inside ``host``: one touch per character."""
    for ch in text:
        kiosk.touch(f"{host} [data-kb='{'space' if ch == ' ' else ch}']")


def assert_fits(kiosk: Kiosk) -> None:
    """Nothing scrolls; every visible button is inside 1024×600 and at least 56×56 px."""
    report = kiosk.page.evaluate(
        """(min) => {
        const doc = document.scrollingElement;
        const bad = [];
        for (const b of document.querySelectorAll('button')) {
            const r = b.getBoundingClientRect();
            if (!r.width || !r.height) continue;
            if (r.width < min || r.height < min || r.left < 0 || r.top < 0
                || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5) {
                bad.push(`${b.id || JSON.stringify(b.dataset)}: ${Math.round(r.left)},`
                         + `${Math.round(r.top)} ${Math.round(r.width)}x${Math.round(r.height)}`);
            }
        }
        // content cut off inside a screen (a grid squeezed below its content) counts too
        const clipped = [...document.querySelectorAll('.screen.active, .sheet:not([hidden])')]
            .filter((s) => s.scrollHeight > s.clientHeight + 1).map((s) => s.id || s.className);
        return {scroll: [doc.scrollWidth, doc.scrollHeight, innerWidth, innerHeight], bad, clipped};
    }""",
        MIN_TARGET,
    )
    width, height, view_w, view_h = report["scroll"]
    assert width <= view_w and height <= view_h, report
    assert report["clipped"] == [], report
    assert report["bad"] == [], f"buttons off-screen or under {MIN_TARGET} px: {report['bad']}"


def test_custodian_registers_a_key(kiosk: Kiosk, daemon: Daemon, screenshots: Path) -> None:
    page, who = kiosk.page, custodian(daemon)
    daemon.tap(who["uid"])
    expect(page.locator("#person-name")).to_have_text(who["name"])
    register = page.locator("#intake-open")
    expect(register).to_be_visible()
    expect(register).to_contain_text("登记钥匙")
    expect(register).to_contain_text("Register a key")
    assert_fits(kiosk)
    kiosk.shot(screenshots, "intake-choosing-custodian")

    kiosk.touch("#intake-open")  # 1
    expect(page.locator("#s-intake")).to_be_visible()
    expect(page.locator("[data-intake-type='unit']")).to_have_attribute("aria-pressed", "true")
    for digit in "3007":  # 2-5: the room on the keypad (单元 Unit is preset)
        kiosk.touch(f"[data-room-pad='{digit}']")
    expect(page.locator("#intake-room")).to_have_text("U3007")
    kiosk.touch("[data-count='2']")  # 6
    kiosk.touch("[data-dept='装修公司']")  # 7
    expect(page.locator("#intake-preview")).to_contain_text("U3007")
    expect(page.locator("#intake-preview")).to_contain_text("3007 室")
    assert_fits(kiosk)
    kiosk.shot(screenshots, "intake-form-key")

    kiosk.touch("#intake-next")  # 8
    expect(page.locator("#intake-deliverer")).to_be_visible()
    expect(page.locator("#intake-submit")).to_have_attribute("aria-disabled", "true")
    type_text(kiosk, "#intake-name", "SUN WEI")  # 9-15
    expect(page.locator("#intake-name .kb-display")).to_have_text("SUN WEI")
    kiosk.touch("#intake-confirm")  # 16: K1, the deliverer's confirmation
    expect(page.locator("#intake-confirm")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#intake-summary")).to_contain_text("装修公司")
    expect(page.locator("#intake-summary")).to_contain_text("SUN WEI")
    assert_fits(kiosk)
    kiosk.shot(screenshots, "intake-form-deliverer")

    assert open_slots(daemon) == []
    kiosk.touch("#intake-submit")  # 17
    expect(page.locator("#app")).to_have_attribute("data-state", "intake")
    expect(page.locator("#s-slots")).to_be_visible()
    expect(page.locator("#slot-zh")).to_have_text("请将新钥匙放入亮灯的格口")
    tile = page.locator(".slot-tile")
    expect(tile).to_have_count(1)
    expect(tile.locator(".slot-key")).to_contain_text("U3007")
    slot = int(tile.get_attribute("data-slot") or 0)
    assert kiosk.touches == 17
    assert daemon.wait_slot_open(slot)
    assert open_slots(daemon) == [slot]  # a free slot, open, and only that one
    assert_fits(kiosk)
    kiosk.shot(screenshots, "intake-slot")

    daemon.post("/sim/insert", {"fob": "C0FFEE3007", "slot": slot})
    done = page.locator("#idle-message[data-code='received']")
    expect(done).to_contain_text("钥匙已登记入柜")
    expect(done).to_have_class(re.compile(r"\blevel-ok\b"))

    with contextlib.closing(daemon.db()) as db:
        row = db.execute(
            "SELECT k.label, k.copies, s.number, g.code, i.key_count, i.delivered_by_name, "
            "i.delivered_by_department, i.room_number, i.deliverer_confirmed "
            "FROM keys k JOIN intake_records i ON i.key_id = k.id "
            "JOIN slots s ON s.id = k.home_slot_id JOIN key_groups g ON g.id = k.group_id "
            "WHERE k.key_number = 'U3007'"
        ).fetchone()
    assert row == ("3007 室", 2, slot, "UNIT", 2, "SUN WEI", "装修公司", "3007", 1)


def test_room_and_key_number_are_checked_at_the_first_step(
    kiosk: Kiosk, daemon: Daemon, screenshots: Path
) -> None:
    """Issue 14, item 7: a room the building does not have is refused at step 1, before the
    deliverer's details are typed; a room that already has a key is a second delivery and
    gets its own number (U601-2)."""
    page, who = kiosk.page, custodian(daemon)
    daemon.tap(who["uid"])
    kiosk.touch("#intake-open")
    for digit in "3099":
        kiosk.touch(f"[data-room-pad='{digit}']")
    kiosk.touch("[data-dept='业主']")
    kiosk.touch("#intake-next")
    expect(page.locator("#toast")).to_be_visible()
    expect(page.locator("#toast-zh")).to_have_text("没有这个房号，请核对")
    kiosk.shot(screenshots, "intake-unknown-room")
    kiosk.touch("#toast")
    expect(page.locator("#intake-key")).to_be_visible()  # still the first step
    assert daemon.screen()["state"] == "choosing" and open_slots(daemon) == []
    kiosk.touch("#intake-back")
    kiosk.touch("#intake-open")
    for digit in "601":
        kiosk.touch(f"[data-room-pad='{digit}']")
    kiosk.touch("[data-dept='业主']")
    kiosk.touch("#intake-next")
    expect(page.locator("#intake-deliverer")).to_be_visible()
    expect(page.locator("#intake-summary")).to_contain_text("U601-2")
    kiosk.shot(screenshots, "intake-second-delivery")
    kiosk.touch("#intake-back2")
    expect(page.locator("#intake-room")).to_have_text("U601")
    kiosk.touch("#intake-back")
    expect(page.locator("#s-choosing")).to_be_visible()
    kiosk.touch("#cancel")
    expect(page.locator("#app")).to_have_attribute("data-state", "idle")
    assert open_slots(daemon) == []


def test_non_custodian_sees_no_register_button(kiosk: Kiosk, daemon: Daemon) -> None:
    page, eng = kiosk.page, staff(daemon, "ENG", 7)
    daemon.tap(eng["uid"])
    expect(page.locator("#person-name")).to_have_text(eng["name"])
    expect(page.locator("#s-choosing")).to_be_visible()
    expect(page.locator("#intake-open")).to_be_hidden()
    # and the server refuses a hand-made request too
    status, body = daemon.request(
        "POST",
        "/kiosk/api/intake",
        {
            "key_number": "U3008",
            "label": "3008 室",
            "delivered_by": "X",
            "delivered_by_department": "业主",
        },
    )
    assert (status, body["code"]) == (409, "intake_not_custodian")
    assert open_slots(daemon) == []


def test_other_reason_with_typed_text(kiosk: Kiosk, daemon: Daemon, screenshots: Path) -> None:
    page, eng = kiosk.page, staff(daemon, "ENG", 6)
    daemon.tap(eng["uid"])
    expect(page.locator("#s-choosing")).to_be_visible()
    kiosk.touch("[data-floor='9']")
    kiosk.touch("[data-key='U901']")
    kiosk.touch("[data-reason='other']")
    expect(page.locator("#other-text")).to_be_visible()
    expect(page.locator("#reason-grid")).to_be_hidden()
    expect(page.locator("#other-go")).to_have_attribute("aria-disabled", "true")
    type_text(kiosk, "#other-text", "CHECK LEAK")
    expect(page.locator("#other-text .kb-display")).to_have_text("CHECK LEAK")
    assert_fits(kiosk)
    kiosk.shot(screenshots, "reason-other-keyboard")
    kiosk.touch("#other-go")
    assert kiosk.touches == 3 + 10 + 1
    expect(page.locator("#app")).to_have_attribute("data-state", "releasing")
    slot = int(page.locator(".slot-tile").get_attribute("data-slot") or 0)
    assert daemon.wait_slot_open(slot)
    daemon.post("/sim/take", {"slot": slot})
    expect(page.locator("#idle-message[data-code='drawn']")).to_be_visible()
    with contextlib.closing(daemon.db()) as db:
        row = db.execute(
            "SELECT l.reason_code, l.reason_text FROM loans l JOIN keys k ON k.id = l.key_id "
            "WHERE k.key_number = 'U901' AND l.returned_at IS NULL"
        ).fetchone()
    assert row == ("other", "CHECK LEAK")
