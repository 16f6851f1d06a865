"""Audit log: append latency (durable, synchronous=FULL) and full-chain verify time.

Prints a table and writes bench/results/audit.json. Sizes via BENCH_AUDIT_EVENTS.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from kiosk.audit import NewEvent
from kiosk.audit.verify import verify_log
from kiosk.config import Settings
from kiosk.runtime import Runtime

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    count = int(os.environ.get("BENCH_AUDIT_EVENTS", "5000"))
    with tempfile.TemporaryDirectory() as tmp:
        rt = Runtime.open(Settings(data_dir=Path(tmp), cabinet_id="bench"))
        latencies = []
        for i in range(count):
            t0 = time.perf_counter()
            rt.audit.append(
                NewEvent(type="key.drawn", actors=["p1"], slot=i % 200 + 1, key_number="U1203",
                         decision="allow", rules=["K3"], payload={"reason": "维修", "i": i})
            )
            latencies.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        result = verify_log(rt.engine, cabinet_id="bench", public_key=rt.device_key.public)
        verify_s = time.perf_counter() - t0
        rt.close()
    latencies.sort()
    figures = {
        "events": count,
        "append_ms_p50": round(statistics.median(latencies), 3),
        "append_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 3),
        "append_ms_max": round(latencies[-1], 3),
        "verify_s": round(verify_s, 3),
        "verify_events_per_s": round(count / verify_s),
        "verified_ok": result.ok,
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
        "python": platform.python_version(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "audit.json").write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    width = max(len(k) for k in figures)
    for k, v in figures.items():
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
