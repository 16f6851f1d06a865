"""The PIN pad on the kiosk page, and a duress opening nobody can tell from a normal one
(issue 14, item 8; README "PIN and duress").

A real ``kiosk run`` with ``[pin] key_groups = ["MASTER"]``, the page in headless Chromium at
both screen sizes: a clerk sets a PIN and a duress PIN on the pad (after a custodian's
reset), draws a master key with the PIN, then with the duress PIN. The answers the page
gets and the text on the screen are the same for both (the countdown, which ticks, and the
screen's version number aside: the byte-for-byte comparison of the answers is
tests/kiosk/test_pin.py's, on two cabinets at the same instant); only the log holds the
silent ``duress`` alarm. Every PIN screen passes the layout checks of test_kiosk_layout.py.
Screenshots: tests/browser/screenshots/layout-*-pin-*.png.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from browser_rig import Daemon, Kiosk, person, start_daemon
from test_kiosk_layout import SIZES, check_layout

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser

PIN, DURESS = "2580", "1470"
VOLATILE = ("version", "deadline", "seconds_left")


@pytest.fixture(scope="module")
def pin_daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = start_daemon(tmp_path_factory.mktemp("pin"), KIOSK_PIN__KEY_GROUPS='["MASTER"]')
    try:
        yield d
    finally:
        d.stop()


def open_reset_window(daemon: Daemon, person_id: Any) -> None:
    """What a custodian's reset (console or API) leaves: no PIN, may set one now."""
    with contextlib.closing(daemon.db()) as db:
        db.execute("DELETE FROM pin_credentials WHERE person_id = ?", (person_id,))
        db.execute("INSERT INTO pin_credentials (person_id, may_set_until, updated_at) "
                   "VALUES (?, '2099-01-01 00:00:00.000000', '2026-12-05 00:00:00.000000')",
                   (person_id,))
        db.commit()


def duress_alarms(daemon: Daemon) -> int:
    with contextlib.closing(daemon.db()) as db:
        return int(db.execute("SELECT count(*) FROM alarms WHERE kind = 'duress'").fetchone()[0])


def type_pin(kiosk: Kiosk, digits: str) -> None:
    for d in digits:
        kiosk.touch(f"#pin-pad [data-pin='{d}']")


def screen_text(kiosk: Kiosk) -> str:
    """What the screen says, the ticking countdowns left out."""
    text = kiosk.page.evaluate("""() => {
        const app = document.getElementById('app').cloneNode(true);
        for (const e of app.querySelectorAll('.big-countdown, #countdown')) e.remove();
        document.body.append(app); app.id = 'copy';
        const t = app.innerText; app.remove(); return t; }""")
    return re.sub(r"\s+", " ", str(text)).strip()


def draw_with(kiosk: Kiosk, daemon: Daemon, uid: str, pin: str) -> tuple[dict[str, Any], str]:
    """Badge, M-01, a reason, the PIN: the answer to the page's POST /pin and the screen."""
    page = kiosk.page
    daemon.tap(uid)
    expect(page.locator("#s-choosing")).to_be_visible()
    kiosk.touch("[data-floor='other']")
    kiosk.touch("[data-key='M-01']")
    kiosk.touch("[data-reason='repair']")
    expect(page.locator("#pin-sheet")).to_be_visible()
    type_pin(kiosk, pin)
    with page.expect_response(lambda r: r.url.endswith("/kiosk/api/pin")) as answer:
        kiosk.touch("#pin-ok")
    body: dict[str, Any] = answer.value.json()
    expect(page.locator("#s-await_cosign")).to_be_visible()
    expect(page.locator("#pin-sheet")).to_be_hidden()
    page.wait_for_timeout(300)  # the long poll's answer, drawn
    return body, screen_text(kiosk)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_pin_pad_and_a_duress_opening_look_the_same(
    browser: Any, pin_daemon: Daemon, screenshots: Path, size: tuple[int, int]
) -> None:
    daemon = pin_daemon
    width, height = size
    clerk = person(daemon, "CS", 1, roles={"staff"})
    daemon.post("/kiosk/api/cancel")
    open_reset_window(daemon, clerk["id"])
    context = browser.new_context(viewport={"width": width, "height": height}, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(daemon.url + "/")
    page.wait_for_selector("#app:not([data-state='loading'])")
    kiosk = Kiosk(page, errors)
    try:
        # set a PIN and a duress PIN on the pad: new, again, duress
        daemon.tap(clerk["uid"])
        expect(page.locator("#pin-open")).to_be_visible()
        check_layout(kiosk, screenshots, "pin-choosing")
        kiosk.touch("#pin-open")
        expect(page.locator("#pin-title-zh")).to_have_text("请输入新 PIN（4–8 位数字）")
        type_pin(kiosk, PIN)
        expect(page.locator("#pin-dots .pin-dot")).to_have_count(4)  # dots, never digits
        assert PIN not in screen_text(kiosk)
        check_layout(kiosk, screenshots, "pin-set")
        kiosk.touch("#pin-ok")
        type_pin(kiosk, PIN)
        kiosk.touch("#pin-ok")
        expect(page.locator("#pin-skip")).to_be_visible()
        check_layout(kiosk, screenshots, "pin-duress")
        type_pin(kiosk, DURESS)
        kiosk.touch("#pin-ok")
        expect(page.locator("#notice")).to_contain_text("PIN 已设置")
        daemon.post("/kiosk/api/cancel")
        daemon.wait_state("idle")

        # a wrong PIN: told, with the tries left, in both languages
        daemon.tap(clerk["uid"])
        expect(page.locator("#s-choosing")).to_be_visible()
        kiosk.touch("[data-floor='other']")
        kiosk.touch("[data-key='M-01']")
        kiosk.touch("[data-reason='repair']")
        expect(page.locator("#pin-sheet")).to_be_visible()
        check_layout(kiosk, screenshots, "pin-draw")
        type_pin(kiosk, "9999")
        kiosk.touch("#pin-ok")
        expect(page.locator("#toast")).to_be_visible()
        expect(page.locator("#toast-zh")).to_have_text("PIN 错误")
        expect(page.locator("#toast-detail")).to_contain_text("4 tries left")
        check_layout(kiosk, screenshots, "pin-wrong")
        kiosk.touch("#toast")
        daemon.post("/kiosk/api/cancel")
        daemon.wait_state("idle")

        # the PIN, then the duress PIN: the same answers, the same screen
        before = duress_alarms(daemon)
        normal, normal_text = draw_with(kiosk, daemon, clerk["uid"], PIN)
        kiosk.shot(screenshots, f"layout-{width}-pin-opened-normal")
        assert duress_alarms(daemon) == before
        daemon.post("/kiosk/api/cancel")
        daemon.wait_state("idle")
        duress, duress_text = draw_with(kiosk, daemon, clerk["uid"], DURESS)
        kiosk.shot(screenshots, f"layout-{width}-pin-opened-duress")
        assert duress_alarms(daemon) == before + 1  # the silent alarm, in the records only
        assert {k: v for k, v in duress.items() if k not in VOLATILE} == {
            k: v for k, v in normal.items() if k not in VOLATILE}
        assert duress_text == normal_text
        assert "胁迫" not in duress_text and "duress" not in json.dumps(duress).lower()
        daemon.post("/kiosk/api/cancel")
        assert errors == [], errors
    finally:
        context.close()
        daemon.post("/kiosk/api/cancel")
