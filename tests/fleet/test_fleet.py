"""One hub on PostgreSQL and cabinet daemons on simulated hardware, as processes (issue 12).

Draws at each cabinet appear at the hub with their chains verified; a card revoked at the
hub is refused at every online cabinet; the hub away does not change what a cabinet
decides, and the cabinets catch up when it is back.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.fleet_rig import Cabinet, Hub, enrol_and_start, eventually, prepare_hub

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def fleet(hub_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("fleet")
    hub = prepare_hub(root / "hub", hub_db, ["tower-a", "tower-b"]).start()
    hub.login()
    cabinets: list[Cabinet] = []
    try:
        cabinets.append(enrol_and_start(root / "a1", "cab-a1", hub, "tower-a"))
        cabinets.append(enrol_and_start(root / "b1", "cab-b1", hub, "tower-b"))
        yield {"hub": hub, "a": cabinets[0], "b": cabinets[1], "root": root}
    finally:
        for cab in cabinets:
            cab.daemon.stop()
        hub.stop()


def _draw(cab: Cabinet, uid: str, key_number: str) -> None:
    d = cab.daemon
    d.tap(uid)
    d.wait_state("choosing")
    keys = {k["key_number"]: k for k in d.screen()["keys"]}
    slot = keys[key_number]["slot"]
    d.post("/kiosk/api/draw", {"keys": [key_number], "reason_code": "repair"})
    assert d.wait_slot_open(slot)
    d.post("/sim/take", {"slot": slot})
    d.wait_state("idle")


def _loan_types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_draws_at_each_cabinet_appear_at_the_hub(fleet: dict[str, Any]) -> None:
    hub: Hub = fleet["hub"]
    a, b = fleet["a"], fleet["b"]
    eng_a, eng_b = a.daemon.people["ENG"][0], b.daemon.people["ENG"][1]
    _draw(a, eng_a["uid"], "U602")
    _draw(b, eng_b["uid"], "U603")
    for cab, key in ((a, "U602"), (b, "U603")):
        drawn = eventually(lambda cab=cab, key=key: [
            e for e in hub.events(cab.cabinet_id) if e["key_number"] == key
            and e["type"].startswith("key.")], what=f"{key} drawn at {cab.cabinet_id}")
        print(_loan_types(drawn))
