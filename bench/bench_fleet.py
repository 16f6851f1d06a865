"""The fleet: how long a card revoked at the hub takes to be in force at each cabinet.

A real ``kiosk hub`` on a throw-away PostgreSQL and two real ``kiosk run`` cabinets on
simulated hardware (the rig of tests/fleet). For each of BENCH_REVOCATIONS cards (default
20): revoke it through the hub's admin API and poll both cabinets' SQLite files every 5 ms
until the card reads revoked there. The figure issue #12 aims at: within 5 s at every online
cabinet. Needs PostgreSQL server binaries (skipped, saying so, without them).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import percentile, report  # noqa: E402

from tests import pg_server  # noqa: E402
from tests.fleet.fleet_rig import enrol_and_start_all, prepare_hub  # noqa: E402

POLL_S = 0.005


def main() -> None:
    if pg_server._bindir() is None and os.geteuid() != 0:
        print("-- fleet: skipped, no PostgreSQL server binaries (apt-get install postgresql)")
        return
    count = int(os.environ.get("BENCH_REVOCATIONS", "20"))
    with tempfile.TemporaryDirectory() as tmp, pg_server.postgres_server() as db_url:
        root = Path(tmp)
        hub = prepare_hub(root / "hub", db_url).start()
        hub.login()
        hub.post("/hub/v1/sites", {"code": "tower-a", "name": "Tower A"})
        cabinets = enrol_and_start_all(hub, [(root / "c1", "cab-b1", "tower-a", {}),
                                             (root / "c2", "cab-b2", "tower-a", {})])
        try:
            uids = [p["uid"] for dept in cabinets[0].daemon.people.values() for p in dept]
            seconds: list[float] = []
            for uid in uids[:count]:
                card = hub.get(f"/api/v1/cards?uid={uid}")["items"][0]
                start = time.monotonic()
                hub.post(f"/api/v1/cards/{card['id']}/revoke", {"note": "bench"})
                for cab in cabinets:
                    with contextlib.closing(cab.sqlite()) as db:
                        while db.execute("SELECT status FROM cards WHERE uid = ?",
                                         (uid,)).fetchone() != ("revoked",):
                            time.sleep(POLL_S)
                    seconds.append(time.monotonic() - start)
        finally:
            for cab in cabinets:
                cab.daemon.stop()
            hub.stop()
    report("fleet_revocation", {
        "revocations": count, "cabinets": len(cabinets),
        "revoke_to_in_force_s_p50": percentile(seconds, 50),
        "revoke_to_in_force_s_p95": percentile(seconds, 95),
        "revoke_to_in_force_s_max": max(seconds),
    }, dataset={"name": "demo tower", "people": len(uids), "poll_wait_s": 5.0})


if __name__ == "__main__":
    main()
