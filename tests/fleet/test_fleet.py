"""One hub on PostgreSQL and cabinet daemons on simulated hardware, as processes (issue 12).

Draws at each cabinet appear at the hub with their chains verified; a card revoked at the
hub is refused at every online cabinet; the hub away (stopped, or killed with -9 while it
ingests) does not change what a cabinet decides, and afterwards the hub holds every event
exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from kiosk.audit.chain import GENESIS_HASH, event_hash
from kiosk.audit.device_key import load, load_or_create
from kiosk.fleet.client import HubClient, HubError
from kiosk.fleet.link import read_batch
from kiosk.fleet.state import Enrolment
from tests.fleet.fleet_rig import (
    PASSWORD,
    Cabinet,
    Hub,
    enrol_and_start,
    enrol_and_start_all,
    eventually,
    http,
    kiosk_cli,
    prepare_hub,
)
from tests.ports import free_port

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def fleet(hub_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("fleet")
    hub = prepare_hub(root / "hub", hub_db).start()
    hub.login()
    for site in ("tower-a", "tower-b"):
        hub.post("/hub/v1/sites", {"code": site, "name": f"Tower {site[-1].upper()}"})
    cabinets: list[Cabinet] = []
    try:
        # cab-a1 ships in small batches so a catch-up takes many round trips (kill -9 test)
        cabinets += enrol_and_start_all(hub, [
            (root / "a1", "cab-a1", "tower-a", {"KIOSK_FLEET__BATCH_SIZE": "4"}),
            (root / "b1", "cab-b1", "tower-b", {})])
        yield {"hub": hub, "a": cabinets[0], "b": cabinets[1], "root": root, "db": hub_db}
    finally:
        for cab in cabinets:
            cab.daemon.stop()
        hub.stop()


def draw(cab: Cabinet, uid: str) -> str:
    """``uid`` taps, takes the first key they may take alone; returns its number."""
    d = cab.daemon
    d.tap(uid)
    d.wait_state("choosing")
    key = next(k for k in d.screen()["keys"] if k["status"] == "ok" and not k["cosign"])
    key_number, slot = key["key_number"], key["slot"]
    d.post("/kiosk/api/draw", {"keys": [key_number], "reason_code": "repair"})
    assert d.wait_slot_open(slot), d.screen()["message"]  # why it stayed shut
    d.post("/sim/take", {"slot": slot})
    d.wait_state("idle")
    return str(key_number)


def hub_copy_verifies(db_url: str, cab: Cabinet) -> int:
    """The hub's copy of the cabinet's log: seq 1..N each exactly once, every hash
    recomputed and linked, and byte-identical to the cabinet's own rows. Returns N."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT cabinet_id, seq, at, type, actors, slot, key_number, decision, rules, "
                "payload, prev_hash, hash FROM hub_events WHERE cabinet_id = :c ORDER BY seq"),
                {"c": cab.cabinet_id}).mappings().all()
    finally:
        engine.dispose()
    local = cab.local_events()
    prev = GENESIS_HASH
    for expected_seq, row in enumerate(rows, start=1):
        assert row["seq"] == expected_seq, "a gap or a duplicate in the hub's copy"
        assert row["prev_hash"] == prev
        fields = {k: row[k] for k in row if k != "hash"}
        assert event_hash(**fields) == row["hash"]
        assert local[row["seq"]][1] == row["hash"], "hub copy differs from the cabinet's row"
        prev = row["hash"]
    return len(rows)


def test_draws_at_each_cabinet_appear_at_the_hub(fleet: dict[str, Any]) -> None:
    hub: Hub = fleet["hub"]
    a, b = fleet["a"], fleet["b"]
    drawn_a = draw(a, a.daemon.people["ENG"][0]["uid"])
    drawn_b = draw(b, b.daemon.people["ENG"][1]["uid"])
    for cab, key in ((a, drawn_a), (b, drawn_b)):
        def drawn(cab: Cabinet = cab, key: str = key) -> list[dict[str, Any]]:
            return [e for e in hub.events(cab.cabinet_id, "key.drawn") if e["key_number"] == key]
        eventually(drawn, what=f"{key} drawn at {cab.cabinet_id} to show at the hub")
        loans = hub.get(f"/hub/v1/records?cabinet_id={cab.cabinet_id}&kind=loan")
        assert [loan for loan in loans if loan["body"]["returned_at"] is None]
        assert hub_copy_verifies(fleet["db"], cab) >= 1
    sites = {s["code"]: s["cabinets"] for s in hub.get("/hub/v1/sites")}
    assert sites == {"tower-a": ["cab-a1"], "tower-b": ["cab-b1"]}
    assert hub.alarms("cab-a1") == [] and hub.alarms("cab-b1") == []


