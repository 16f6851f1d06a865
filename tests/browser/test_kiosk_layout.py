"""Layout on every screen of the kiosk page, at both screen sizes (issue 14, item 1).

The cabinet has a 7" (1024×600) or a 10" (1280×800) touchscreen. On each screen a person
meets, the page is checked for the defects a full day found: nothing outside the screen,
no text cut off, no two touch targets on top of each other, no text under 16 px (Chinese and
English alike, since both are shown), the 10" screen's larger type applied, the on-screen
keyboard with digits, and the key and slot numbers (what a person matches against the
cabinet) no smaller than any other text on a key's tile. Screenshots land in
tests/browser/screenshots/layout-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_rig import Daemon, Kiosk, kiosk_at_size, person

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

SIZES = [(1024, 600), (1280, 800)]
MIN_TEXT_PX = 16

LAYOUT_JS = """(minText) => {
  const vw = innerWidth, vh = innerHeight, bad = [];
  const name = (e) => (e.id ? '#' + e.id : e.className ? '.' + String(e.className).split(' ').join('.') : e.tagName)
                      + ' "' + (e.textContent || '').trim().slice(0, 24) + '"';
  const visible = (e) => {
    if (!e.getClientRects().length) return false;
    const cs = getComputedStyle(e);
    return cs.visibility !== 'hidden' && cs.display !== 'none' && Number(cs.opacity) > 0;
  };
  const all = [...document.querySelectorAll('#app *')].filter(visible);
  for (const e of all) {
    const r = e.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    if (r.left < -0.5 || r.top < -0.5 || r.right > vw + 0.5 || r.bottom > vh + 0.5)
      bad.push(`outside the screen: ${name(e)} ${Math.round(r.left)},${Math.round(r.top)}-${Math.round(r.right)},${Math.round(r.bottom)}`);
    const cs = getComputedStyle(e);
    const clips = ['hidden', 'clip'].includes(cs.overflowX) || cs.textOverflow === 'ellipsis';
    if (clips && e.scrollWidth > e.clientWidth + 1)
      bad.push(`text cut off: ${name(e)} (${e.scrollWidth} > ${e.clientWidth} px)`);
    if (['auto', 'scroll', 'hidden', 'clip'].includes(cs.overflowY) && e.scrollHeight > e.clientHeight + 1)
      bad.push(`cut off below: ${name(e)} (${e.scrollHeight} > ${e.clientHeight} px)`);
    const ownText = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (ownText && parseFloat(cs.fontSize) < minText)
      bad.push(`text under ${minText} px: ${name(e)} ${cs.fontSize}`);
  }
  // touch targets: those of the top layer (an open sheet or message covers the rest)
  const layers = [...document.querySelectorAll('.toast, .sheet')].filter(visible);
  const top = layers.length ? layers[layers.length - 1] : document;
  const targets = [...top.querySelectorAll('button')].filter(visible)
    .map((b) => [b, b.getBoundingClientRect()]).filter(([, r]) => r.width && r.height);
  for (let i = 0; i < targets.length; i++) {
    for (let j = i + 1; j < targets.length; j++) {
      const [a, ra] = targets[i], [b, rb] = targets[j];
      if (a.contains(b) || b.contains(a)) continue;
      const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
      const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (w > 1 && h > 1) bad.push(`touch targets overlap: ${name(a)} and ${name(b)}`);
    }
    const [b, r] = targets[i];
    if (r.width < 64 || r.height < 64) bad.push(`touch target under 64 px: ${name(b)} ${Math.round(r.width)}x${Math.round(r.height)}`);
  }
  return bad;
}"""


NUMBERS_JS = """() => {
  const bad = [];
  for (const tile of document.querySelectorAll('.key')) {
    const numbers = parseFloat(getComputedStyle(tile.querySelector('.key-meta')).fontSize);
    for (const e of tile.querySelectorAll('*')) {
      const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      const px = parseFloat(getComputedStyle(e).fontSize);
      if (own && px > numbers && !e.closest('.key-meta') && !e.classList.contains('key-label'))
        bad.push(`${tile.dataset.key}: "${e.textContent.trim()}" ${px} px > its numbers ${numbers} px`);
    }
    if (numbers < parseFloat(getComputedStyle(tile.querySelector('.key-label')).fontSize))
      bad.push(`${tile.dataset.key}: the key and slot numbers are smaller than the label`);
  }
  return bad;
}"""


def assert_numbers_not_smallest(kiosk: Kiosk) -> None:
    """The key and slot numbers on a key's tile are as large as anything on it."""
    assert kiosk.page.locator(".key .key-meta").count() > 0
    assert kiosk.page.evaluate(NUMBERS_JS) == []


def check_layout(kiosk: Kiosk, screenshots: Path, name: str) -> None:
    """Every defect on the current screen, listed, after a screenshot to look at."""
    kiosk.page.wait_for_timeout(150)  # the page redraws on the long poll's answer
    size = kiosk.page.viewport_size
    kiosk.shot(screenshots, f"layout-{size['width']}-{name}")
    bad = kiosk.page.evaluate(LAYOUT_JS, MIN_TEXT_PX)
    assert bad == [], f"{name} at {size['width']}×{size['height']}:\n" + "\n".join(bad)


