"""The fleet at scale (issue 12): many simulated cabinets push a busy day into one hub.

A real ``kiosk hub`` (``--hubs`` processes on one database, as in production behind a load
balancer) on a throw-away PostgreSQL. ``--cabinets`` simulated cabinets in ``--sites`` sites,
each an event generator speaking the real protocol, not a daemon: its own Ed25519 device key,
enrolled with a one-time code, a hash-chained log of ``--per-cabinet`` events (a fifth
draws, a fifth returns, refused taps, the doors opening and closing) with a signed checkpoint every 100 events and the loan record of each
draw and return, shipped in signed ``POST /hub/v1/ingest`` batches of up to 500 events. The
hub verifies every event's hash, link and checkpoint as it ingests, as for a real cabinet.

Figures:
- the sustained ingest rate (events/s, verification included) with ``--concurrency``
  cabinets shipping at once;
- the time from a card revoked through the hub's admin API to the change being answered to a
  cabinet's long-poll (``GET /hub/v1/changes``), measured while the ingest runs;
- then ``--events`` events of history are added inside PostgreSQL (``bench/fleet_bulk.py``:
  the shape of ingested rows, stand-in hashes) and the p50/p95 of the API's list queries are
  taken through HTTP on the whole: a cabinet's events, by type, a rare type, a deep page, the
  cabinets page, a site's loan records, the alarms; and the lists by site, first page with
  its total: every loan of the whole fleet (all, out, overdue, returned, a deep page), of a
  site and of a cabinet, the alarms and the reports the cabinets raised and issued.

    .venv/bin/python bench/bench_fleet_scale.py                      # the default sizes
    .venv/bin/python bench/bench_fleet_scale.py --events 50000000    # the issue's 50 M

Every option has an environment twin for ``bench/run_all.py`` (BENCH_FLEET_QUERY_EVENTS,
BENCH_FLEET_CABINETS, BENCH_FLEET_EVENTS, BENCH_FLEET_CONCURRENCY, BENCH_FLEET_HUBS). The
event generation happens before the clock starts. The PostgreSQL cluster and its dataset are
deleted at the end. Needs PostgreSQL server binaries.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import percentile, report  # noqa: E402
from fleet_bulk import load_history  # noqa: E402

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
from tests.ports import free_port  # noqa: E402

CHECKPOINT_EVERY = 100
BATCH = 500
LIST_SAMPLES = 40
DAY_START = dt.datetime(2026, 12, 7, 8, tzinfo=dt.UTC)
PG_OPTIONS = ("-c shared_buffers=512MB -c max_wal_size=4GB -c checkpoint_timeout=30min "
              "-c maintenance_work_mem=256MB -c max_connections=200")
"""A hub's PostgreSQL would be given more than the 128 MB default; the big WAL lets the bulk
load run without a checkpoint every gigabyte."""


@dataclass
class SimCabinet:
    """An event generator with a device key and a chain of its own."""

    cabinet_id: str
    site: str
    key: DeviceKey
    batches: list[tuple[int, bytes]] = field(default_factory=list)  # (last seq, JSON body)
    events: int = 0
    records: int = 0


def _loan(loan_id: str, cabinet: SimCabinet, at: dt.datetime, seq: int,
          key: str) -> dict[str, Any]:
    """A loan record body of the shape ``link.record_body`` gives (its columns)."""
    return {"id": loan_id, "key_id": str(uuid.uuid5(uuid.NAMESPACE_OID, key)),
            "cabinet_id": str(uuid.uuid5(uuid.NAMESPACE_OID, cabinet.cabinet_id)),
            "borrower_id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"p{seq % 400}")),
            "issuer_id": None, "duty_manager_id": None, "approval_id": None,
            "authorization_id": None, "quantity": 1, "reason_code": "repair",
            "reason_text": None, "drawn_at": at.isoformat(),
            "due_at": (at + dt.timedelta(hours=8)).isoformat(), "draw_event_seq": seq,
            "returned_at": None, "returned_by_id": None, "received_by_id": None,
            "returned_by_other": False, "return_slot_id": None, "return_event_seq": None}


def generate(cabinet: SimCabinet, count: int, rng: random.Random) -> None:
    """A day's log for one cabinet, cut into ingest batches with their checkpoints and the
    loan records their draws and returns made or changed (as the shipper sends them)."""
    prev, events = GENESIS_HASH, []
    checkpoints: list[dict[str, Any]] = []
    records: dict[int, dict[str, Any]] = {}  # seq of the event that made/changed it
    out: list[tuple[dict[str, Any], str]] = []  # loans still out: (body, key number)
    for seq in range(1, count + 1):
        at = DAY_START + dt.timedelta(seconds=seq * 20)
        roll = rng.random()
        key = f"U{rng.randint(201, 3099)}"
        decision: str | None
        payload: dict[str, Any]
        if roll < 0.2 or (roll < 0.4 and not out):
            loan_id = str(uuid.UUID(int=rng.getrandbits(128)))
            body = _loan(loan_id, cabinet, at, seq, key)
            out.append((body, key))
            kind, decision, payload = "key.drawn", "allow", {"loan": loan_id, "reason": "repair"}
            records[seq] = {"kind": "loan", "id": loan_id, "body": dict(body)}
        elif roll < 0.4:
            body, key = out.pop(rng.randrange(len(out)))
            body.update(returned_at=at.isoformat(), return_event_seq=seq)
            kind, decision, payload = "key.returned", "allow", {"loan": body["id"]}
            records[seq] = {"kind": "loan", "id": body["id"], "body": dict(body)}
        elif roll < 0.55:
            kind, decision, payload, key = "access.denied", "deny", {"card": "DEADBEEF"}, ""
        else:
            kind = "door.opened" if roll < 0.775 else "door.closed"
            decision, payload, key = None, {"door": 1}, ""
        row: dict[str, Any] = {
            "cabinet_id": cabinet.cabinet_id, "seq": seq, "at": at, "type": kind,
            "actors": canonical_json([f"person:{rng.randint(1, 400)}"]),
            "slot": rng.randint(1, 200) if kind != "access.denied" else None,
            "key_number": key or None,
            "decision": decision, "rules": canonical_json(["K3"]),
            "payload": canonical_json(payload), "prev_hash": prev}
        row["hash"] = prev = event_hash(**row)
        row["at"] = format_time(at)
        events.append(row)
        if seq % CHECKPOINT_EVERY == 0:
            signed_at = at + dt.timedelta(seconds=1)
            checkpoints.append({"seq": seq, "head_hash": prev, "signed_at": signed_at.isoformat(),
                                "key_id": cabinet.key.key_id, "signature": cabinet.key.sign(
                                    checkpoint_message(cabinet_id=cabinet.cabinet_id, seq=seq,
                                                       head_hash=prev, signed_at=signed_at))})
    for low in range(0, count, BATCH):
        part = events[low:low + BATCH]
        top = int(part[-1]["seq"])
        batch_records = [records[e["seq"]] for e in part if e["seq"] in records]
        cabinet.records += len(batch_records)
        cabinet.batches.append((top, json.dumps({
            "head_seq": count, "head_hash": prev, "events": part, "records": batch_records,
            "checkpoints": [c for c in checkpoints if low < c["seq"] <= top]}).encode()))
    cabinet.events = count


async def signed(http: httpx.AsyncClient, base: str, cabinet: SimCabinet, method: str,
                 path: str, raw: bytes = b"", timeout: float = 120.0) -> Any:
    """A signed request; a connection the hub closed as it was reused (uvicorn's keep-alive
    timeout) is sent again, freshly signed, as the real shipper does (ingest is idempotent)."""
    for attempt in range(3):
        headers = protocol.sign_request(cabinet.key.sign, method=method, path="/hub/v1" + path,
                                        cabinet_id=cabinet.cabinet_id, body=raw).as_dict()
        try:
            answer = await http.request(method, base + "/hub/v1" + path, content=raw,
                                        timeout=timeout,
                                        headers={**headers, "Content-Type": "application/json"})
            break
        except (httpx.ReadError, httpx.RemoteProtocolError):
            if attempt == 2:
                raise
    if answer.status_code != 200:
        raise RuntimeError(f"{method} {path} as {cabinet.cabinet_id}: {answer.status_code} "
                           f"{answer.text[:300]}")
    return answer.json()


def hub_of(hubs: list[Hub], cabinet: SimCabinet) -> Hub:
    """The load balancer: a cabinet always reaches the same hub process."""
    return hubs[int(cabinet.cabinet_id.rsplit("-", 1)[1]) % len(hubs)]


async def enrol_all(hub: Hub, cabinets: list[SimCabinet], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)
    auth = {"Authorization": f"Bearer {hub.token}"}
    async with httpx.AsyncClient(timeout=60) as http:
        async def one(cab: SimCabinet) -> None:
            async with gate:
                code = (await http.post(hub.fleet_url + f"/sites/{cab.site}/enrolment-codes",
                                        headers=auth)).json()["code"]
                done = await http.post(hub.fleet_url + "/enrol", json={
                    "code": code, "cabinet_id": cab.cabinet_id,
                    "public_key": cab.key.public_hex})
                assert done.status_code == 200, done.text
        await asyncio.gather(*(one(c) for c in cabinets))


async def ship_all(hubs: list[Hub], cabinets: list[SimCabinet], concurrency: int,
                   revocations: int) -> tuple[float, list[float]]:
    """Every cabinet ships its day; meanwhile cards are revoked and timed to a long-poll."""
    gate = asyncio.Semaphore(concurrency)
    admin, probe = hubs[0], cabinets[0]
    auth = {"Authorization": f"Bearer {admin.token}"}
    loaded = asyncio.Event()
    async with httpx.AsyncClient(timeout=120,
                                 limits=httpx.Limits(max_connections=concurrency + 4)) as http:
        probe_base = hub_of(hubs, probe).base
        version = int((await signed(http, probe_base, probe, "GET", "/changes?since=0"))[
            "version"])
        cards = (await http.get(admin.base + "/api/v1/cards?status=active&limit=50",
                                headers=auth)).json()["items"]

        async def ship(cab: SimCabinet) -> None:
            base = hub_of(hubs, cab).base
            async with gate:
                for top, body in cab.batches:
                    answer = await signed(http, base, cab, "POST", "/ingest", body)
                    assert answer["acked_seq"] == top, answer

        async def revoke_under_load() -> list[float]:
            nonlocal version
            seconds: list[float] = []
            await asyncio.sleep(1.0)
            for card in cards[:revocations]:
                if loaded.is_set():
                    break
                start = time.perf_counter()
                await http.post(admin.base + f"/api/v1/cards/{card['id']}/revoke",
                                json={"note": "bench"}, headers=auth)
                while True:
                    answer = await signed(http, probe_base, probe, "GET",
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


def list_queries(hub: Hub, cabinets: list[SimCabinet], sites: list[str], deep_seq: int,
                 rng: random.Random) -> dict[str, dict[str, float]]:
    """Each list query LIST_SAMPLES times through HTTP (the hub's own query code), after two
    unmeasured rounds: a hub's working set is warm in production."""
    auth = {"Authorization": f"Bearer {hub.token}"}
    last = sorted(c.cabinet_id for c in cabinets)

    def cab() -> str:
        return rng.choice(cabinets).cabinet_id

    shapes = {
        "events_of_a_cabinet": lambda: f"/hub/v1/events?cabinet_id={cab()}&limit=100",
        "events_by_type": lambda: f"/hub/v1/events?cabinet_id={cab()}&type=key.drawn&limit=100",
        "events_by_rare_type": lambda: (f"/hub/v1/events?cabinet_id={cab()}&type=alarm.raised"
                                        "&limit=100"),
        "events_deep_page": lambda: (f"/hub/v1/events?cabinet_id={cab()}"
                                     f"&after_seq={rng.randint(deep_seq // 2, deep_seq)}"
                                     "&limit=100"),
        "cabinets_page": lambda: ("/hub/v1/cabinets?limit=100&after="
                                  + last[rng.randrange(max(1, len(last) - 100))]),
        "loans_of_a_site": lambda: f"/hub/v1/records?site={rng.choice(sites)}&kind=loan&limit=100",
        "alarms": lambda: "/hub/v1/alarms",
        # The lists by site (kiosk.fleet.site_lists), first page of 50 with its total: the
        # long ones are the whole fleet's (every loan, every alarm and report a cabinet
        # raised or issued), read through the typed columns of migration 0024.
        "fleet_loans_all": lambda: "/hub/v1/loans?state=all",
        "fleet_loans_out": lambda: "/hub/v1/loans",
        "fleet_loans_overdue": lambda: "/hub/v1/loans?state=overdue",
        "fleet_loans_returned": lambda: "/hub/v1/loans?state=returned",
        "fleet_loans_deep_page": lambda: (f"/hub/v1/loans?state=all&offset="
                                          f"{rng.randint(500, 1000)}"),
        "site_loans_all": lambda: f"/hub/v1/loans?state=all&site={rng.choice(sites)}",
        "cabinet_loans_all": lambda: f"/hub/v1/loans?state=all&cabinet_id={cab()}",
        "fleet_cabinet_alarms": lambda: "/hub/v1/cabinet-alarms",
        "fleet_open_cabinet_alarms": lambda: "/hub/v1/cabinet-alarms?state=open",
        "site_cabinet_alarms": lambda: f"/hub/v1/cabinet-alarms?site={rng.choice(sites)}",
        "fleet_reports": lambda: "/hub/v1/reports",
        "site_reports": lambda: f"/hub/v1/reports?site={rng.choice(sites)}",
        # The merged log (kiosk.fleet.site_log), newest first across cabinets, and by type
        # (migration 0027): a rare type (alarm.raised, 0.5 %) from its partial index, a
        # common one (key.drawn) met every few rows of the log by time.
        "site_log_fleet": lambda: "/hub/v1/site-events",
        "site_log_of_a_site": lambda: f"/hub/v1/site-events?site={rng.choice(sites)}",
        "site_log_rare_type": lambda: "/hub/v1/site-events?type=alarm.raised",
        "site_log_common_type": lambda: "/hub/v1/site-events?type=key.drawn",
        "site_log_rare_type_of_a_site": lambda: (f"/hub/v1/site-events?type=alarm.raised"
                                                 f"&site={rng.choice(sites)}"),
    }
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(timeout=120) as http:
        for name, path_of in shapes.items():
            ms: list[float] = []
            for n in range(LIST_SAMPLES + 2):
                path = path_of()
                start = time.perf_counter()
                answer = http.get(hub.base + path, headers=auth)
                if n >= 2:
                    ms.append((time.perf_counter() - start) * 1000)
                assert answer.status_code == 200, answer.text
            out[name] = {"p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95)}
    return out


def options(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int,
                        default=int(env("BENCH_FLEET_QUERY_EVENTS", "5000000")),
                        help="events of history made inside PostgreSQL for the query "
                             "figures, on top of the ingested ones (the issue: 50000000)")
    parser.add_argument("--cabinets", type=int, default=int(env("BENCH_FLEET_CABINETS", "1000")))
    parser.add_argument("--sites", type=int, default=int(env("BENCH_FLEET_SITES", "50")))
    parser.add_argument("--per-cabinet", type=int, default=int(env("BENCH_FLEET_EVENTS", "500")),
                        help="events each cabinet ships through the ingest route")
    parser.add_argument("--concurrency", type=int,
                        default=int(env("BENCH_FLEET_CONCURRENCY", "32")))
    parser.add_argument("--hubs", type=int, default=int(env("BENCH_FLEET_HUBS", "2")),
                        help="hub processes on the one database")
    parser.add_argument("--revocations", type=int,
                        default=int(env("BENCH_FLEET_REVOCATIONS", "5")))
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    if pg_server._bindir() is None and os.geteuid() != 0:
        print("-- fleet_scale: skipped, no PostgreSQL server binaries (apt-get install postgresql)")
        return
    opts = options(argv)
    rng = random.Random(12)
    sites = [f"tower-{n:02d}" for n in range(opts.sites)]
    cabinets = [SimCabinet(f"sim-{n:04d}", sites[n % len(sites)],
                           DeviceKey.generate())
                for n in range(opts.cabinets)]
    t0 = time.perf_counter()
    for cab in cabinets:
        generate(cab, opts.per_cabinet, rng)
    generated_s = time.perf_counter() - t0
    print(f"   generated {opts.cabinets * opts.per_cabinet:,} events in {generated_s:.0f} s",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp, \
            pg_server.postgres_server(PG_OPTIONS) as db_url:
        first = prepare_hub(Path(tmp) / "hub", db_url)
        hubs = [first, *(Hub({**first.env, "KIOSK_FLEET__HUB_PORT": str(port)}, port,
                             first.workdir)
                         for port in (free_port() for _ in range(opts.hubs - 1)))]
        try:
            for hub in hubs:
                hub.start()
                hub.login()
            for site in sites:
                first.post("/hub/v1/sites", {"code": site, "name": f"Tower {site}"})
            asyncio.run(enrol_all(first, cabinets, opts.concurrency))
            print(f"   {len(cabinets):,} cabinets enrolled at {len(sites)} sites; shipping "
                  f"through {len(hubs)} hub process(es)", flush=True)
            elapsed, revoke_s = asyncio.run(ship_all(hubs, cabinets, opts.concurrency,
                                                     opts.revocations))
            ingested = sum(c.events for c in cabinets)
            print(f"   ingested {ingested:,} events in {elapsed:.1f} s "
                  f"({ingested / elapsed:,.0f}/s); loading {opts.events:,} more in PostgreSQL",
                  flush=True)
            loaded = load_history(db_url, [c.cabinet_id for c in cabinets], opts.events,
                                  progress=lambda line: print(line, flush=True))
            first.login()  # the load outlasts an access token
            queries = list_queries(first, cabinets, sites,
                                   opts.per_cabinet + loaded.events // len(cabinets), rng)
        finally:
            for hub in hubs:
                hub.stop()
    print("   the PostgreSQL cluster and its dataset are deleted", flush=True)
    records = sum(c.records for c in cabinets)
    figures: dict[str, Any] = {
        "cabinets": opts.cabinets, "events": ingested, "loan_records_shipped": records,
        "ingest_s": round(elapsed, 2), "ingest_events_per_s": round(ingested / elapsed),
        "revocations_under_load": len(revoke_s),
        "revoke_to_long_poll_s_p50": percentile(revoke_s, 50) if revoke_s else None,
        "revoke_to_long_poll_s_max": max(revoke_s) if revoke_s else None,
        "query_dataset_events": ingested + loaded.events,
    }
    for name, values in queries.items():
        figures[f"list_{name}_p50_ms"] = round(values["p50_ms"], 1)
        figures[f"list_{name}_p95_ms"] = round(values["p95_ms"], 1)
    report("fleet_scale", figures, dataset={
        "name": f"simulated fleet, {opts.cabinets} cabinets, "
                f"{(ingested + loaded.events) / 1e6:g} M events",
        "cabinets": opts.cabinets, "sites": opts.sites,
        "ingest": {"events_per_cabinet": opts.per_cabinet, "batch": BATCH,
                   "checkpoint_every": CHECKPOINT_EVERY, "concurrency": opts.concurrency,
                   "hub_processes": opts.hubs, "loan_records": records,
                   "generation_s": round(generated_s, 1),
                   "verified": "every event's SHA-256, link and signed checkpoint"},
        "queries": {"events": ingested + loaded.events,
                    "loaded_in_postgresql": loaded.events,
                    "loan_records": loaded.loan_records + records, "alarms": loaded.alarms,
                    "alarm_records": loaded.alarm_records,
                    "report_records": loaded.report_records,
                    "load_s": round(loaded.seconds), "database_gb":
                        round(loaded.database_bytes / 1e9, 1),
                    "hashes": "the loaded rows carry MD5-made stand-in hashes that link "
                              "but are not SHA-256 over the row (the plans never read them)",
                    "samples_per_query": LIST_SAMPLES, "through": "HTTP, one hub process"},
        "postgresql": PG_OPTIONS + " -c fsync=off (throw-away cluster)"})


if __name__ == "__main__":
    main(sys.argv[1:])
