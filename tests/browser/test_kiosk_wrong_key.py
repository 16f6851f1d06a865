"""Issue 13 on the kiosk page, on a cabinet with key identity: badge → 归还 for one key, and
`kiosk sim insert` hangs another key in its open slot. The screen says which key belongs
there and where the one in hand goes; nothing is recorded as returned (K4).

The identity daemon (receptors on, tests/browser/conftest.py); screenshots land in
tests/browser/screenshots/.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser_rig import ROOT, Daemon, Kiosk, person

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser


def home_slot(daemon: Daemon, key_number: str) -> int:
    with contextlib.closing(daemon.db()) as db:
        row = db.execute("SELECT s.number FROM keys k JOIN slots s ON s.id = k.home_slot_id "
                         "WHERE k.key_number = ?", (key_number,)).fetchone()
    return int(row[0])


def draw(daemon: Daemon, uid: str, key_number: str) -> str:
    daemon.tap(uid)
    daemon.wait_state("choosing")
    slot = home_slot(daemon, key_number)
    daemon.post("/kiosk/api/draw", {"keys": [key_number], "reason_code": "repair"})
    assert daemon.wait_slot_open(slot)
    fob: str = daemon.post("/sim/take", {"slot": slot})["took"]
    daemon.wait_state("idle")
    return fob


def kiosk_sim(daemon: Daemon, *args: str) -> str:
    """The operator's own command, against this daemon."""
    out = subprocess.run(
        [sys.executable, "-m", "kiosk", "sim", *args], capture_output=True, text=True,
        env={**os.environ, "KIOSK_KIOSK_PORT": str(daemon.kiosk_port),
             "KIOSK_DATA_DIR": str(daemon.data_dir), "KIOSK_DATABASE_URL": "",
             "PYTHONPATH": str(ROOT)}, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_wrong_key_in_the_open_slot_is_named_and_not_returned_K4(
    identity_kiosk: Kiosk, identity_daemon: Daemon, screenshots: Path
) -> None:
    daemon, page = identity_daemon, identity_kiosk.page
    uid = person(daemon, "ENG", 2)["uid"]
    draw(daemon, uid, "U606")
    other_fob = draw(daemon, uid, "U701")
    slot606, slot701 = home_slot(daemon, "U606"), home_slot(daemon, "U701")

    daemon.tap(uid)
    daemon.wait_state("choosing")
    daemon.post("/kiosk/api/return", {"key_number": "U606"})
    assert daemon.wait_slot_open(slot606)
    kiosk_sim(daemon, "insert", other_fob, str(slot606))  # U701 hung where U606 belongs

    notice = page.locator("#notice")
    expect(notice).to_contain_text(f"格口 {slot606} 应放")
    expect(notice).to_contain_text(f"U701，请取出，它应放格口 {slot701}")
    expect(notice).to_contain_text(f"it goes in slot {slot701}")
    identity_kiosk.shot(screenshots, "wrong-key")
    assert daemon.wait_slot_open(slot606), "the slot is open again for the right key"
    with contextlib.closing(daemon.db()) as db:
        out = {n for (n,) in db.execute(
            "SELECT k.key_number FROM loans l JOIN keys k ON k.id = l.key_id "
            "WHERE l.returned_at IS NULL")}
    assert {"U606", "U701"} <= out  # neither is recorded as returned
