"""A hand-edited row that is not even well-formed is named, never a traceback (issue 16 item 11).

SQLite stores whatever is typed into a cell, so a forger (or a careless repair) can leave a
time that is no time or a sequence number that is no whole number. ``kiosk audit verify``
must name the row and the problem and exit 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_forge import fill, sql

from kiosk.audit.verify import VerifyResult, verify_log
from kiosk.config import Settings
from kiosk.runtime import Runtime

CAB = "cab-test"


@pytest.fixture
def sqlite_rt(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime.open(Settings(data_dir=tmp_path / "var", database_url="", cabinet_id=CAB))
    yield runtime
    runtime.close()


def _verify(rt: Runtime) -> VerifyResult:
    return verify_log(rt.engine, cabinet_id=CAB, public_key=rt.device_key.public,
                      checkpoint_every=256)


def _cli(rt: Runtime) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KIOSK_DATA_DIR": str(rt.settings.data_dir), "KIOSK_DATABASE_URL": "",
           "KIOSK_CABINET_ID": CAB}
    return subprocess.run([sys.executable, "-m", "kiosk", "audit", "verify"], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("bad_at", ["not a time", "2026-13-45 25:61:00.000000", "", "2026-02-30 10:00:00.000000"])
def test_malformed_time_names_the_row(sqlite_rt: Runtime, bad_at: str) -> None:
    fill(sqlite_rt, 6)
    sql(sqlite_rt, "UPDATE events SET at = :a WHERE seq = 4", a=bad_at)
    result = _verify(sqlite_rt)
    assert [str(p) for p in result.problems] == [
        f"seq 4: stored time {bad_at!r} is not a valid time: the row was edited"
    ]


def test_time_of_another_type_names_the_row(sqlite_rt: Runtime) -> None:
    fill(sqlite_rt, 6)
    sql(sqlite_rt, "UPDATE events SET at = 20260101 WHERE seq = 2")
    result = _verify(sqlite_rt)
    assert result.first_bad_seq == 2
    assert "stored time 20260101 is not a valid time" in result.problems[0].what


@pytest.mark.parametrize("bad_seq", ["'four'", "4.5", "x'04'"])
def test_seq_that_is_not_a_whole_number_names_the_row(sqlite_rt: Runtime, bad_seq: str) -> None:
    fill(sqlite_rt, 6)
    sql(sqlite_rt, f"UPDATE events SET seq = {bad_seq} WHERE seq = 4")
    result = _verify(sqlite_rt)
    assert result.first_bad_seq == 4
    whats = [p.what for p in result.problems]
    assert any("which is not a whole number" in w for w in whats), whats
    assert any("row(s) 4 missing" in w for w in whats), whats


def test_cells_of_the_wrong_type_are_found_to_differ(sqlite_rt: Runtime) -> None:
    fill(sqlite_rt, 6)
    sql(sqlite_rt, "UPDATE events SET slot = 'three', actors = 7 WHERE seq = 3")
    sql(sqlite_rt, "UPDATE events SET payload = x'00ff' WHERE seq = 5")
    result = _verify(sqlite_rt)
    assert [p.seq for p in result.problems] == [3, 5]
    assert "content does not match its hash" in result.problems[0].what
    assert "cannot be read" in result.problems[1].what


def test_malformed_checkpoint_time_is_named(sqlite_rt: Runtime) -> None:
    fill(sqlite_rt, 3)
    sqlite_rt.audit.sign_head()
    sql(sqlite_rt, "UPDATE checkpoints SET signed_at = 'yesterday'")
    result = _verify(sqlite_rt)
    assert [str(p) for p in result.problems] == [
        "seq 3: checkpoint time 'yesterday' is not a valid time: it was edited"
    ]


def test_verify_command_names_malformed_rows_without_a_traceback(sqlite_rt: Runtime) -> None:
    fill(sqlite_rt, 6)
    sql(sqlite_rt, "UPDATE events SET at = 'garbage' WHERE seq = 2")
    sql(sqlite_rt, "UPDATE events SET seq = 'five' WHERE seq = 5")
    out = _cli(sqlite_rt)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert "FAILED: first bad sequence number 2" in out.stderr
    assert "seq 2: stored time 'garbage' is not a valid time" in out.stderr
    assert "seq 'five', which is not a whole number" in out.stderr
