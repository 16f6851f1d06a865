"""The fleet at scale (issue 12): many simulated cabinets push a busy day into one hub.

A real ``kiosk hub`` on a throw-away PostgreSQL. BENCH_FLEET_CABINETS (default 1000)
simulated cabinets, each an event generator speaking the real protocol, not a daemon: its own
Ed25519 device key, enrolled with a one-time code, a hash-chained log of
BENCH_FLEET_EVENTS events (default 200: draws, returns, refused taps) with a signed
checkpoint every 100 events, shipped in signed ``POST /hub/v1/ingest`` batches of up to 500.
The hub verifies every event's hash, link and checkpoint as it ingests, as for a real cabinet.

Figures:
- the sustained ingest rate (events/s, verification included) with BENCH_FLEET_CONCURRENCY
  cabinets shipping at once (default 32);
- the time from a card revoked through the hub's admin API to the change being answered to a
  cabinet's long-poll (``GET /hub/v1/changes``), measured while the ingest runs;
- the p50/p95 of the API's list queries (a cabinet's events, by type, the cabinets, the
  alarms) on what was ingested.

The event generation happens before the clock starts. Needs PostgreSQL server binaries.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import percentile, report  # noqa: E402

from kiosk.audit.chain import (  # noqa: E402
    GENESIS_HASH,
    canonical_json,
    checkpoint_message,
    event_hash,
    format_time,
)
from kiosk.audit.device_key import DeviceKey  # noqa: E402
from kiosk.fleet import protocol  # noqa: E402
from tests import pg_server  # noqa: E402
from tests.fleet.fleet_rig import Hub, prepare_hub  # noqa: E402

CHECKPOINT_EVERY = 100
BATCH = 500
LIST_SAMPLES = 30


@dataclass
class SimCabinet:
    """An event generator with a device key and a chain of its own."""

    cabinet_id: str
    key: DeviceKey
    batches: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0


def _event(cabinet_id: str, seq: int, at: dt.datetime, prev: str,
           rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    key = f"U{rng.randint(201, 3099)}"
    if roll < 0.4:
        kind, decision, payload = "key.drawn", "allow", {"reason": "repair", "loan": seq}
    elif roll < 0.8:
        kind, decision, payload = "key.returned", "allow", {"loan": seq - 1}
    else:
        kind, decision, payload, key = "access.denied", "deny", {"card": "DEADBEEF"}, None
    row = {"cabinet_id": cabinet_id, "seq": seq, "at": at, "type": kind,
           "actors": canonical_json([f"person:{rng.randint(1, 400)}"]),
           "slot": rng.randint(1, 200) if key else None, "key_number": key,
           "decision": decision, "rules": canonical_json(["K3"]),
           "payload": canonical_json(payload), "prev_hash": prev}
    row["hash"] = event_hash(**row)
    row["at"] = format_time(at)
    return row


def generate(cabinet: SimCabinet, count: int, rng: random.Random) -> None:
    """A day's log for one cabinet, cut into ingest batches with their checkpoints."""
    start = dt.datetime(2026, 12, 7, 8, tzinfo=dt.UTC)
    prev, events, checkpoints = GENESIS_HASH, [], []
    for seq in range(1, count + 1):
        at = start + dt.timedelta(seconds=seq * 20)
        row = _event(cabinet.cabinet_id, seq, at, prev, rng)
        events.append(row)
        prev = row["hash"]
        if seq % CHECKPOINT_EVERY == 0:
            signed_at = at + dt.timedelta(seconds=1)
            checkpoints.append({"seq": seq, "head_hash": prev, "signed_at": signed_at.isoformat(),
                                "key_id": cabinet.key.key_id, "signature": cabinet.key.sign(
                                    checkpoint_message(cabinet_id=cabinet.cabinet_id, seq=seq,
                                                       head_hash=prev, signed_at=signed_at))})
    for low in range(0, count, BATCH):
        part = events[low:low + BATCH]
        top = part[-1]["seq"]
        cabinet.batches.append({
            "head_seq": count, "head_hash": prev, "events": part, "records": [],
            "checkpoints": [c for c in checkpoints if low < c["seq"] <= top]})
    cabinet.events = count


async def signed(http: httpx.AsyncClient, hub: Hub, cabinet: SimCabinet, method: str,
                 path: str, body: Any = None, timeout: float = 60.0) -> Any:
    raw = b"" if body is None else json.dumps(body).encode()
    headers = protocol.sign_request(cabinet.key.sign, method=method, path="/hub/v1" + path,
                                    cabinet_id=cabinet.cabinet_id, body=raw).as_dict()
    answer = await http.request(method, hub.fleet_url + path, content=raw, timeout=timeout,
                                headers={**headers, "Content-Type": "application/json"})
    if answer.status_code != 200:
        raise RuntimeError(f"{method} {path} as {cabinet.cabinet_id}: {answer.status_code} "
                           f"{answer.text[:300]}")
    return answer.json()


async def enrol_all(hub: Hub, cabinets: list[SimCabinet], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)
    auth = {"Authorization": f"Bearer {hub.token}"}
    async with httpx.AsyncClient(timeout=60) as http:
        async def one(cab: SimCabinet) -> None:
            async with gate:
                code = (await http.post(hub.fleet_url + "/sites/tower-s/enrolment-codes",
                                        headers=auth)).json()["code"]
                done = await http.post(hub.fleet_url + "/enrol", json={
                    "code": code, "cabinet_id": cab.cabinet_id,
                    "public_key": cab.key.public_hex})
                assert done.status_code == 200, done.text
        await asyncio.gather(*(one(c) for c in cabinets))


