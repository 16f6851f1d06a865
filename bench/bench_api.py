"""Admin API on the benchmark dataset (1M events, 10,000 people, 2,000 keys, 50,000 loans):
p50/p95 of the five main queries, and requests per second of the open-loans query with
concurrent clients over a real socket to a running uvicorn server."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import httpx
import uvicorn
from common import describe_database, percentile, report
from dataset import CABINET, Sizes, dataset, settings_for

from api.app import create_admin_app
from kiosk.runtime import Runtime

PASSWORD = "bench-password-1234"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    sizes = Sizes()
    folder, _ = dataset(sizes)
    env = {**os.environ, "KIOSK_DATA_DIR": str(folder), "KIOSK_CABINET_ID": CABINET,
           "KIOSK_DATABASE_URL": ""}
    subprocess.run([sys.executable, "-m", "kiosk", "admin", "create", "bench", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, env=env, capture_output=True)
    runtime = Runtime.open(settings_for(folder))
    port = _port()
    server = uvicorn.Server(uvicorn.Config(create_admin_app(runtime), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}/api/v1"
    while not server.started:
        time.sleep(0.05)
    with httpx.Client(base_url=base, timeout=30) as client:
        login = client.post("/auth/login", json={"username": "bench", "password": PASSWORD})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        queries = {
            "open_loans": "/loans?state=open&limit=50",
            "overdue_loans": "/loans?overdue=true&limit=50",
            "events_latest_page": "/events?limit=100",
            "events_by_type": "/events?type=access.denied&limit=100",
            "people_page": "/people?limit=50&offset=5000",
        }
        figures: dict[str, object] = {"events": sizes.events, "people": sizes.people,
                                      "keys": sizes.keys, "loans": sizes.loans}
        for name, path in queries.items():
            times = []
            for _ in range(50):
                t0 = time.perf_counter()
                r = client.get(path, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            figures[f"{name}_ms_p50"] = statistics.median(times)
            figures[f"{name}_ms_p95"] = percentile(times, 95)

        def hammer(n: int) -> int:
            with httpx.Client(base_url=base, timeout=30) as c:
                for _ in range(n):
                    c.get(queries["open_loans"], headers=headers).raise_for_status()
            return n

        clients, each = 8, 40
        t0 = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            done = sum(pool.map(hammer, [each] * clients))
        figures["open_loans_rps_8_clients"] = done / (time.perf_counter() - t0)
    server.should_exit = True
    thread.join(timeout=10)
    measured_on = describe_database(runtime.engine, f"bench dataset {sizes.name}")
    runtime.close()
    report("admin_api", figures, dataset=measured_on)


if __name__ == "__main__":
    main()
