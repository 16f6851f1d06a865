"""K7 from the cabinet (issue 14, item 6): refused a special-room key, the person touches it
(需部门领导审批 — 申请); a request goes to their department leader through the notification
routes (the ``approval.requested`` event names the leader) and the screen says so.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from browser_rig import Daemon, Kiosk, person

expect = pytest.importorskip("playwright.sync_api").expect

pytestmark = pytest.mark.browser


def test_K7_request_from_the_screen_goes_to_the_department_leader(
    kiosk: Kiosk, daemon: Daemon, screenshots: Path
) -> None:
    page = kiosk.page
    staff = person(daemon, "ENG", 7)  # asked for by no other browser test
    leaders = [p["name"] for p in daemon.people["ENG"] if "dept_leader" in p["roles"]]
    assert leaders, "the demo ENG department has a leader"
    daemon.tap(staff["uid"])
    data = daemon.wait_state("choosing")
    special = next(k for k in data["keys"] if k["status"] == "approval_required")
    number = special["key_number"]
    assert special["why"]["zh"] == "需领导审批 — 申请"
    floor = special["floor"]
    kiosk.touch(f"[data-floor='{'other' if floor is None else floor}']")
    tile = page.locator(f"[data-key='{number}']")
    expect(tile).to_contain_text("需领导审批 — 申请")
    kiosk.touch(f"[data-key='{number}']")

    notice = page.locator("#notice[data-code='approval_requested']")
    expect(notice).to_contain_text("已向部门领导申请审批")
    expect(notice).to_contain_text(leaders[0])
    kiosk.shot(screenshots, "approval-requested")
    with contextlib.closing(daemon.db()) as db:
        # this person's request only: other tests on the shared daemon ask for keys too
        rows = [row for row in db.execute(
            "SELECT e.payload FROM events e WHERE e.type = 'approval.requested' "
            "AND e.key_number = ?",
            (number,),
        ).fetchall() if json.loads(row[0]).get("borrower_name") == staff["name"]]
        pending = db.execute(
            "SELECT count(*) FROM approvals a JOIN keys k ON k.id = a.key_id "
            "WHERE k.key_number = ? AND a.status = 'pending' AND a.requested_for_id = ?",
            (number, staff["id"]),
        ).fetchone()[0]
    assert (len(rows), pending) == (1, 1), rows
    payload = json.loads(rows[0][0])
    assert {p["name"] for p in payload["leaders"]} == set(leaders)
    assert payload["borrower_name"] == staff["name"]

    # a second touch asks nothing new, and says it is waiting
    kiosk.touch(f"[data-key='{number}']")
    expect(page.locator("#notice[data-code='approval_pending']")).to_contain_text("等待")
    with contextlib.closing(daemon.db()) as db:
        again = [row for row in db.execute(
            "SELECT payload FROM events WHERE type = 'approval.requested' AND key_number = ?",
            (number,),
        ).fetchall() if json.loads(row[0]).get("borrower_name") == staff["name"]]
    assert len(again) == 1
