"""Issue 13, return anywhere, on the kiosk page: on a cabinet with key identity, a key whose
group may go back to any free slot (the demo's public-area keys) asks the person where it
goes: its own slot or one of the free slots nearest it. The slot touched opens, and once
the receptor reads that key there the return is recorded (K4) with the slot as its new home.

The identity daemon (tests/browser/conftest.py); SEC 5 is used by no other browser test.
Screenshots land in tests/browser/screenshots/.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from browser_rig import Daemon, Kiosk, person
from test_kiosk_layout import SIZES, check_layout

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser


def draw_public_key(daemon: Daemon, uid: str) -> tuple[str, int, str]:
    """The person draws a public-area key and takes it: (key number, its slot, its fob)."""
    daemon.tap(uid)
    data = daemon.wait_state("choosing")
    key = next(k for k in data["keys"] if k["key_number"].startswith("P-")
               and k["status"] == "ok" and not k["cosign"])
    daemon.post("/kiosk/api/draw", {"keys": [key["key_number"]], "reason_code": "patrol"})
    assert daemon.wait_slot_open(key["slot"])
    fob: str = daemon.post("/sim/take", {"slot": key["slot"]})["took"]
    assert daemon.wait_slot_shut(key["slot"])
    daemon.wait_state("idle")
    return key["key_number"], key["slot"], fob


def home_of(daemon: Daemon, key_number: str) -> int:
    with contextlib.closing(daemon.db()) as db:
        row = db.execute("SELECT s.number FROM keys k JOIN slots s ON s.id = k.home_slot_id "
                         "WHERE k.key_number = ?", (key_number,)).fetchone()
    return int(row[0])


def last_seq(daemon: Daemon) -> int:
    with contextlib.closing(daemon.db()) as db:
        return int(db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def returns_of(daemon: Daemon, key_number: str, since: int) -> list[int]:
    """The slots of this key's ``key.returned`` events after ``since``: only this test's own
    events count on the shared daemon (another test may have returned the same key)."""
    with contextlib.closing(daemon.db()) as db:
        return [n for (n,) in db.execute(
            "SELECT slot FROM events WHERE type = 'key.returned' AND key_number = ? "
            "AND seq > ? ORDER BY seq", (key_number, since))]


def test_a_public_key_goes_back_into_a_free_slot_chosen_on_the_screen_K4(
    identity_kiosk: Kiosk, identity_daemon: Daemon, screenshots: Path
) -> None:
    daemon, kiosk, page = identity_daemon, identity_kiosk, identity_kiosk.page
    uid = person(daemon, "SEC", 5)["uid"]
    key_number, old_slot, fob = draw_public_key(daemon, uid)
    since = last_seq(daemon)

    daemon.tap(uid)
    expect(page.locator("#s-choosing")).to_be_visible()
    kiosk.touch(f"#my-loans [data-return='{key_number}']")
    sheet = page.locator("#return-sheet")
    expect(sheet).to_be_visible()
    expect(sheet).to_contain_text(key_number)
    home = sheet.locator("[data-return-slot].return-home")
    expect(home).to_contain_text(f"原格口 {old_slot}")
    expect(home).to_contain_text(f"Its own slot {old_slot}")
    free = sheet.locator(".return-free")
    assert free.count() > 0
    offered = [int(free.nth(i).get_attribute("data-return-slot") or 0) for i in range(free.count())]
    assert old_slot not in offered and set(offered) <= set(daemon.screen()["free_slots"])
    assert not daemon.slot_open(old_slot), "nothing opens before the slot is chosen"

    # the same layout rules as every other screen, at both screen sizes
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        check_layout(kiosk, screenshots, "return-anywhere")
    page.set_viewport_size({"width": 1024, "height": 600})

    target = offered[0]
    kiosk.touch(f"#return-sheet [data-return-slot='{target}']")
    expect(page.locator("#app")).to_have_attribute("data-state", "returning")
    tile = page.locator(f"#slot-tiles [data-slot='{target}']")
    expect(tile).to_contain_text(key_number)  # the lit slot names the key going into it
    assert daemon.wait_slot_open(target) and not daemon.slot_open(old_slot)
    kiosk.shot(screenshots, "return-anywhere-slot")

    daemon.post("/sim/insert", {"fob": fob, "slot": target})
    expect(page.locator("#idle-message[data-code='returned']")).to_contain_text(f"格口 {target}")
    assert returns_of(daemon, key_number, since) == [target]
    assert home_of(daemon, key_number) == target  # its new home, as the issue asks


def test_back_on_the_slot_choice_opens_nothing(
    identity_kiosk: Kiosk, identity_daemon: Daemon
) -> None:
    daemon, kiosk, page = identity_daemon, identity_kiosk, identity_kiosk.page
    uid = person(daemon, "SEC", 6)["uid"]
    key_number, old_slot, fob = draw_public_key(daemon, uid)
    since = last_seq(daemon)
    daemon.tap(uid)
    kiosk.touch(f"#my-loans [data-return='{key_number}']")
    expect(page.locator("#return-sheet")).to_be_visible()
    kiosk.touch("#return-back")
    expect(page.locator("#return-sheet")).to_be_hidden()
    assert daemon.screen()["state"] == "choosing" and not daemon.slot_open(old_slot)
    # its own slot, chosen from the sheet, is the ordinary return
    kiosk.touch(f"#my-loans [data-return='{key_number}']")
    kiosk.touch(f"#return-sheet [data-return-slot='{old_slot}']")
    assert daemon.wait_slot_open(old_slot)
    daemon.post("/sim/insert", {"fob": fob, "slot": old_slot})
    expect(page.locator("#idle-message[data-code='returned']")).to_be_visible()
    assert returns_of(daemon, key_number, since) == [old_slot]
