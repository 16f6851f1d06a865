"""Run every benchmark in bench/, each in a process of its own, and print where the figures went.

One process per bench, so a figure such as the tap bench's RSS measures that bench and not
the imports and caches the benches before it left behind. ``BENCH_ONLY=daemon,tap`` runs
only the benches whose name (``bench_<name>.py``) is listed, so one long run
(``BENCH_DRAWS=10000 BENCH_ONLY=daemon make bench``) need not repeat the others. Each bench
reads its own size knobs (BENCH_DRAWS, BENCH_TAPS, ...).

``--quick`` (``make bench-quick``) is a developer's loop of under two minutes: small sizes
for every bench, results in ``bench/results/quick/`` so the full figures the README's table
is made from are never overwritten by a quick run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent

QUICK_SIZES = {
    "BENCH_PEOPLE": "1000",
    "BENCH_KEYS": "200",
    "BENCH_EVENTS": "20000",
    "BENCH_LOANS": "2000",
    "BENCH_TAPS": "200",
    "BENCH_ANTENNA": "20",
    "BENCH_DRAWS": "20",
    "BENCH_MEMORY_WARM_UP": "10",      # bench_memory: the daemon's cycles before ...
    "BENCH_MEMORY_DRAWS": "20",        # ... and while its RSS growth is measured
    "BENCH_AUDIT_EVENTS": "1000",
    "BENCH_FLEET_CABINETS": "100",     # bench_fleet_scale: simulated cabinets ...
    "BENCH_FLEET_EVENTS": "100",       # ... and events each
    "BENCH_FLEET_SITES": "10",         # ... in this many sites
    "BENCH_FLEET_QUERY_EVENTS": "200000",  # ... history made in PostgreSQL for the queries
    "BENCH_REVOCATIONS": "5",          # bench_fleet: cards revoked at the hub
    "BENCH_RESULTS": str(HERE / "results" / "quick"),
}
"""Sizes of a quick run; a size already set in the environment wins."""


def selected(only: str) -> list[Path]:
    """The bench scripts to run, in name order; every name in ``only`` must exist."""
    scripts = sorted(HERE.glob("bench_*.py"))
    names = {s.stem.removeprefix("bench_"): s for s in scripts}
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    if not wanted:
        return scripts
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise SystemExit(f"BENCH_ONLY: no bench named {', '.join(unknown)} "
                         f"(have {', '.join(sorted(names))})")
    return [names[n] for n in sorted(set(wanted))]


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    if "--quick" in argv:
        env = {**QUICK_SIZES, **env}
    root = str(HERE.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    failed = []
    for script in selected(env.get("BENCH_ONLY", "")):
        print(f"== {script.name}", flush=True)
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, str(script)], env=env, cwd=root, check=False)
        print(f"== {script.name}: exit {done.returncode}, {time.perf_counter() - t0:.0f} s",
              flush=True)
        if done.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