def test_a_card_revoked_at_the_hub_is_refused_at_both_cabinets(fleet: dict[str, Any]) -> None:
    hub: Hub = fleet["hub"]
    a, b = fleet["a"], fleet["b"]
    uid = a.daemon.people["SEC"][0]["uid"]
    card = hub.get(f"/api/v1/cards?uid={uid}")["items"][0]
    hub.post(f"/api/v1/cards/{card['id']}/revoke", {"note": "reported stolen"})
    for cab in (a, b):
        def revoked(cab: Cabinet = cab) -> bool:
            with cab.sqlite() as db:
                return db.execute("SELECT status FROM cards WHERE uid = ?",
                                  (uid,)).fetchone() == ("revoked",)
        eventually(revoked, timeout=10, what=f"revocation to reach {cab.cabinet_id}")
        cab.daemon.tap(uid)
        def refused(cab: Cabinet = cab) -> list[dict[str, Any]]:
            return [e for e in hub.events(cab.cabinet_id, "access.denied")
                    if e["payload"].get("card") == uid]
        denied = eventually(refused, what="the refused tap to reach the hub")
        assert denied[0]["decision"] == "deny"
        applied = hub.events(cab.cabinet_id, "fleet.config_applied")
        assert any(uid in e["payload"]["cards"] for e in applied)
        assert cab.daemon.screen()["state"] != "choosing"


def test_an_approval_asked_at_a_cabinets_screen_is_decided_at_the_hub_K7(
        fleet: dict[str, Any]) -> None:
    """K7 in a fleet, processes end to end: the hub homes a special-room key at cab-a1; a
    person refused it at cab-a1's screen asks for approval; the request reaches the hub as a
    pending approval; the department leader, signed in at the hub, approves it; the decision
    comes down and the person may take the key at the cabinet."""
    hub: Hub = fleet["hub"]
    a: Cabinet = fleet["a"]
    d = a.daemon
    staff = [p for p in d.people["ENG"] if p["roles"] == {"staff"}][-1]
    leader = next(p for p in d.people["ENG"] if "dept_leader" in p["roles"])
    d.tap(staff["uid"])
    special = next(k for k in d.wait_state("choosing")["keys"]
                   if k["status"] == "approval_required")
    number, slot = special["key_number"], special["slot"]

    # The hub's administrator hangs the key at cab-a1 (its slot of the same number).
    cabinet = next(c for c in hub.get("/api/v1/cabinets?limit=200")["items"]
                   if c["code"] == a.cabinet_id)
    slots = hub.post(f"/api/v1/cabinets/{cabinet['id']}/slots", {"first": slot, "count": 1})
    key = next(k for k in hub.get(f"/api/v1/keys?q={quote(number)}")["items"]
               if k["key_number"] == number)
    hub.post(f"/api/v1/keys/{key['id']}/move", {"slot_id": slots[0]["id"]})

    d.post("/kiosk/api/request-approval", {"key_number": number})
    asked_id = a.daemon_events("approval.requested")[-1][1]["approval"]
    asked = uuid.UUID(asked_id).hex  # as SQLite holds it

    def pending_at_hub() -> bool:
        status, body = http("GET", hub.base + f"/api/v1/approvals/{asked_id}", token=hub.token)
        return status == 200 and body["status"] == "pending"

    eventually(pending_at_hub, what="the request as a pending approval at the hub")

    kiosk_cli(hub.env, "admin", "create", "leader-eng", "--role", "dept_leader", "--person",
              leader["staff_no"], "--department", "ENG", "--password-stdin",
              stdin=PASSWORD + "\n", cwd=hub.workdir)
    status, body = http("POST", hub.base + "/api/v1/auth/login",
                        {"username": "leader-eng", "password": PASSWORD})
    assert status == 200, body
    status, body = http("POST", hub.base + f"/api/v1/approvals/{asked_id}/approve",
                        {"note": "同意"}, token=body["access_token"])
    assert status == 200, body

    def approved_here() -> bool:
        with closing(d.db()) as db:
            row = db.execute("SELECT status FROM approvals WHERE id = ?", (asked,)).fetchone()
        return row == ("approved",)

    eventually(approved_here, what="the leader's decision at cab-a1")
    if d.screen()["state"] != "idle":
        d.post("/kiosk/api/cancel")
    d.wait_state("idle")
    d.tap(staff["uid"])
    keys = {k["key_number"]: k for k in d.wait_state("choosing")["keys"]}
    assert keys[number]["status"] == "ok", keys[number]


