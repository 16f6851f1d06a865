"""Shared helpers for the benchmarks: percentiles, provenance, dataset sizes, result files.

Every result file says what was measured, on what, and when: the commit (with ``+dirty``
when the tree had uncommitted changes), the machine, the time, and the size of the dataset
the figures were taken on. A figure without those cannot be compared with another, so
``report`` refuses to write one without a dataset description.

``BENCH_RESULTS`` moves the result folder (``make bench-quick`` writes to
``bench/results/quick/`` so a developer's quick loop never overwrites the figures the
README's table is made from).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

HERE = Path(__file__).parent
RESULTS = Path(os.environ.get("BENCH_RESULTS") or HERE / "results")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()} {cpu} ({os.cpu_count()} cores), Python {platform.python_version()}"


def commit() -> str:
    """The commit measured; ``+dirty`` when tracked files differed from it."""
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True,
                             check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{head}+dirty" if dirty else head


def provenance() -> dict[str, Any]:
    return {
        "commit": commit(),
        "machine": machine(),
        "measured_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def describe_database(engine: Engine, name: str) -> dict[str, Any]:
    """The size of the dataset a bench ran on, counted from the database itself."""
    from sqlalchemy.orm import Session

    from kiosk.store.models import Event, Key, Loan, Person, Slot

    with Session(engine) as s:
        counts = {model.__tablename__: s.scalar(select(func.count()).select_from(model))
                  for model in (Person, Key, Slot, Loan, Event)}
    return {"name": name, **counts}


def rss_mb(pid: int | None = None) -> float:
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(name: str, figures: dict[str, Any], *, dataset: dict[str, Any]) -> None:
    """Print a table and write ``<RESULTS>/<name>.json`` with its provenance and dataset."""
    record = {"bench": name, **provenance(), "dataset": dataset, "figures": figures}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(
        json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"-- {name}  (commit {record['commit']}, dataset {dataset.get('name')}, "
          f"load {record['load_average']})")
    width = max((len(k) for k in figures), default=0)
    for key, value in figures.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"  {key:<{width}}  {shown}")
