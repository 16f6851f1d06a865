"""Issue 13 in a real headless Chromium: a custodian pairs and clears a key's fob chip on the
key's console page, on a real ``kiosk run --simulate`` daemon whose cabinet reads key
identity. Every state of the page at desktop (1366×768) and phone (360×740) size: axe-core
with no serious or critical violation, no horizontal scrolling, a screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.browser_console import (
    DESKTOP,
    PHONE,
    ConsoleDaemon,
    check_screen,
    sign_in,
    start_console_daemon,
    with_role,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDaemon]:
    rig = start_console_daemon(tmp_path_factory.mktemp("console-fob"), "--simulate",
                               KIOSK_HARDWARE__IDENTITY__ENABLED="true")
    try:
        rig.create_account("cust1", "custodian",
                           staff_no=with_role(rig.daemon, "CS", "custodian")["staff_no"])
        yield rig
    finally:
        rig.daemon.stop()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_custodian_clears_refuses_and_reads_a_fob_from_the_slot(
    console: ConsoleDaemon, browser: Any, size: str,
) -> None:
    phone = size == "phone"
    context = browser.new_context(viewport=PHONE if phone else DESKTOP, has_touch=phone,
                                  is_mobile=phone, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        sign_in(page, console.url, "cust1")
        keys = console.api("GET", "/keys?limit=2", user="cust1")["items"]
        mine, other = keys[0], keys[1]
        assert mine["fob_rom"] and other["fob_rom"]  # the demo's keys are paired
        page.goto(f"{console.url}/console/keys/{mine['id']}")
        rom = mine["fob_rom"]
        assert page.inner_text("#fob-rom") == rom
        assert page.inner_text("#fob-seen") == rom  # the slot reads it at the last scan
        check_screen(page, "key-fob", size)

        page.fill("#f-fob_clear-reason", "钥匙牌损坏")
        with page.expect_navigation():
            page.click("form[action$='/fob/clear'] button[type=submit]")
        assert "钥匙牌芯片配对已清除" in page.locator(".flash").inner_text()
        assert "未配对" in page.inner_text("#fob-rom")
        check_screen(page, "key-fob-cleared", size)

        page.fill("#f-fob-rom", other["fob_rom"])  # another key's chip: refused, says whose
        with page.expect_navigation():
            page.click("form[action$='/fob'] button[type=submit]")
        assert f"already paired with key {other['key_number']}" in page.inner_text("main")
        check_screen(page, "key-fob-refused", size)

        with page.expect_navigation():
            page.click("form[action$='/fob/read'] button[type=submit]")
        assert "钥匙牌芯片已配对" in page.locator(".flash").inner_text()
        assert page.inner_text("#fob-rom") == rom
        assert errors == []
    finally:
        context.close()