def test_hub_away_then_killed_mid_ingest_loses_and_doubles_nothing(
        fleet: dict[str, Any]) -> None:
    hub: Hub = fleet["hub"]
    a: Cabinet = fleet["a"]
    hub.stop()
    offline = eventually(lambda: (lambda f: f if f and not f["online"] else None)(
        a.health()["fleet"]), what="the cabinet to notice the hub is away")
    assert offline["offline_since_local"] and len(offline["offline_since_local"]) == 5  # HH:MM
    # The cabinet keeps deciding alone: a draw and a refused tap, both in its own log.
    drawn = draw(a, a.daemon.people["ENG"][2]["uid"])
    for n in range(3):
        a.daemon.tap(f"DEADBE{n:02X}")  # unknown cards: refused locally, logged
    with closing(a.sqlite()) as db:  # the log's head, read from the cabinet's own database
        head = db.execute("SELECT max(seq) FROM events").fetchone()[0]
    hub.start()
    hub.kill9()  # very likely mid-ingest: cab-a1 ships its backlog 4 events at a time
    hub.start()
    hub.login()
    eventually(lambda: hub_copy_verifies(fleet["db"], a) >= head, timeout=60,
               what="the cabinet to catch up")
    assert [e for e in hub.events("cab-a1", "key.drawn") if e["key_number"] == drawn]
    eventually(lambda: a.health()["fleet"]["online"], what="the cabinet back online")
    assert a.health()["fleet"]["offline_since"] is None
    assert hub.alarms("cab-a1") == []


def _client(cab: Cabinet, hub_url: str) -> HubClient:
    """A cabinet's own signed client (its device key from its data folder)."""
    enrolment = Enrolment(hub_url=hub_url, hub_public_key=fleet_state_hub_key(cab),
                          site="", cabinet_id=cab.cabinet_id)
    return HubClient(enrolment, load(cab.workdir / "var" / "device_key.pem"))


def fleet_state_hub_key(cab: Cabinet) -> str:
    with contextlib.closing(cab.sqlite()) as db:
        (value,) = db.execute("SELECT value FROM fleet_state WHERE name = 'enrolment'").fetchone()
    key: str = json.loads(value)["hub_public_key"]
    return key


def test_two_hub_processes_serve_one_fleet_and_an_edited_row_is_refused(
        fleet: dict[str, Any]) -> None:
    hub: Hub = fleet["hub"]
    a: Cabinet = fleet["a"]
    second = Hub(hub.env | {"KIOSK_FLEET__HUB_PORT": str(free_port())}, 0, hub.workdir)
    second.port, second.token = int(second.env["KIOSK_FLEET__HUB_PORT"]), hub.token
    second.start()
    t = enrol_and_start(fleet["root"] / "t1", "cab-t1", second, "tower-a")
    try:
        # A card revoked while cab-a1 cannot reach its hub process: cab-a1 decides alone with
        # what it holds, then applies the revocation when its hub is back, before the next tap.
        uid = a.daemon.people["SEC"][1]["uid"]
        hub.stop()
        eventually(lambda: not a.health()["fleet"]["online"], what="cab-a1 offline")
        version = a.health()["fleet"]["config_version"]
        card = second.get(f"/api/v1/cards?uid={uid}")["items"][0]
        second.post(f"/api/v1/cards/{card['id']}/revoke", {"note": "revoked mid-visit"})
        a.daemon.tap(uid)
        a.daemon.wait_state("choosing")  # the offline cabinet still holds the card as active
        a.daemon.post("/kiosk/api/cancel")
        a.daemon.wait_state("idle")
        hub.start()
        eventually(lambda: a.health()["fleet"]["config_version"] > version,
                   what="cab-a1 to apply what changed while it was away")
        a.daemon.tap(uid)
        refused = eventually(lambda: [e for e in a.daemon_events("access.denied")
                                      if e[1].get("card") == uid], what="the tap refused")
        assert refused[0][1]["code"] == "card_revoked"

        # The same batch sent to both hub processes at once is held once (K10: one truth).
        # cab-a1's own shipper may still be sending the tap's events meanwhile: whichever
        # sender comes first stores an event, the others find it held.
        batch = read_batch(_sqlite_engine(a), a.cabinet_id, 0, 50)
        last = batch["events"][-1]["seq"]

        async def both() -> list[Any]:
            clients = [_client(a, hub.fleet_url), _client(a, second.fleet_url)]
            try:
                return await asyncio.gather(*(c.call("POST", "/ingest", batch) for c in clients))
            finally:
                for c in clients:
                    await c.close()
        answers = asyncio.run(both())
        assert all(answer["acked_seq"] >= last for answer in answers)  # both hold it all
        assert sum(answer["new_events"] for answer in answers) <= len(batch["events"])
        assert hub_copy_verifies(fleet["db"], a) >= last  # each seq once, as the cabinet's
        eventually(lambda: hub.events("cab-t1", "daemon.started"), what="cab-t1 ships")

        # cab-t1's hub goes away; a draw happens; someone edits that row in the SQLite file.
        second.stop()
        with contextlib.closing(t.sqlite()) as db:
            (before,) = db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        drawn = draw(t, t.daemon.people["ENG"][3]["uid"])

        def logged() -> int | None:
            """The draw's event, once the writer thread has committed it (the screen goes
            idle first): editing an older row, already at the hub, would prove nothing."""
            with contextlib.closing(t.sqlite()) as db:
                row = db.execute("SELECT max(seq) FROM events WHERE type = 'key.drawn' "
                                 "AND key_number = ? AND seq > ?", (drawn, before)).fetchone()
            return row[0] if row else None

        seq = eventually(logged, what="the draw to be logged")
        with contextlib.closing(t.sqlite()) as db:
            db.execute("UPDATE events SET key_number = 'X-EDITED' WHERE seq = ?", (seq,))
            db.commit()
        second.start()
        alarm = eventually(lambda: [x for x in hub.alarms("cab-t1") if x["kind"] ==
                                    "edited_event"], what="the edit to raise a hub alarm")
        assert alarm[0]["seq"] == seq and "edited" in alarm[0]["message"]
        held = hub.events("cab-t1")
        assert held[-1]["seq"] < seq, "nothing from the edited row on is held"
        assert not [e for e in held if e["key_number"] == "X-EDITED"]
    finally:
        t.daemon.stop()
        second.stop()


