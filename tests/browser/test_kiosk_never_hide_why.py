"""The screen never hides why, and shows each person only what concerns them (issue 14,
item 2): a proxy sees their owner's unit only, with "需业主电话确认" while the owner's call
is not on record, and never another owner's unit or a master key (K6); searching a room finds
it, not only the rooms whose number ends with it (605, not only 1605); a key out says so, and who has it and until when only to a keeper.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import pytest
from browser_rig import Daemon, Kiosk, key_slot, person

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser


def proxy(daemon: Daemon, staff_no: str) -> dict[str, Any]:
    """A demo owner's proxy (P2001 has the owner's phone call on record, P2002 not yet)."""
    with contextlib.closing(daemon.db()) as db:
        uid, name, key_number = db.execute(
            "SELECT c.uid, p.name, k.key_number FROM people p JOIN cards c ON c.person_id = p.id "
            "JOIN owner_authorizations a ON a.proxy_id = p.id "
            "JOIN authorization_units au ON au.authorization_id = a.id "
            "JOIN keys k ON k.unit_id = au.unit_id WHERE p.staff_no = ?",
            (staff_no,),
        ).fetchone()
    return {"uid": uid, "name": name, "key_number": key_number}


def test_K6_a_proxy_sees_their_owners_unit_only_and_why_it_waits(
    kiosk: Kiosk, daemon: Daemon, screenshots: Path
) -> None:
    page, waiting = kiosk.page, proxy(daemon, "P2002")
    daemon.tap(waiting["uid"])
    data = daemon.wait_state("choosing")
    assert [k["key_number"] for k in data["keys"]] == [waiting["key_number"]]
    assert data["keys"][0]["status"] == "phone_confirmation_required"
    tile = page.locator(f"[data-key='{waiting['key_number']}']")
    expect(tile).to_be_visible()
    expect(tile).to_contain_text("需业主电话确认")
    expect(tile).to_contain_text("Owner must phone")
    kiosk.shot(screenshots, "proxy-waiting-for-the-call")
    floor = page.locator("#floor-grid .floor").bounding_box()
    assert floor is not None and floor["height"] < 120  # one floor: a button, not a column
    # searching another unit or a master key finds nothing for a proxy
    kiosk.touch("#mode-search")
    for digit in "605":
        kiosk.touch(f"#keypad [data-pad='{digit}']")
    expect(page.locator("#key-grid .key")).to_have_count(0)
    expect(page.locator("#key-grid")).to_contain_text("没有找到钥匙")


def test_searching_605_finds_605_not_only_1605_and_says_it_is_out_and_who_has_it_to_a_keeper(
    kiosk: Kiosk, daemon: Daemon, screenshots: Path
) -> None:
    page = kiosk.page
    borrower = person(daemon, "ENG", 1)
    colleague = person(daemon, "ENG", 2)
    custodian = person(daemon, "CS", 0, roles={"staff", "custodian"})
    daemon.tap(borrower["uid"])
    daemon.wait_state("choosing")
    slot = key_slot(daemon, "U605")
    daemon.post("/kiosk/api/draw", {"keys": ["U605"], "reason_code": "repair"})
    assert daemon.wait_slot_open(slot)
    fob = daemon.post("/sim/take", {"slot": slot})["took"]
    daemon.wait_state("idle")
    try:
        # a colleague: 605 is found, "已借出", and not whose
        daemon.tap(colleague["uid"])
        expect(page.locator("#s-choosing")).to_be_visible()
        kiosk.touch("#mode-search")
        for digit in "605":
            kiosk.touch(f"#keypad [data-pad='{digit}']")
        first = page.locator("#key-grid .key").first
        expect(first).to_have_attribute("data-key", "U605")
        expect(first).to_contain_text("已借出")
        expect(first).not_to_contain_text(borrower["name"])
        expect(page.locator("[data-key='U1605']")).to_be_visible()
        kiosk.shot(screenshots, "search-605-colleague")
        daemon.post("/kiosk/api/cancel")
        expect(page.locator("#s-idle")).to_be_visible()

        # a keeper: who has it and until when
        daemon.tap(custodian["uid"])
        daemon.wait_state("choosing")
        expect(page.locator("#s-choosing")).to_be_visible()
        kiosk.touch("#mode-search")
        for digit in "605":
            kiosk.touch(f"#keypad [data-pad='{digit}']")
        tile = page.locator("[data-key='U605']")
        expect(tile).to_contain_text(re.compile(rf"已借出 · {borrower['name']} · 至 \d\d:\d\d"))
        kiosk.shot(screenshots, "search-605-keeper")
        daemon.post("/kiosk/api/cancel")
    finally:
        daemon.tap(borrower["uid"])
        daemon.wait_state("choosing")
        daemon.post("/kiosk/api/return", {"key_number": "U605"})
        assert daemon.wait_slot_open(slot)
        daemon.post("/sim/insert", {"fob": fob, "slot": slot})
        daemon.wait_state("idle")
