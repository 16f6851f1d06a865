"""Audit log: append latency (durable, synchronous=FULL) and full-chain verify time.

Prints a table and writes bench/results/audit.json. Sizes via BENCH_AUDIT_EVENTS.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import describe_database, report

from kiosk.audit import NewEvent
from kiosk.audit.verify import verify_log
from kiosk.config import Settings
from kiosk.runtime import Runtime


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
        measured_on = describe_database(rt.engine, f"empty database, {count} appended events")
        rt.close()
    latencies.sort()
    report("audit", {
        "events": count,
        "append_ms_p50": statistics.median(latencies),
        "append_ms_p99": latencies[int(len(latencies) * 0.99) - 1],
        "append_ms_max": latencies[-1],
        "verify_s": verify_s,
        "verify_events_per_s": count / verify_s,
        "verified_ok": result.ok,
    }, dataset=measured_on)


if __name__ == "__main__":
    main()
