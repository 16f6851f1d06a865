"""The README's performance table is made from bench/results by bench/readme_table.py.

The figures a buyer reads must be the ones a bench wrote, with the commit, machine and
dataset they were measured on; a table edited by hand, or left behind by a newer run, fails
here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import readme_table  # bench/ is scripts, not a package: on pytest's pythonpath

ROOT = Path(__file__).resolve().parent.parent


def test_readme_table_matches_the_committed_results() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "readme_table.py"), "--check"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_table_shows_each_figure_with_where_it_was_measured(tmp_path: Path) -> None:
    record = {
        "bench": "verify", "commit": "abc123def456", "machine": "x86_64 test (2 cores)",
        "measured_at": "2026-12-05T08:00:00+00:00", "load_average": [0.5, 0.4, 0.3],
        "dataset": {"name": "bench dataset", "events": 1_000_000, "people": 10_000},
        "figures": {"events": 1_000_000, "verify_s": 4.25, "verify_events_per_s": 235294.1},
    }
    (tmp_path / "verify.json").write_text(json.dumps(record), encoding="utf-8")
    text = readme_table.table(readme_table.load(tmp_path))
    assert "| `kiosk audit verify` of the whole log | 4.2 s (1,000,000 events, 235,294 events/s)" in text
    assert "commit abc123def456, bench dataset (1,000,000 events, 10,000 people)" in text
    assert "load average 0.5 0.4 0.3" in text
    # a bench that has not run says so rather than keeping an old number
    assert "not measured (run `BENCH_ONLY=tap make bench`)" in text


def test_rewrite_keeps_everything_outside_the_markers() -> None:
    readme = f"before\n{readme_table.START}\nold table\n{readme_table.END}\nafter\n"
    new = readme_table.rewrite(readme, "| new |")
    assert new == f"before\n{readme_table.START}\n| new |\n{readme_table.END}\nafter\n"
