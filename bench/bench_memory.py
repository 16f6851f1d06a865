"""Memory (issue 15, item 4): the idle daemon's RSS, its growth over many draws, and what each
large import costs.

* Idle daemon: ``kiosk run`` on the demo tower (simulated hardware, both listeners, the
  scheduler), RSS once the screen answers and start-up work has settled (aim ≤ 85 MB).
* Growth: BENCH_MEMORY_DRAWS (default 10,000) draws, each followed by its return, through
  the cabinet core with the simulated tower (badge, choice, take, fob, badge, put back:
  every write, every sensor scan), in this process; RSS after a warm-up of 200 cycles and
  after the run, both after a full garbage collection (aim: growth ≤ 2 MB). Driven in
  process because each cycle through the daemon's HTTP surface waits for two sensor scans
  (``bench_daemon.py`` does that for smaller counts).
* Imports: each module imported alone in a fresh interpreter: RSS before and after, and
  the wall time of the import (what ``python -X importtime`` adds up). The README's table of
  import costs is made from this result (``readme_table.py``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import httpx
from bench_daemon import WHOLE_WEEK, _port, _wait
from common import describe_database, report, rss_mb
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.config import Settings
from kiosk.demo import load_demo
from kiosk.runtime import Runtime
from kiosk.store.models import Key, KeyGroup

ROOT = Path(__file__).resolve().parent.parent
MODULES = [
    ("sqlalchemy.orm", "database (SQLAlchemy ORM)"),
    ("alembic.command", "migrations (Alembic)"),
    ("pydantic", "settings and API models (pydantic)"),
    ("fastapi", "admin and kiosk API (FastAPI)"),
    ("uvicorn", "HTTP server (uvicorn)"),
    ("jinja2", "console templates (Jinja2)"),
    ("httpx", "notification HTTP client (httpx)"),
    ("cryptography.hazmat.primitives.asymmetric.ed25519", "device key (cryptography)"),
    ("argon2", "passwords (argon2-cffi)"),
    ("prometheus_client", "metrics (prometheus-client)"),
    ("psycopg", "PostgreSQL driver (psycopg)"),
    ("pymodbus.client", "Modbus lock boards (pymodbus)"),
    ("nfc", "USB NFC readers (nfcpy)"),
    ("gpiozero", "GPIO (gpiozero)"),
    ("reportlab.pdfgen.canvas", "PDF reports (reportlab), imported only when one is made"),
    ("openpyxl", "XLSX import/export (openpyxl), imported only when one is read or made"),
    ("kiosk.daemon", "everything the daemon imports at start"),
]
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
    for module, what in MODULES:
        out = subprocess.run([sys.executable, "-c", CHILD, module], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            costs[module] = {"what": what, "error": out.stderr.strip().splitlines()[-1:]}
            continue
        got = json.loads(out.stdout)
        costs[module] = {"what": what, "rss_mb": round(got["after"] - got["before"], 1),
                         "import_ms": round(got["s"] * 1000, 1)}
    return costs


def idle_daemon_rss() -> tuple[float, float]:
    """(RSS once idle, cold start to the screen answering) of ``kiosk run``."""
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime.open(Settings(data_dir=Path(tmp), cabinet_id="cab-01"))
        load_demo(runtime)
        runtime.close()
        admin, kiosk = _port(), _port()
        env = {**os.environ, **WHOLE_WEEK, "KIOSK_DATA_DIR": tmp,
               "KIOSK_ADMIN_PORT": str(admin), "KIOSK_KIOSK_PORT": str(kiosk),
               "KIOSK_DATABASE_URL": "", "KIOSK_LOG_LEVEL": "WARNING"}
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "kiosk", "run"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with httpx.Client(timeout=5) as client:
                _wait(client, f"http://127.0.0.1:{kiosk}/kiosk/api/screen")
            started = time.perf_counter() - t0
            time.sleep(3)  # start-up work (scheduler catch-up, first scans) settles
            return rss_mb(proc.pid), started
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


async def draw_growth(draws: int, warm_up: int = 200) -> tuple[dict[str, Any], dict[str, Any]]:
    """RSS growth of the cabinet over ``draws`` draw-and-return cycles, in this process."""
    sys.path.insert(0, str(ROOT / "tests" / "kiosk"))
    from rig import close_rig, make_rig  # the test rig: demo tower, simulated hardware

    with tempfile.TemporaryDirectory() as tmp:
        rig = await make_rig(Path(tmp))
        badges = [rig.card_of(dept="ENG", index=i)[0] for i in range(2)]
        with Session(rig.runtime.engine) as s:
            numbers = list(s.scalars(select(Key.key_number).join(KeyGroup)
                                     .where(KeyGroup.code == "UNIT", Key.fob_tag.is_not(None))
                                     .order_by(Key.key_number).limit(20)))
        keys = [(number, *rig.key(number)) for number in numbers]

        async def cycle(i: int) -> None:
            badge = badges[i % 2]
            number, slot, fob = keys[i % len(keys)]  # 20 slots in turn: no coil overheats
            await rig.cabinet.tap(badge)
            await rig.cabinet.choose_draw([number], "repair")
            await rig.take(slot)
            await rig.cabinet.tap(fob)
            await rig.cabinet.tap(badge)
            await rig.put_back(fob, slot)
            state = rig.cabinet.screen()
            if state["state"] != "idle" or (state["message"] or {}).get("code") != "returned":
                raise RuntimeError(f"cycle {i} did not end with the return: {state}")

        for i in range(warm_up):
            await cycle(i)
        gc.collect()
        before = rss_mb()
        t0 = time.perf_counter()
        for i in range(draws):
            await cycle(warm_up + i)
        took = time.perf_counter() - t0
        gc.collect()
        after = rss_mb()
        loans_open = len(rig.open_loans())
        dataset = describe_database(rig.runtime.engine, "demo tower")
        await close_rig(rig)
    if loans_open:
        raise RuntimeError(f"{loans_open} loans left open: the returns were not recorded")
    return {"draws_and_returns": draws, "rss_mb_after_warm_up": before,
            "rss_mb_after_draws": after, "rss_growth_mb": after - before,
            "cycle_ms_mean": took / max(1, draws) * 1000}, dataset


def main() -> None:
    draws = int(os.environ.get("BENCH_MEMORY_DRAWS", "10000"))
    idle, started = idle_daemon_rss()
    growth, dataset = asyncio.run(draw_growth(draws))
    costs = import_costs()
    report("memory", {"daemon_rss_idle_mb": idle, "daemon_cold_start_s": started, **growth,
                      "imports": costs}, dataset=dataset)


if __name__ == "__main__":
    main()
