"""Memory (issue 15, item 4): the idle daemon's RSS, its growth over many draws, and what each
large import costs.

One daemon, ``kiosk run`` on the demo tower (simulated hardware, both listeners, the
scheduler, the K9 catch-up report it makes at start), started by this bench as a process of
its own:

* Idle: its RSS once the screen answers and start-up work has settled (aim ≤ 85 MB), and
  again after the admin listener's first request, which loads the admin API
  (``kiosk.daemon.AdminOnFirstRequest``).
* Growth: then BENCH_MEMORY_DRAWS (default 10,000) draws, each followed by its return,
  after BENCH_MEMORY_WARM_UP (default 200) warm-up cycles; its RSS after the warm-up, every
  tenth of the run, and at the end (aim: growth ≤ 2 MB). A cycle is what a person does, through
  the kiosk listener's HTTP surface and the simulated sensors (``bench_daemon.Driver``): badge
  on the simulated MFRC522 (``/sim/tap``), the choice (``POST /kiosk/api/draw``: policy,
  durable intent, the Kerong unlock), the key pulled (``/sim/take``) and seen gone by the
  next sensor scan (loan recorded), the key's fob then the borrower's badge (K4: who returns
  it), the key put back (``/sim/insert``) and seen back (loan closed). Two engineers take
  turns over 20 slots. The daemon scans every BENCH_MEMORY_SCAN_S (default 0.02 s; the
  shipped default is 0.1 s), and the simulated person pushes a door shut
  BENCH_MEMORY_DOOR_SWING_S (default 0.3 s, the daemon's own simulated person) after it
  sprang open (0.05 s was tried: on a loaded machine the
  driver's read-back after an unlock can come later than that, finds the latch shut again,
  and the cabinet rightly records the unlock as failed and the key's arrival as unexpected,
  K4, which this bench then reports as a loan left open), and the simulated Kerong bus runs at BENCH_MEMORY_SIM_BAUD (default
  115200; a real bus and the shipped simulator run at 19200); every other step is the shipped
  code path. What each step of a cycle cost is in ``cycle_phase_ms_mean``: what is left is
  mostly the sensor scan itself (13 Kerong boards: about 90 ms at 19200 baud), which a cycle
  waits for three times (key seen gone, key seen back, the unlock waiting for the bus); a
  faster wire shortens what a cycle waits, not what it does. Its data folder is on /dev/shm when there is one, so a
  run of hours measures memory and not the disk's fsync (RSS does not count the page cache).
  The loans table is checked at the end: one loan per draw, every one closed.
* Imports: each module imported alone in a fresh interpreter: RSS before and after, and
  the wall time of the import (what ``python -X importtime`` adds up). The README's table of
  import costs is made from this result (``readme_table.py``).

``bench/run_all.py --quick`` runs 10 warm-up and 20 measured cycles (a check that the bench
works, not a growth figure).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import httpx
from bench_daemon import WHOLE_WEEK, Driver, _port, _wait
from common import describe_database, loans, report, rss_mb
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.config import Settings
from kiosk.demo import load_demo
from kiosk.runtime import Runtime
from kiosk.store.models import Department, Key, Person, Slot

ROOT = Path(__file__).resolve().parent.parent
AT_START = "at start"
MODULES = [
    ("sqlalchemy.orm", "database (SQLAlchemy ORM)", AT_START),
    ("alembic.command", "migrations (Alembic)", "only when the schema is behind its head"),
    ("pydantic", "settings and API models (pydantic)", AT_START),
    ("fastapi", "admin API (FastAPI)", "by the admin listener's first request"),
    ("starlette.applications", "the kiosk screen's listener, the middlewares (Starlette)",
     AT_START),
    ("uvicorn", "HTTP server (uvicorn)", AT_START),
    ("api.app", "the admin API: its routes and models, prometheus-client",
     "by the admin listener's first request"),
    ("jinja2", "console templates (Jinja2)", "by the console's first request"),
    ("httpx", "notification HTTP client (httpx)", "only to deliver a notification"),
    ("nacl.signing", "device key (PyNaCl, libsodium)", AT_START),
    ("cryptography.x509", "TLS certificates (cryptography)",
     "only to make the admin API's certificate or check a site's own"),
    ("argon2", "passwords and PINs (argon2-cffi)", AT_START),
    ("prometheus_client", "metrics (prometheus-client)", "with the admin API"),
    ("psycopg", "PostgreSQL driver (psycopg)", "only on PostgreSQL"),
    ("pymodbus.client", "Modbus lock boards (pymodbus)", "only with Modbus lock boards"),
    ("nfc", "USB NFC readers (nfcpy)", "only with a USB NFC reader"),
    ("gpiozero", "GPIO (gpiozero)", AT_START),
    ("reportlab.pdfgen.canvas", "PDF reports (reportlab)",
     "only in the child process that makes a PDF"),
    ("openpyxl", "XLSX import/export (openpyxl)", "only when a spreadsheet is read or made"),
    ("kiosk.daemon", "everything the daemon imports at start", AT_START),
]
"""(module, what it is for, when the daemon loads it). ``tests/test_daemon_memory.py`` checks
the ones an idle ``kiosk run`` on SQLite with simulated hardware must not hold."""
CHILD = """
import importlib, json, sys, time
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
before = rss(); t0 = time.perf_counter()
importlib.import_module(sys.argv[1])
print(json.dumps({"before": before, "after": rss(), "s": time.perf_counter() - t0}))
"""


def import_costs() -> dict[str, dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    costs = {}
    for module, what, when in MODULES:
        out = subprocess.run([sys.executable, "-c", CHILD, module], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            costs[module] = {"what": what, "daemon_loads": when,
                             "error": out.stderr.strip().splitlines()[-1:]}
            continue
        got = json.loads(out.stdout)
        costs[module] = {"what": what, "daemon_loads": when, "rss_mb": round(got["after"] - got["before"], 1),
                         "import_ms": round(got["s"] * 1000, 1)}
    return costs


PASSWORD = "bench-memory-password-1"


def _sqlite_held(client: httpx.Client, api: str) -> Callable[[], float]:
    """A reader of the daemon's ``kiosk_sqlite_memory_bytes`` (MB), through the admin API as
    a Prometheus server reads it: what SQLite's page caches hold, inside the RSS measured.
    It signs in again when its 15-minute access token has run out."""
    headers: dict[str, str] = {}

    def held() -> float:
        for _ in range(2):
            got = client.get(f"{api}/metrics", headers=headers)
            if got.status_code != 401:
                break
            login = client.post(f"{api}/auth/login",
                                json={"username": "bench", "password": PASSWORD})
            headers["Authorization"] = f"Bearer {login.raise_for_status().json()['access_token']}"
        text = got.raise_for_status().text
        line = next(x for x in text.splitlines() if x.startswith("kiosk_sqlite_memory_bytes "))
        return float(line.split()[1]) / 2**20
    return held


def _people_and_keys(runtime: Runtime) -> tuple[list[str], list[tuple[str, str, int]]]:
    """Two engineers' badges and 20 unit keys (number, fob, home slot) they may draw."""
    with Session(runtime.engine) as s:
        people = s.scalars(select(Person).join(Department).where(Department.code == "ENG")
                           .order_by(Person.staff_no).limit(2)).all()
        badges = [p.cards[0].uid for p in people]
        rows = [(number, fob, slot) for number, fob, slot in s.execute(
            select(Key.key_number, Key.fob_tag, Slot.number)
            .join(Slot, Key.home_slot_id == Slot.id)
            .where(Key.key_number.like("U%"), Key.fob_tag.is_not(None))
            .order_by(Slot.number).limit(20)) if fob]
    if len(badges) != 2 or len(rows) != 20:
        raise RuntimeError("the demo tower lacks two engineers or 20 unit keys with fobs")
    return badges, rows



