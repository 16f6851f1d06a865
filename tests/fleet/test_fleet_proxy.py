"""A cabinet reaches its hub through a proxy that drops, delays and duplicates traffic
(issue 12, partitions). The cabinet keeps drawing; a card is revoked at the hub meanwhile.
Afterwards the hub holds every event exactly once, byte-identical to the cabinet's, its chain
verifies, the revocation arrived, and the only refusals at the hub are the duplicated
requests, each refused as a replay (its nonce was seen), never a gap or a fork.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.fleet.chaos_proxy import ChaosProxy
from tests.fleet.fleet_rig import (
    Cabinet,
    Hub,
    cabinet_env,
    enrolment_code,
    eventually,
    kiosk_cli,
    prepare_hub,
    start_cabinet,
)
from tests.fleet.test_fleet import draw, hub_copy_verifies

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def rig(hub_db: str, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[Hub, ChaosProxy, Cabinet]]:
    root: Path = tmp_path_factory.mktemp("fleet-proxy")
    hub = prepare_hub(root / "hub", hub_db).start()
    hub.login()
    hub.post("/hub/v1/sites", {"code": "tower-p", "name": "Tower P"})
    proxy = ChaosProxy(hub.port).start()
    cabinet: Cabinet | None = None
    try:
        workdir = root / "p1"
        workdir.mkdir()
        env = cabinet_env(workdir, "cab-p1", hub, KIOSK_FLEET__HUB_URL=proxy.url,
                          KIOSK_FLEET__BATCH_SIZE="3", KIOSK_FLEET__POLL_WAIT_S="2")
        cli_env = {**Cabinet(None, "cab-p1", workdir, env).cli_env}  # type: ignore[arg-type]
        kiosk_cli(cli_env, "fleet", "enrol", proxy.url, enrolment_code(hub, "tower-p"),
                  cwd=workdir)
        cabinet = start_cabinet(workdir, "cab-p1", env)
        yield hub, proxy, cabinet
    finally:
        if cabinet is not None:
            cabinet.daemon.stop()
        proxy.stop()
        hub.stop()


def _hub_refusals(db_url: str) -> list[dict[str, Any]]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [json.loads(p) for (p,) in conn.execute(text(
                "SELECT payload FROM events WHERE type = 'fleet.request_refused'"))]
    finally:
        engine.dispose()


def test_dropped_delayed_and_duplicated_traffic_loses_and_doubles_nothing(
        rig: tuple[Hub, ChaosProxy, Cabinet], hub_db: str) -> None:
    hub, proxy, cab = rig
    eventually(lambda: cab.health()["fleet"]["online"], what="the cabinet online via the proxy")
    proxy.chaos = True
    drawn = []
    for dept, index in (("ENG", 0), ("ENG", 1), ("CS", 1), ("SEC", 1)):
        drawn.append(draw(cab, cab.daemon.people[dept][index]["uid"]))
        for n in range(2):
            cab.daemon.tap(f"BADC0D{n:02X}")  # refused locally, logged, shipped
    uid = cab.daemon.people["SEC"][0]["uid"]
    card = hub.get(f"/api/v1/cards?uid={uid}")["items"][0]
    hub.post(f"/api/v1/cards/{card['id']}/revoke", {"note": "lost, during the storm"})

    def revoked() -> bool:
        with closing(cab.sqlite()) as db:
            return db.execute("SELECT status FROM cards WHERE uid = ?",
                              (uid,)).fetchone() == ("revoked",)

    eventually(revoked, timeout=120, what="the revocation through the misbehaving proxy")
    with closing(cab.sqlite()) as db:
        head = db.execute("SELECT max(seq) FROM events").fetchone()[0]
    eventually(lambda: hub_copy_verifies(hub_db, cab) >= head, timeout=120,
               what="the hub to hold the log through the misbehaving proxy")
    proxy.chaos = False
    for kind in ("dropped_request", "dropped_response", "delayed", "duplicated"):
        assert proxy.counts[kind] > 0, (kind, proxy.counts)  # the storm really happened

    with closing(cab.sqlite()) as db:  # everything up to now, once more, after the storm
        head = db.execute("SELECT max(seq) FROM events").fetchone()[0]
    eventually(lambda: hub_copy_verifies(hub_db, cab) == head, timeout=120,
               what="the hub to hold every event exactly once")
    shipped = {e["key_number"] for e in hub.events("cab-p1", "key.drawn")}
    assert set(drawn) <= shipped
    kinds = {a["kind"] for a in hub.alarms("cab-p1")}
    assert kinds <= {"refused_request"}, kinds  # never a gap, fork or edited row
    whys = {r["why"] for r in _hub_refusals(hub_db) if r["cabinet_id"] == "cab-p1"}
    assert whys <= {"replayed request (nonce seen before)"}, whys