async def ship_all(hub: Hub, cabinets: list[SimCabinet], concurrency: int,
                   revocations: int) -> tuple[float, list[float]]:
    """Every cabinet ships its day; meanwhile cards are revoked and timed to a long-poll."""
    gate = asyncio.Semaphore(concurrency)
    probe = cabinets[0]
    auth = {"Authorization": f"Bearer {hub.token}"}
    loaded = asyncio.Event()
    async with httpx.AsyncClient(timeout=120,
                                 limits=httpx.Limits(max_connections=concurrency + 4)) as http:
        version = int((await signed(http, hub, probe, "GET", "/changes?since=0"))["version"])
        cards = (await http.get(hub.base + "/api/v1/cards?status=active&limit=50",
                                headers=auth)).json()["items"]

        async def ship(cab: SimCabinet) -> None:
            async with gate:
                for batch in cab.batches:
                    answer = await signed(http, hub, cab, "POST", "/ingest", batch)
                    assert answer["acked_seq"] == batch["events"][-1]["seq"], answer

        async def revoke_under_load() -> list[float]:
            nonlocal version
            seconds: list[float] = []
            await asyncio.sleep(1.0)
            for card in cards[:revocations]:
                if loaded.is_set():
                    break
                start = time.perf_counter()
                await http.post(hub.base + f"/api/v1/cards/{card['id']}/revoke",
                                json={"note": "bench"}, headers=auth)
                while True:
                    answer = await signed(http, hub, probe, "GET",
                                          f"/changes?since={version}&wait=10")
                    version = int(answer["version"])
                    if any(c["row"] and c["row"].get("uid") == card["uid"]
                           for c in answer["changes"]):
                        break
                seconds.append(time.perf_counter() - start)
                await asyncio.sleep(0.5)
            return seconds

        prober = asyncio.create_task(revoke_under_load())
        start = time.perf_counter()
        await asyncio.gather(*(ship(c) for c in cabinets))
        elapsed = time.perf_counter() - start
        loaded.set()
        return elapsed, await prober


def list_queries(hub: Hub, cabinets: list[SimCabinet], rng: random.Random
                 ) -> dict[str, dict[str, float]]:
    auth = {"Authorization": f"Bearer {hub.token}"}
    shapes = {
        "events_of_a_cabinet": lambda c: f"/hub/v1/events?cabinet_id={c}&limit=100",
        "events_by_type": lambda c: f"/hub/v1/events?cabinet_id={c}&type=key.drawn&limit=100",
        "events_deep_page": lambda c: f"/hub/v1/events?cabinet_id={c}&after_seq=150&limit=100",
        "cabinets": lambda c: "/hub/v1/cabinets",
        "alarms": lambda c: "/hub/v1/alarms",
    }
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(timeout=60) as http:
        for name, path_of in shapes.items():
            ms: list[float] = []
            for _ in range(LIST_SAMPLES):
                path = path_of(rng.choice(cabinets).cabinet_id)
                start = time.perf_counter()
                answer = http.get(hub.base + path, headers=auth)
                ms.append((time.perf_counter() - start) * 1000)
                assert answer.status_code == 200, answer.text
            out[name] = {"p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95)}
    return out


def main() -> None:
    if pg_server._bindir() is None and os.geteuid() != 0:
        print("-- fleet_scale: skipped, no PostgreSQL server binaries (apt-get install postgresql)")
        return
    count = int(os.environ.get("BENCH_FLEET_CABINETS", "1000"))
    per_cabinet = int(os.environ.get("BENCH_FLEET_EVENTS", "200"))
    concurrency = int(os.environ.get("BENCH_FLEET_CONCURRENCY", "32"))
    revocations = int(os.environ.get("BENCH_FLEET_REVOCATIONS", "5"))
    rng = random.Random(12)
    cabinets = [SimCabinet(f"sim-{n:04d}", DeviceKey(Ed25519PrivateKey.generate()))
                for n in range(count)]
    t0 = time.perf_counter()
    for cab in cabinets:
        generate(cab, per_cabinet, rng)
    generated_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp, pg_server.postgres_server() as db_url:
        hub = prepare_hub(Path(tmp) / "hub", db_url).start()
        try:
            hub.login()
            hub.post("/hub/v1/sites", {"code": "tower-s", "name": "Simulated"})
            asyncio.run(enrol_all(hub, cabinets, concurrency))
            elapsed, revoke_s = asyncio.run(ship_all(hub, cabinets, concurrency, revocations))
            queries = list_queries(hub, cabinets, rng)
        finally:
            hub.stop()
    total = sum(c.events for c in cabinets)
    figures: dict[str, Any] = {
        "cabinets": count, "events": total, "ingest_s": round(elapsed, 2),
        "ingest_events_per_s": round(total / elapsed),
        "revocations_under_load": len(revoke_s),
        "revoke_to_long_poll_s_p50": percentile(revoke_s, 50) if revoke_s else None,
        "revoke_to_long_poll_s_max": max(revoke_s) if revoke_s else None,
    }
    for name, values in queries.items():
        figures[f"list_{name}_p50_ms"] = round(values["p50_ms"], 1)
        figures[f"list_{name}_p95_ms"] = round(values["p95_ms"], 1)
    report("fleet_scale", figures, dataset={
        "name": "simulated fleet", "cabinets": count, "events_per_cabinet": per_cabinet,
        "batch": BATCH, "checkpoint_every": CHECKPOINT_EVERY, "concurrency": concurrency,
        "generation_s": round(generated_s, 1), "hub_processes": 1})


if __name__ == "__main__":
    main()
