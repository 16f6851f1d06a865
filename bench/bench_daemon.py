"""The daemon as a process: cold start to locks controllable, RSS idle and after N draws.

Cold start is measured on an existing database (the demo tower): from spawning
``kiosk run`` to the kiosk screen answering, which happens only after every lock has been
driven locked, every slot scanned and the records reconciled. Draws go through the same
HTTP surface a person uses: /sim/tap (through the MFRC522 chip simulator), the screen's
draw endpoint, /sim/take, then a fob tap and /sim/insert to return it. BENCH_DRAWS
(default 200: each cycle waits for the simulated sensors, about 1.7 s) sets how many.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import httpx
from common import report, rss_mb
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.config import Settings
from kiosk.demo import load_demo
from kiosk.runtime import Runtime
from kiosk.store.models import Department, Key, Person, Slot


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(client: httpx.Client, url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.01)
    raise RuntimeError(f"{url} never answered")


def _screen(client: httpx.Client, base: str, state: str, since: int | None = None) -> dict:  # type: ignore[type-arg]
    for _ in range(200):
        body = client.get(f"{base}/kiosk/api/screen").json()
        if body["state"] == state:
            return body  # type: ignore[no-any-return]
        time.sleep(0.005)
    raise RuntimeError(f"screen never reached {state}: {body}")


def main() -> None:
    draws = int(os.environ.get("BENCH_DRAWS", "200"))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        runtime = Runtime.open(Settings(data_dir=data, cabinet_id="cab-01"))
        load_demo(runtime)
        with Session(runtime.engine) as s:
            person = s.scalars(select(Person).join(Department).where(Department.code == "ENG")
                               .order_by(Person.staff_no)).first()
            assert person is not None
            uid = person.cards[0].uid
            rows = s.execute(select(Key.key_number, Key.fob_tag, Slot.number)
                             .join(Slot, Key.home_slot_id == Slot.id)
                             .where(Key.key_number.like("U%")).order_by(Slot.number).limit(20)).all()
        runtime.close()
        admin, kiosk = _port(), _port()
        env = {**os.environ, "KIOSK_DATA_DIR": str(data), "KIOSK_ADMIN_PORT": str(admin),
               "KIOSK_KIOSK_PORT": str(kiosk), "KIOSK_DATABASE_URL": "", "KIOSK_LOG_LEVEL": "WARNING"}
        base = f"http://127.0.0.1:{kiosk}"
        client = httpx.Client()
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "kiosk", "run"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(client, f"{base}/kiosk/api/screen")
            cold_start = time.perf_counter() - t0
            time.sleep(2)
            rss_idle = rss_mb(proc.pid)
            t_draws = time.perf_counter()
            for i in range(draws):
                key_number, fob, slot = rows[i % len(rows)]
                client.post(f"{base}/sim/tap", json={"uid": uid})
                _screen(client, base, "choosing")
                r = client.post(f"{base}/kiosk/api/draw",
                                json={"keys": [key_number], "reason_code": "repair"})
                r.raise_for_status()
                client.post(f"{base}/sim/take", json={"slot": slot}).raise_for_status()
                _screen(client, base, "idle")
                time.sleep(0.35)  # badge away: the reader's hold-off before the next read
                client.post(f"{base}/sim/tap", json={"uid": fob})
                _screen(client, base, "returning")
                for _ in range(200):  # the state shows "returning" as the unlock goes out
                    if client.post(f"{base}/sim/insert", json={"fob": fob, "slot": slot}).is_success:
                        break
                    time.sleep(0.005)
                _screen(client, base, "idle")
                time.sleep(0.35)
            draws_s = time.perf_counter() - t_draws
            rss_after = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    report("daemon", {
        "cold_start_to_locks_controllable_s": cold_start,
        "rss_idle_mb": rss_idle,
        "draws_and_returns": draws,
        "rss_after_draws_mb": rss_after,
        "draw_return_cycle_s_mean": draws_s / max(1, draws),
    })


if __name__ == "__main__":
    main()
