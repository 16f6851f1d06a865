"""Issue 16, items 9 and 11: the kiosk listener refuses what the admin API refuses, answers
only its own loopback name, cannot be framed, and the screen says only what is true.

The kiosk app runs in-process on a whole simulated cabinet (``rig``); a request is what a
browser or a local process would send to 127.0.0.1:8081.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from disk_full import database_full
from rig import Rig

from api.kiosk.app import create_kiosk_app

PORT = 8081
SCREEN = f"http://127.0.0.1:{PORT}"


@pytest.fixture
async def screen(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    app = create_kiosk_app(rig.cabinet, port=PORT)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=SCREEN) as client:
        yield client


# ------------------------------------------------------------------ Host, CSP (item 9)
async def test_a_rebound_dns_name_is_refused(rig: Rig, screen: httpx.AsyncClient) -> None:
    """A page on attacker.example whose name now resolves to 127.0.0.1 sends its own name
    in Host: refused before anything moves."""
    uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(uid)
    key = rig.first_key("UNIT")
    slot, _ = rig.key(key)
    for host in ("attacker.example:8081", "attacker.example", "127.0.0.1:9999",
                 "127.0.0.1.attacker.example:8081"):
        got = await screen.post("/kiosk/api/draw", headers={"Host": host},
                                json={"keys": [key], "reason_code": "repair"})
        assert got.status_code == 421, (host, got.text)
        assert got.json()["code"] == "wrong_host"
    assert not rig.hw.model.is_unlocked(slot)
    assert rig.cabinet.session.state.value == "choosing"
    for host in (f"127.0.0.1:{PORT}", f"localhost:{PORT}", f"[::1]:{PORT}"):
        assert (await screen.get("/kiosk/api/screen", headers={"Host": host})).status_code == 200


async def test_the_page_has_a_csp_and_cannot_be_framed(screen: httpx.AsyncClient) -> None:
    page = await screen.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text  # every script is a file the CSP allows


# --------------------------------------------------------------- input rules (item 9)
@pytest.mark.parametrize("reason_text", ["漏水\x00", "漏水\u202e1021", "漏水\n换锁", "\u2066x"])
async def test_reason_text_with_nul_bidi_or_newline_is_a_clear_422(
    rig: Rig, screen: httpx.AsyncClient, reason_text: str
) -> None:
    uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(uid)
    key = rig.first_key("UNIT")
    slot, _ = rig.key(key)
    before = len(rig.events())
    got = await screen.post("/kiosk/api/draw", json={
        "keys": [key], "reason_code": "other", "reason_text": reason_text})
    assert got.status_code == 422, got.text
    body = got.json()
    assert body["code"] == "invalid_input" and "reason_text" in body["en"]
    assert "reason_text" in body["zh"]
    assert not rig.hw.model.is_unlocked(slot)
    assert len(rig.events()) == before, "a refused input leaves nothing behind"
    ok = await screen.post("/kiosk/api/draw", json={
        "keys": [key], "reason_code": "other", "reason_text": "漏水 换锁"})
    assert ok.status_code == 200, ok.text
    assert rig.hw.model.is_unlocked(slot)


async def test_intake_fields_follow_the_same_rules(rig: Rig, screen: httpx.AsyncClient) -> None:
    got = await screen.post("/kiosk/api/intake", json={
        "key_number": "U9901", "label": "9901 室\u202e", "delivered_by": "王伟\n",
        "delivered_by_department": "工程部"})
    assert got.status_code == 422
    assert {"label", "delivered_by"} <= {e["loc"][-1] for e in got.json()["errors"]}


async def test_an_oversized_body_is_413_on_the_kiosk_listener(screen: httpx.AsyncClient) -> None:
    got = await screen.post("/kiosk/api/draw", content=b"{" + b" " * (64 * 1024) + b"}",
                            headers={"Content-Type": "application/json"})
    assert got.status_code == 413
    assert got.headers["content-type"] == "application/problem+json"


# ------------------------------------------------------- the screen's words (item 11)
async def test_a_storage_fault_does_not_claim_staff_were_alerted(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(uid)
    with database_full(rig):
        await rig.cabinet.choose_draw([rig.first_key("UNIT")], "repair")
        message = rig.cabinet.screen()["message"]
    assert message["code"] == "storage_fault"
    assert "已通知" not in message["zh"] and "alerted" not in message["en"]
    assert "请告知管理员" in message["zh"]


async def test_a_lock_fault_says_alerted_only_when_the_alarm_is_recorded(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    uid, _ = rig.card_of(dept="ENG")
    key = rig.first_key("UNIT")
    await rig.cabinet.tap(uid)
    rig.hw.board.sim.set_faults(no_reply=True)
    await rig.cabinet.choose_draw([key], "repair")
    rig.hw.board.sim.clear_faults()
    recorded = rig.cabinet.screen()["message"]
    assert recorded["code"] == "lock_fault" and "已通知管理员" in recorded["zh"]

    # Now the disk fills between the durable intent and the lock's failure: the alarm
    # cannot be recorded, so the screen must not say anyone was told.
    cabinet = rig.cabinet
    record_intents = cabinet.opening.record_intents
    filled: list[Any] = []

    async def intents_then_disk_full(slots: tuple[int, ...]) -> Any:
        first = await record_intents(slots)
        filled.append(database_full(rig))
        filled[-1].__enter__()
        return first

    monkeypatch.setattr(cabinet.opening, "record_intents", intents_then_disk_full)
    await rig.cabinet.tap(uid)
    rig.hw.board.sim.set_faults(no_reply=True)
    try:
        await rig.cabinet.choose_draw([key], "repair")
    finally:
        rig.hw.board.sim.clear_faults()
        for ctx in filled:
            ctx.__exit__(None, None, None)
    unrecorded = rig.cabinet.screen()["message"]
    assert unrecorded["code"] == "lock_fault_unrecorded"
    assert "已通知" not in unrecorded["zh"] and "请告知管理员" in unrecorded["zh"]
