"""Verify split over worker processes finds exactly what one process finds (issue 15 item 3).

The chain is cut into seq ranges checked in separate processes; only the links across
range borders are compared by the parent. Each tampering below is tried at the first row,
at rows on and next to the borders and at the last row, and the problems named must be
the same for 1, 2 and 3 processes. No timing here: speed is bench/bench_verify.py's job.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
from audit_forge import edit_and_rechain, edit_and_rehash_row, fill, sql

from kiosk.audit.verify import _handicap, _plan, verify_log
from kiosk.config import AuditSettings, Settings
from kiosk.runtime import Runtime

CAB = "cab-test"
EVENTS = 30


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One log of 30 events, copied for each case (a log per case would be slow)."""
    folder = tmp_path_factory.mktemp("pristine")
    rt = Runtime.open(Settings(data_dir=folder, database_url="", cabinet_id=CAB,
                               audit=AuditSettings(checkpoint_every=4)))
    fill(rt, EVENTS)
    rt.close()
    return folder


def _copy(pristine: Path, tmp_path: Path) -> Runtime:
    folder = tmp_path / "var"
    shutil.copytree(pristine, folder)
    return Runtime.open(Settings(data_dir=folder, database_url="", cabinet_id=CAB,
                                 audit=AuditSettings(checkpoint_every=4)))


def _problems(rt: Runtime, workers: int, keyed: bool) -> list[str]:
    result = verify_log(rt.engine, cabinet_id=CAB, checkpoint_every=4, workers=workers,
                        public_key=rt.device_key.public if keyed else None)
    assert result.checked + len([p for p in result.problems if "beyond" in p.what]) >= 1
    return [str(p) for p in result.problems] + [f"checked {result.checked} last {result.last_seq}"]


def test_ranges_cover_every_seq_once() -> None:
    for head in (1, 2, 3, 10, 30, 1_000_000):
        for parts in (1, 2, 3, 8):
            for handicap in (-(10**9), -5, 0, 5, 10**9):
                specs = _plan(head, parts, handicap)
                assert specs[0].low is None and specs[-1].high is None and specs[0].first
                for left, right in itertools.pairwise(specs):
                    assert left.high == right.low and not right.first
                    assert left.high is not None and 1 < left.high <= head


CASES = {
    "untouched": lambda rt, s: None,
    "edited": lambda rt, s: sql(rt, "UPDATE events SET payload = '{}' WHERE seq = :s", s=s),
    "deleted": lambda rt, s: sql(rt, "DELETE FROM events WHERE seq = :s", s=s),
    "rehashed": lambda rt, s: edit_and_rehash_row(rt, s, '{"i":-1}'),
    "rechained": lambda rt, s: edit_and_rechain(rt, s, '{"i":-1}'),
    "bad time": lambda rt, s: sql(rt, "UPDATE events SET at = 'x' WHERE seq = :s", s=s),
    "bad seq": lambda rt, s: sql(rt, "UPDATE events SET seq = 'x' || :s WHERE seq = :s", s=s),
}


CHECKPOINTS = EVENTS // 4


def _borders() -> tuple[int, ...]:
    """The first and last rows, and both sides of every range border verify will use for
    2 and 3 processes, with and without the device key (which shortens the parent's range)."""
    seqs = {1, EVENTS}
    for parts in (2, 3):
        for keyed in (False, True):
            for spec in _plan(EVENTS, parts, _handicap(EVENTS, CHECKPOINTS, keyed=keyed))[1:]:
                assert spec.low is not None
                seqs |= {spec.low - 1, spec.low}
    return tuple(sorted(seqs))


BORDERS = _borders()


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_problems_with_one_two_and_three_processes(
    pristine: Path, tmp_path: Path, case: str
) -> None:
    rt = _copy(pristine, tmp_path)
    try:
        for seq in BORDERS:
            CASES[case](rt, seq)
        alone = _problems(rt, 1, keyed=False)
        assert (case == "untouched") == (len(alone) == 1), alone
        assert _problems(rt, 2, keyed=False) == alone
        assert _problems(rt, 3, keyed=False) == alone
        # With the device key the parent also checks signatures, so its range is shorter.
        assert _problems(rt, 3, keyed=True) == _problems(rt, 1, keyed=True)
    finally:
        rt.close()


def test_parallel_verify_on_each_backend(runtime: Runtime) -> None:
    """PostgreSQL too (under KIOSK_TEST_POSTGRES=1): workers read with their own cursors."""
    fill(runtime, 12)
    clean = verify_log(runtime.engine, cabinet_id=CAB, public_key=runtime.device_key.public,
                       checkpoint_every=256, workers=2)
    assert clean.ok and clean.checked == 12
    sql(runtime, "UPDATE events SET key_number = 'U9999' WHERE seq = 9")
    for workers in (1, 2):
        result = verify_log(runtime.engine, cabinet_id=CAB, checkpoint_every=256,
                            public_key=runtime.device_key.public, workers=workers)
        assert [p.seq for p in result.problems] == [9], result.problems
