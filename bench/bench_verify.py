"""`kiosk audit verify` on the benchmark dataset (1,000,000 events by default), as the
operator runs it: a separate process, timed from spawn to exit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import describe_database, report
from dataset import CABINET, Sizes, dataset, settings_for

from kiosk.runtime import Runtime


def main() -> None:
    sizes = Sizes()
    folder, generated = dataset(sizes)
    env = {**os.environ, "KIOSK_DATA_DIR": str(folder), "KIOSK_CABINET_ID": CABINET,
           "KIOSK_DATABASE_URL": ""}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "kiosk", "audit", "verify"], env=env,
                         capture_output=True, text=True)
    took = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"verify failed: {out.stderr}")
    runtime = Runtime.open(settings_for(folder))
    measured_on = describe_database(runtime.engine, f"bench dataset {sizes.name}")
    runtime.close()
    report("verify", {
        "events": sizes.events,
        "dataset_generation_s": generated if generated is not None else "cached",
        "verify_s": took,
        "verify_events_per_s": sizes.events / took,
    }, dataset=measured_on)


if __name__ == "__main__":
    main()
