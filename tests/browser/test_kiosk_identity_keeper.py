"""Issue 13 on the keeper's screen (H1): on a cabinet with key identity, the handover
summary says the count identified the keys by their fobs, and how many were only seen
present, so the incoming keeper knows what they sign for. Same layout rules as every screen.

The identity daemon (tests/browser/conftest.py); its custodian CS 1 is used by no other
browser test on it. Screenshots land in tests/browser/screenshots/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_rig import Daemon, Kiosk, person
from test_kiosk_layout import SIZES, check_layout

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser


def test_the_handover_summary_says_the_keys_were_identified_H1(
    identity_kiosk: Kiosk, identity_daemon: Daemon, screenshots: Path
) -> None:
    daemon, kiosk, page = identity_daemon, identity_kiosk, identity_kiosk.page
    keeper = person(daemon, "CS", 1, roles={"staff", "custodian"})
    daemon.tap(keeper["uid"])
    kiosk.touch("#handover-open[data-action='start']")
    expect(page.locator("#s-await_incoming")).to_be_visible()
    mode = page.locator("#incoming-summary .handover-mode[data-compared='identity']")
    expect(mode).to_contain_text("钥匙身份核对 · 已识别")
    expect(mode).to_contain_text("Key identity: identified")
    expect(mode).to_contain_text("仅感应有钥匙")
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        check_layout(kiosk, screenshots, "handover-identity")
