"""Run every benchmark in bench/ and print where the figures went.

``BENCH_ONLY=daemon,tap`` runs only the benches whose name (``bench_<name>.py``) is listed,
so one long run (``BENCH_DRAWS=10000 BENCH_ONLY=daemon make bench``) need not repeat the
others. Each bench reads its own size knobs (BENCH_DRAWS, BENCH_TAPS, ...).
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).parent


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


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    for script in selected(os.environ.get("BENCH_ONLY", "")):
        print(f"== {script.name}", flush=True)
        runpy.run_path(str(script), run_name="__main__")