def test_a_restored_old_backup_is_refused_and_the_hub_keeps_its_copy(
        fleet: dict[str, Any], tmp_path: Path) -> None:
    hub: Hub = fleet["hub"]
    b: Cabinet = fleet["b"]
    archive = tmp_path / "old.tar.gz"
    kiosk_cli(b.cli_env, "backup", "--out", str(archive), cwd=b.workdir)
    key = draw(b, b.daemon.people["ENG"][4]["uid"])
    drawn = eventually(lambda: [e for e in hub.events("cab-b1", "key.drawn")
                                if e["key_number"] == key], what=f"{key} at the hub")
    b.daemon.stop()
    kiosk_cli(b.cli_env, "restore", str(archive), cwd=b.workdir)
    b.restart()  # the old log grows again from an old head: a fork of what the hub holds
    alarms = eventually(lambda: [x for x in hub.alarms("cab-b1")
                                 if x["kind"] in ("fork", "log_backwards")],
                        what="the restored backup to raise a hub alarm")
    assert "backup" in alarms[0]["message"]
    still = [e for e in hub.events("cab-b1", "key.drawn") if e["key_number"] == key]
    assert still == drawn, "the hub never overwrites what it holds"


def test_unenrolled_and_revoked_cabinets_are_refused_and_logged(fleet: dict[str, Any]) -> None:
    hub: Hub = fleet["hub"]
    a: Cabinet = fleet["a"]

    async def call(client: HubClient) -> int:
        try:
            await client.call("GET", "/cursor")
            return 200
        except HubError as exc:
            return exc.status
        finally:
            await client.close()

    stranger = HubClient(Enrolment(hub_url=hub.fleet_url, hub_public_key=fleet_state_hub_key(a),
                                   site="", cabinet_id="cab-x9"),
                         load_or_create(fleet["root"] / "stranger.pem"))
    assert asyncio.run(call(stranger)) == 401
    hub.post("/hub/v1/cabinets/cab-a1/revoke")
    assert asyncio.run(call(_client(a, hub.fleet_url))) == 403
    refused = hub.get("/api/v1/events?type=fleet.request_refused&limit=500")["items"]
    assert {e["payload"]["cabinet_id"] for e in refused} >= {"cab-x9", "cab-a1"}
    assert [x for x in hub.alarms("cab-a1") if x["kind"] == "refused_request"]


def _sqlite_engine(cab: Cabinet) -> Any:
    from kiosk.store.db import make_engine

    return make_engine(f"sqlite:///{cab.workdir / 'var' / 'kiosk.db'}")