@pytest.fixture(params=SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def sized(request: pytest.FixtureRequest, browser: Any, daemon: Daemon) -> Iterator[Kiosk]:
    width, height = request.param
    with kiosk_at_size(browser, daemon, width, height) as k:
        yield k


def draw_now(daemon: Daemon, uid: str, n: int) -> dict[int, str]:
    """A person draws ``n`` unit keys (through the kiosk API, taking each from its slot);
    returns slot → the fob taken, to put them back."""
    daemon.tap(uid)
    data = daemon.wait_state("choosing")
    keys = [
        k
        for k in data["keys"]
        if k["status"] == "ok" and not k["cosign"] and k["key_number"].startswith("U")
    ][:n]
    daemon.post(
        "/kiosk/api/draw", {"keys": [k["key_number"] for k in keys], "reason_code": "repair"}
    )
    fobs = {}
    for k in keys:
        assert daemon.wait_slot_open(k["slot"])
        fobs[k["slot"]] = daemon.post("/sim/take", {"slot": k["slot"]})["took"]
    daemon.wait_state("idle")
    return fobs


def give_back(daemon: Daemon, uid: str, fobs: dict[int, str]) -> None:
    for slot, fob in fobs.items():
        daemon.tap(uid)
        data = daemon.wait_state("choosing")
        number = next(k["key_number"] for k in data["keys"] if k["slot"] == slot)
        daemon.post("/kiosk/api/return", {"key_number": number})
        assert daemon.wait_slot_open(slot)
        daemon.post("/sim/insert", {"fob": fob, "slot": slot})
        daemon.wait_state("idle")


def test_larger_type_on_the_10_inch_screen(sized: Kiosk) -> None:
    """The 1280×800 media query's larger type wins over the base rule."""
    size = sized.page.viewport_size
    root_px = sized.page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert root_px == (22 if size["width"] >= 1280 else 18)


def test_every_screen_fits(sized: Kiosk, daemon: Daemon, screenshots: Path) -> None:
    page = sized.page
    borrower = person(daemon, "CS", 1, roles={"staff"})
    custodian = person(daemon, "CS", 0, roles={"staff", "custodian"})

    check_layout(sized, screenshots, "idle")

    # three keys out: 我借的 lists all three with their due time
    fobs = draw_now(daemon, borrower["uid"], 3)
    daemon.tap(borrower["uid"])
    expect(page.locator("#s-choosing")).to_be_visible()
    expect(page.locator("#my-loans [data-return]")).to_have_count(3)
    check_layout(sized, screenshots, "choosing-three-out")
    assert_numbers_not_smallest(sized)
    sized.touch("[data-floor='6']")  # the fullest floor: every key without scrolling
    check_layout(sized, screenshots, "choosing-floor-6")

    # two keys picked, one a long-named master key: 选择事由 stays on the screen
    sized.touch("[data-floor='other']")
    sized.touch("[data-key='M-03']")
    expect(page.locator("#reason-sheet")).to_be_visible()
    check_layout(sized, screenshots, "reasons")
    sized.touch("#sheet-add")
    sized.touch("[data-key='M-02']")
    expect(page.locator("#selection-go")).to_be_visible()
    check_layout(sized, screenshots, "selection-two-keys")
    sized.touch("#selection-go")
    sized.touch("[data-reason='other']")
    expect(page.locator("#other-text .kb")).to_be_visible()
    for digit in "0123456789":  # the keyboard has digits (a room number in a reason)
        expect(page.locator(f"#other-text [data-kb='{digit}']")).to_be_visible()
    check_layout(sized, screenshots, "other-keyboard")
    sized.touch("#sheet-back")
    sized.touch("#sheet-back")

    # the search keypad with a query
    sized.touch("#mode-search")
    for digit in "601":
        sized.touch(f"#keypad [data-pad='{digit}']")
    check_layout(sized, screenshots, "search")

    # a master key waits for a custodian
    daemon.post("/kiosk/api/cancel")
    daemon.tap(borrower["uid"])
    daemon.wait_state("choosing")
    daemon.post("/kiosk/api/draw", {"keys": ["M-01"], "reason_code": "repair"})
    expect(page.locator("#s-await_cosign")).to_be_visible()
    check_layout(sized, screenshots, "await-cosign")
    daemon.post("/kiosk/api/cancel")

    # the slot screen
    daemon.tap(custodian["uid"])
    daemon.wait_state("choosing")
    expect(page.locator("#s-choosing")).to_be_visible()
    mine = [
        k["key_number"]
        for k in daemon.screen()["keys"]
        if k["status"] == "ok" and k["key_number"].startswith("U")
    ][:2]
    daemon.post("/kiosk/api/draw", {"keys": mine, "reason_code": "repair"})
    expect(page.locator("#s-slots")).to_be_visible()
    check_layout(sized, screenshots, "releasing")
    daemon.post("/kiosk/api/cancel")

    # the custodian's intake form, both steps
    daemon.tap(custodian["uid"])
    expect(page.locator("#intake-open")).to_be_visible()
    sized.touch("#intake-open")
    expect(page.locator("#s-intake")).to_be_visible()
    check_layout(sized, screenshots, "intake-key")
    for digit in "3008":  # a unit of the demo tower with no key yet (intake checks the room)
        sized.touch(f"#intake-pad [data-room-pad='{digit}']")
    sized.touch("#intake-depts button >> nth=0")
    sized.touch("#intake-next")
    expect(page.locator("#intake-deliverer")).to_be_visible()
    check_layout(sized, screenshots, "intake-deliverer")
    daemon.post("/kiosk/api/cancel")

    # a key's fob at the reader: the returner's badge is asked for
    daemon.tap(fobs[next(iter(fobs))])
    expect(page.locator("#s-await_returner")).to_be_visible()
    check_layout(sized, screenshots, "await-returner")
    daemon.post("/kiosk/api/cancel")

    # a message on the idle screen after a cancel
    expect(page.locator("#s-idle")).to_be_visible()
    check_layout(sized, screenshots, "idle-message")

    give_back(daemon, borrower["uid"], fobs)  # for the next size
