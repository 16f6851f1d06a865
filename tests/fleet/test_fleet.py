"""One hub on PostgreSQL and cabinet daemons on simulated hardware, as processes (issue 12).

Draws at each cabinet appear at the hub with their chains verified; a card revoked at the
hub is refused at every online cabinet; the hub away (stopped, or killed with -9 while it
ingests) does not change what a cabinet decides, and afterwards the hub holds every event
exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from kiosk.audit.chain import GENESIS_HASH, event_hash
from tests.fleet.fleet_rig import Cabinet, Hub, enrol_and_start, eventually, prepare_hub

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def fleet(hub_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("fleet")
    hub = prepare_hub(root / "hub", hub_db, ["tower-a", "tower-b"]).start()
    hub.login()
    cabinets: list[Cabinet] = []
    try:
        # cab-a1 ships in small batches so a catch-up takes many round trips (kill -9 test)
        cabinets.append(enrol_and_start(root / "a1", "cab-a1", hub, "tower-a",
                                        KIOSK_FLEET__BATCH_SIZE="4"))
        cabinets.append(enrol_and_start(root / "b1", "cab-b1", hub, "tower-b"))
        yield {"hub": hub, "a": cabinets[0], "b": cabinets[1], "root": root, "db": hub_db}
    finally:
        for cab in cabinets:
            cab.daemon.stop()
        hub.stop()


def draw(cab: Cabinet, uid: str, key_number: str) -> None:
    d = cab.daemon
    d.tap(uid)
    d.wait_state("choosing")
    keys = {k["key_number"]: k for k in d.screen()["keys"]}
    slot = keys[key_number]["slot"]
    d.post("/kiosk/api/draw", {"keys": [key_number], "reason_code": "repair"})
    assert d.wait_slot_open(slot)
    d.post("/sim/take", {"slot": slot})
    d.wait_state("idle")


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
    draw(a, a.daemon.people["ENG"][0]["uid"], "U602")
    draw(b, b.daemon.people["ENG"][1]["uid"], "U603")
    for cab, key in ((a, "U602"), (b, "U603")):
        eventually(lambda cab=cab, key=key: [
            e for e in hub.events(cab.cabinet_id, "key.drawn") if e["key_number"] == key],
            what=f"{key} drawn at {cab.cabinet_id} to show at the hub")
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
        denied = eventually(lambda cab=cab: [
            e for e in hub.events(cab.cabinet_id, "access.denied")
            if e["payload"].get("card") == uid], what="the refused tap to reach the hub")
        assert denied[0]["decision"] == "deny"
        applied = hub.events(cab.cabinet_id, "fleet.config_applied")
        assert any(uid in e["payload"]["cards"] for e in applied)
        assert cab.daemon.screen()["state"] != "choosing"


def test_hub_away_then_killed_mid_ingest_loses_and_doubles_nothing(
        fleet: dict[str, Any]) -> None:
    hub: Hub = fleet["hub"]
    a: Cabinet = fleet["a"]
    hub.stop()
    offline = eventually(lambda: (lambda f: f if f and not f["online"] else None)(
        a.health()["fleet"]), what="the cabinet to notice the hub is away")
    assert offline["offline_since_local"] and len(offline["offline_since_local"]) == 5  # HH:MM
    # The cabinet keeps deciding alone: a draw and a refused tap, both in its own log.
    draw(a, a.daemon.people["ENG"][2]["uid"], "U604")
    for n in range(6):
        a.daemon.tap(f"DEADBE{n:02X}")  # unknown cards: refused locally, logged
    head = a.health()["audit"]["head_seq"]
    hub.start()
    hub.kill9()  # very likely mid-ingest: cab-a1 ships its backlog 4 events at a time
    hub.start()
    hub.login()
    eventually(lambda: hub_copy_verifies(fleet["db"], a) >= head, timeout=60,
               what="the cabinet to catch up")
    assert [e for e in hub.events("cab-a1", "key.drawn") if e["key_number"] == "U604"]
    eventually(lambda: a.health()["fleet"]["online"], what="the cabinet back online")
    assert a.health()["fleet"]["offline_since"] is None
    assert hub.alarms("cab-a1") == []