PHASES = ("badge_to_choosing", "draw_request", "take_to_loan_recorded",
          "fob_to_returner_asked", "badge_to_returning", "insert_to_loan_closed")


def _cycle(person: Driver, badge: str, key: tuple[str, str, int]) -> list[float]:
    """One draw and its return, as a person does them (see the module docstring); the
    seconds each step took, in ``PHASES`` order."""
    number, fob, slot = key
    t = [time.perf_counter()]
    person.tap(badge, "choosing")
    t.append(time.perf_counter())
    drawn = person.client.post(f"{person.base}/kiosk/api/draw",
                               json={"keys": [number], "reason_code": "repair"})
    if drawn.is_error:  # say what the cabinet refused, not only the status
        raise RuntimeError(f"draw of {number} refused: {drawn.status_code} {drawn.text}")
    t.append(time.perf_counter())
    person.post("take", slot=slot)
    ended = person.until("idle")  # the next scan saw the key leave: the loan is recorded
    t.append(time.perf_counter())
    said = (ended.get("message") or {}).get("code")
    if said != "drawn":
        raise RuntimeError(f"the draw of {number} ended without 'drawn': {ended}")
    person.tap(fob, "await_returner")  # K4: whose badge returns it?
    t.append(time.perf_counter())
    person.tap(badge, "returning")
    t.append(time.perf_counter())
    person.insert(fob, slot)
    ended = person.until("idle")  # the next scan saw it back: the loan is closed
    t.append(time.perf_counter())
    said = (ended.get("message") or {}).get("code")
    if said != "returned":  # the visit ended another way: say how, not later "key is out"
        raise RuntimeError(f"the return of {number} ended without 'returned': {ended}")
    return [b - a for a, b in itertools.pairwise(t)]


