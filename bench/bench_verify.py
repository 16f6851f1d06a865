"""`kiosk audit verify` on the benchmark dataset (1,000,000 events by default), as the
operator runs it: a separate process, timed from spawn to exit, on SQLite and PostgreSQL.

The SQLite dataset is built once by ``bench/dataset.py`` (and reused); for PostgreSQL a
private server is started (``tests/pg_server.py``) and the dataset's log (events,
checkpoints, head) copied into it. Besides the wall time, the CPU time of the verifier and
its worker processes is recorded, and the load average at the start: on a machine shared
with other work the wall time is pessimistic, the CPU time much less so.

Figures go to ``bench/results/verify.json`` (SQLite) and ``verify_postgres.json``, each
with the commit, the machine and the dataset size. Backends: ``BENCH_VERIFY_BACKENDS``
(default ``sqlite,postgres``; PostgreSQL only where its server binaries are installed).
"""

from __future__ import annotations

import glob
import os
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypedDict

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from common import describe_database, report
from dataset import CABINET, Sizes, dataset, settings_for

from kiosk.config import Settings
from kiosk.runtime import Runtime

HERE = Path(__file__).parent
COPY_BATCH = 50_000


class VerifyFigures(TypedDict):
    """One ``kiosk audit verify`` run: wall and CPU seconds, the load it started under, its
    output lines."""

    verify_s: float
    verify_cpu_s: float
    load_avg_1min_at_start: float
    output: list[str]


def run_verify(env: dict[str, str]) -> VerifyFigures:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "kiosk", "audit", "verify"],
                         env={**os.environ, **env}, capture_output=True, text=True)
    took = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"verify failed ({out.returncode}): {out.stdout}{out.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"verify_s": took, "verify_cpu_s": cpu, "load_avg_1min_at_start": load,
            "output": out.stdout.strip().splitlines()}


@contextmanager
def postgres_copy(folder: Path) -> Iterator[str]:
    """A private PostgreSQL server holding a copy of the dataset's audit log."""
    from tests import pg_server

    with pg_server.postgres_server() as url:
        runtime = Runtime.open(Settings(data_dir=folder, cabinet_id=CABINET, database_url=url))
        source = sqlite3.connect(folder / "kiosk.db")
        raw = runtime.engine.raw_connection()
        try:
            cur = raw.cursor()
            for table, columns in (
                ("events", "cabinet_id, seq, at, type, actors, slot, key_number, decision, "
                           "rules, payload, prev_hash, hash"),
                ("checkpoints", "cabinet_id, seq, head_hash, signed_at, key_id, signature"),
                ("audit_heads", "cabinet_id, seq, hash"),
            ):
                cur.execute("SET TIME ZONE 'UTC'")  # the stored texts are UTC
                cur.execute(f"DELETE FROM {table} WHERE cabinet_id = %s", [CABINET])
                rows = source.execute(f"SELECT {columns} FROM {table} WHERE cabinet_id = ?",
                                      [CABINET])
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    while batch := rows.fetchmany(COPY_BATCH):
                        for row in batch:
                            copy.write_row(row)
            raw.commit()
            cur.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
            source.close()
            runtime.close()
        yield url


def main() -> None:
    sizes = Sizes()
    folder, generated = dataset(sizes)
    have_pg = bool(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    default = "sqlite,postgres" if have_pg else "sqlite"
    backends = [b.strip() for b in os.environ.get("BENCH_VERIFY_BACKENDS", default).split(",")]
    runtime = Runtime.open(settings_for(folder))
    measured_on = describe_database(runtime.engine, f"bench dataset {sizes.name}")
    runtime.close()
    common = {"events": sizes.events,
              "dataset_generation_s": generated if generated is not None else "cached"}
    env = {"KIOSK_DATA_DIR": str(folder), "KIOSK_CABINET_ID": CABINET}
    if "sqlite" in backends:
        figures = run_verify({**env, "KIOSK_DATABASE_URL": ""})
        report("verify", {**common, "backend": "sqlite", **figures,
                          "verify_events_per_s": sizes.events / float(figures["verify_s"])},
               dataset=measured_on)
    if "postgres" in backends:
        t0 = time.perf_counter()
        with postgres_copy(folder) as url:
            copied = time.perf_counter() - t0
            figures = run_verify({**env, "KIOSK_DATABASE_URL": url})
        report("verify_postgres", {**common, "backend": "postgresql", "copy_s": copied,
                                   **figures,
                                   "verify_events_per_s": sizes.events / float(figures["verify_s"])},
               dataset=measured_on)


if __name__ == "__main__":
    main()
