"""The stocking screen (K1/K2) in a real Chromium, at both screen sizes: a custodian sees
上架 with how many keys wait, the released slots with their keys, each key ticked as it is
hung, and 完成 ends it. Checked for the layout defects of tests/browser/test_kiosk_layout.py
(nothing outside the screen, no overlapping touch targets, no text under 16 px; zh and en are
both on every screen). Screenshots: tests/browser/screenshots/layout-*-stock*.png.

The daemon is the demo tower with nine of its keys turned into "imported, never hung": marked
``awaiting_stock`` while it is stopped, and the simulated cabinet rebuilt without them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_rig import Daemon, Kiosk, kiosk_at_size, person, start_daemon
from test_kiosk_layout import SIZES, check_layout

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

BOXED = 9  # more than the screen's eight tiles: the rest are counted


@pytest.fixture(scope="module")
def stock_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("stock")
    first = start_daemon(tmp)
    first.stop()
    with contextlib.closing(first.db()) as db:
        numbers = [n for (n,) in db.execute(
            "SELECT k.key_number FROM keys k JOIN slots s ON s.id = k.home_slot_id "
            "WHERE k.key_number LIKE 'U%' ORDER BY s.number LIMIT ?", (BOXED,))]
        db.executemany("UPDATE keys SET awaiting_stock = 1 WHERE key_number = ?",
                       [(n,) for n in numbers])
        db.commit()
    (first.data_dir / "sim-cabinet.json").unlink(missing_ok=True)  # rebuilt without them
    d = start_daemon(tmp)
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(params=SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def sized(request: pytest.FixtureRequest, browser: Any, stock_daemon: Daemon) -> Iterator[Kiosk]:
    width, height = request.param
    with kiosk_at_size(browser, stock_daemon, width, height) as k:
        yield k


def test_a_custodian_stocks_the_imported_keys_at_the_screen(
        sized: Kiosk, stock_daemon: Daemon, screenshots: Path) -> None:
    page, d = sized.page, stock_daemon
    custodian = person(d, "CS", 0, roles={"staff", "custodian"})
    d.tap(custodian["uid"])
    expect(page.locator("#stock-open")).to_be_visible()
    waiting = int(page.locator("#stock-awaiting").inner_text())
    assert waiting >= BOXED - 1  # the first size stocks one of them
    check_layout(sized, screenshots, "stock-offered")

    sized.touch("#stock-open")
    expect(page.locator("#s-stock")).to_be_visible()
    expect(page.locator("#stock-tiles .stock-tile")).to_have_count(8)
    expect(page.locator("#stock-tiles .stock-more")).to_have_count(1 if waiting > 8 else 0)
    check_layout(sized, screenshots, "stocking")

    # the key of the first tile hung in its slot: counted
    tile = page.locator("#stock-tiles .stock-tile").first
    slot, number = int(tile.get_attribute("data-slot") or 0), tile.get_attribute("data-key")
    with contextlib.closing(d.db()) as db:
        (fob,) = db.execute("SELECT fob_tag FROM keys WHERE key_number = ?", (number,)).fetchone()
    assert d.wait_slot_open(slot)
    d.post("/sim/insert", {"fob": fob, "slot": slot})
    expect(page.locator("#stock-progress")).to_contain_text(f"1 / {waiting}")
    # no longer among the keys still to hang (those come first; a hung one is ticked ✓)
    expect(page.locator(f"#stock-tiles .stock-tile:not(.done)[data-key='{number}']")) \
        .to_have_count(0)
    expect(page.locator("#stock-tiles .stock-tile.done")).to_have_count(1 if waiting <= 8 else 0)
    check_layout(sized, screenshots, "stocking-one-in")

    sized.touch("#stock-done")
    d.wait_state("idle")
    with contextlib.closing(d.db()) as db:
        stocked = db.execute("SELECT count(*) FROM events WHERE type = 'key.stocked' "
                             "AND key_number = ?", (number,)).fetchone()
        alarms = db.execute("SELECT kind FROM alarms").fetchall()
    assert stocked == (1,)
    assert ("key_inserted_unexpectedly",) not in alarms
    for open_slot in [int(x.get_attribute("data-slot") or 0)
                      for x in page.locator("#stock-tiles .stock-tile").all()]:
        d.request("POST", "/sim/shut", {"slot": open_slot})  # the custodian shuts them