def daemon_memory(draws: int, warm_up: int, scan_s: float, door_swing_s: float,
                  baud: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Idle RSS, then RSS over ``warm_up`` + ``draws`` draw-and-return cycles, of one daemon."""
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        data = Path(tmp)
        runtime = Runtime.open(Settings(data_dir=data, cabinet_id="cab-01"))
        load_demo(runtime)
        badges, keys = _people_and_keys(runtime)
        loans_before = loans(runtime.engine)
        runtime.close()
        subprocess.run([sys.executable, "-m", "kiosk", "admin", "create", "bench",
                        "--password-stdin"], input=PASSWORD + "\n", text=True, check=True,
                       env={**os.environ, "KIOSK_DATA_DIR": tmp, "KIOSK_CABINET_ID": "cab-01",
                            "KIOSK_DATABASE_URL": ""}, capture_output=True)
        admin, kiosk = _port(), _port()
        env = {**os.environ, **WHOLE_WEEK, "KIOSK_DATA_DIR": tmp,
               "KIOSK_ADMIN_PORT": str(admin), "KIOSK_KIOSK_PORT": str(kiosk),
               "KIOSK_DATABASE_URL": "", "KIOSK_LOG_LEVEL": "WARNING",
               "KIOSK_CABINET__SCAN_INTERVAL_S": str(scan_s),
               "KIOSK_SIM_DOOR_SWING_S": str(door_swing_s), "KIOSK_SIM_BAUD": str(baud)}
        base = f"http://127.0.0.1:{kiosk}"
        every = max(1, draws // 10)
        by_draws: dict[str, float] = {}
        sqlite_by_draws: dict[str, float] = {}
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "kiosk", "run"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with httpx.Client(timeout=10) as client:
                _wait(client, f"{base}/kiosk/api/screen")
                started = time.perf_counter() - t0
                time.sleep(3)  # start-up work (scheduler catch-up, first scans) settles
                idle = rss_mb(proc.pid)
                # a monitor's liveness poll does not make the admin API (api.liveness); its
                # first other request does: what a cabinet holds once an administrator used it
                client.get(f"http://127.0.0.1:{admin}/api/v1/health").raise_for_status()
                assert client.get(f"http://127.0.0.1:{admin}/api/v1/people").status_code == 401
                time.sleep(1)
                after_admin = rss_mb(proc.pid)
                sqlite_held = _sqlite_held(client, f"http://127.0.0.1:{admin}/api/v1")
                sqlite_held()  # signed in, the metrics route loaded: before the warm-up
                person = Driver(client, base)
                for i in range(warm_up):
                    _cycle(person, badges[i % 2], keys[i % len(keys)])
                after_warm_up = rss_mb(proc.pid)
                by_draws["0"] = after_warm_up
                sqlite_by_draws["0"] = sqlite_held()
                t_draws = time.perf_counter()
                spent = [0.0] * len(PHASES)
                for i in range(draws):
                    n = warm_up + i
                    for p, took_s in enumerate(_cycle(person, badges[n % 2], keys[n % len(keys)])):
                        spent[p] += took_s
                    if (i + 1) % every == 0:
                        by_draws[str(i + 1)] = rss_mb(proc.pid)
                        sqlite_by_draws[str(i + 1)] = sqlite_held()
                        print(f"memory: {i + 1:,} draws, daemon RSS {by_draws[str(i + 1)]:.2f} MB, "
                              f"SQLite holds {sqlite_by_draws[str(i + 1)]:.2f} MB", flush=True)
                took = time.perf_counter() - t_draws
                after = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        runtime = Runtime.open(Settings(data_dir=data, cabinet_id="cab-01"))
        loans_after = loans(runtime.engine)
        dataset = describe_database(runtime.engine, "demo tower")
        runtime.close()
    done = warm_up + draws
    if loans_after != (loans_before[0] + done, loans_before[1]):
        raise RuntimeError(f"loans before {loans_before}, after {loans_after}: expected "
                           f"{done} more, all closed")
    return {"daemon_rss_idle_mb": idle, "daemon_rss_after_admin_request_mb": after_admin,
            "daemon_cold_start_s": started,
            "draws_and_returns": draws, "warm_up_cycles": warm_up,
            "scan_interval_s": scan_s, "rss_mb_after_warm_up": after_warm_up,
            "rss_mb_after_draws": after, "rss_growth_mb": after - after_warm_up,
            "rss_mb_by_draws": {k: round(v, 2) for k, v in by_draws.items()},
            "sqlite_mb_by_draws": {k: round(v, 2) for k, v in sqlite_by_draws.items()},
            "sqlite_growth_mb": sqlite_by_draws[str(draws)] - sqlite_by_draws["0"]
            if str(draws) in sqlite_by_draws else None,
            "cycle_ms_mean": took / max(1, draws) * 1000,
            "cycle_phase_ms_mean": {name: round(v / max(1, draws) * 1000, 1)
                                    for name, v in zip(PHASES, spent, strict=True)},
            "door_swing_s": door_swing_s, "sim_bus_baud": baud, "retaps": person.retaps,
            "loans_recorded_and_closed": loans_after[0] - loans_before[0]}, dataset


def main() -> None:
    draws = int(os.environ.get("BENCH_MEMORY_DRAWS", "10000"))
    warm_up = int(os.environ.get("BENCH_MEMORY_WARM_UP", "200"))
    scan_s = float(os.environ.get("BENCH_MEMORY_SCAN_S", "0.02"))
    door_swing_s = float(os.environ.get("BENCH_MEMORY_DOOR_SWING_S", "0.3"))
    baud = int(os.environ.get("BENCH_MEMORY_SIM_BAUD", "115200"))
    figures, dataset = daemon_memory(draws, warm_up, scan_s, door_swing_s, baud)
    costs = import_costs()
    report("memory", {**figures, "imports": costs}, dataset=dataset)


if __name__ == "__main__":
    main()
