"""Verify split into seq ranges, checked in this process: the links across range borders,
how many processes a log gets, and the parallel runner's error path.

``test_parallel_verify.py`` proves that 1, 2 and 3 worker processes find the same problems;
it starts processes, so mutation testing (docs/testing.md) leaves it out for its time, and
the border checks of ``verify._stitch`` survived there. Here each range of a small SQLite
log is checked with ``check_range_on`` in this process and the ranges are stitched as
verify stitches its workers' results: a gap, a broken link or a fork lying exactly on a
border must be named with the same words, at the same seq, as one range over the whole log
names it. Only two tests start processes, both real ``kiosk.audit.scan`` workers: the
asked worker count (one worker on a twelve-event log) and the error path (two workers,
killed as they start).

Rule ids: docs/rules.md has no id of its own for the log's integrity; the hash-chained log
is the record that K2 ("every opening is accounted for") and K10 ("at any moment ... which
keys are in, which are out, with whom") rest on, so these tests cite K2/K10.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from audit_forge import fill, rehash, sql
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit import verify as verify_module
from kiosk.audit.chain import GENESIS_HASH
from kiosk.audit.scan import MAX_BEYOND, RangeResult, RangeSpec, check_range_on, check_rows
from kiosk.audit.verify import (
    PARALLEL_MIN_ROWS,
    VerifyResult,
    _handicap,
    _plan,
    _stitch,
    _worker_count,
    verify_log,
)
from kiosk.runtime import Runtime
from kiosk.store.db import make_engine
from kiosk.store.models import AuditHead, Event

CAB = "cab-test"
EVENTS = 12
"""Split in three (``_plan(12, 3)``): seqs 1..4, 5..8 and 9..12; the borders are at 5 and 9."""


@pytest.fixture
def log(runtime: Runtime) -> Runtime:
    fill(runtime, EVENTS)
    return runtime


def _head_seq(rt: Runtime) -> int:
    with Session(rt.engine) as s:
        head = s.get(AuditHead, CAB)
        assert head is not None
        return head.seq


def _stitched(rt: Runtime, specs: list[RangeSpec], head_seq: int) -> tuple[list[str], VerifyResult,
                                                                          dict[int, str], list[int]]:
    """Each range checked on its own, then stitched as verify stitches its workers' results."""
    wanted = frozenset({4, 8, head_seq})
    parts = [check_range_on(rt.engine, CAB, spec, wanted, head_seq) for spec in specs]
    result = VerifyResult(CAB)
    hashes, beyond = _stitch(parts, result)
    return [str(p) for p in result.problems], result, hashes, beyond


def _split_and_whole(rt: Runtime, head_seq: int | None = None) -> list[str]:
    """The chain's problems found over three ranges, asserted equal to one range's."""
    head = _head_seq(rt) if head_seq is None else head_seq
    specs = _plan(head, 3)
    assert len(specs) == 3
    split, split_result, split_hashes, split_beyond = _stitched(rt, specs, head)
    whole, whole_result, whole_hashes, whole_beyond = _stitched(
        rt, [RangeSpec(None, None, first=True)], head)
    assert split == whole
    assert (split_result.checked, split_result.last_seq) == (whole_result.checked,
                                                              whole_result.last_seq)
    assert (split_hashes, split_beyond) == (whole_hashes, whole_beyond)
    return split


def _relink(rt: Runtime, seq: int, prev_hash: str) -> None:
    """A forger's fork: row ``seq`` re-linked to ``prev_hash`` and every later row and the
    head re-chained onto it, so the only break left is the link at ``seq``'s new parent."""
    with Session(rt.engine) as s:
        rows = s.scalars(select(Event).where(Event.seq >= seq).order_by(Event.seq)).all()
        prev = prev_hash
        for row in rows:
            row.prev_hash = prev
            row.hash = prev = rehash(row)
        head = s.get(AuditHead, CAB)
        assert head is not None
        head.hash = prev
        s.commit()


def _hash_of(rt: Runtime, seq: int) -> str:
    with Session(rt.engine) as s:
        row = s.get(Event, (CAB, seq))
        assert row is not None
        return row.hash


# ------------------------------------------------------------------- links across borders
def test_an_untouched_log_split_in_three_stitches_into_one_chain(log: Runtime) -> None:
    """K2/K10: every row counted once, the kept hashes from every range, nothing beyond."""
    assert [(s.low, s.high) for s in _plan(EVENTS, 3)] == [(None, 5), (5, 9), (9, None)]
    problems, result, hashes, beyond = _stitched(log, _plan(EVENTS, 3), EVENTS)
    assert problems == []
    assert (result.checked, result.last_seq) == (EVENTS, EVENTS)
    assert hashes == {seq: _hash_of(log, seq) for seq in (4, 8, 12)}
    assert beyond == []
    assert _split_and_whole(log) == []


@pytest.mark.parametrize(("deleted", "problems"), [
    ((5,), ["seq 5: row(s) 5 missing: deleted from the log",
            "seq 6: previous-hash link broken: a row was inserted, removed or reordered here"]),
    ((4,), ["seq 4: row(s) 4 missing: deleted from the log",
            "seq 5: previous-hash link broken: a row was inserted, removed or reordered here"]),
    ((4, 5), ["seq 4: row(s) 4..5 missing: deleted from the log",
              "seq 6: previous-hash link broken: a row was inserted, removed or reordered here"]),
    ((9, 10, 11), ["seq 9: row(s) 9..11 missing: deleted from the log",
                   "seq 12: previous-hash link broken: a row was inserted, removed or "
                   "reordered here"]),
    # the middle range left empty: the third is linked to the first
    ((5, 6, 7, 8), ["seq 5: row(s) 5..8 missing: deleted from the log",
                    "seq 9: previous-hash link broken: a row was inserted, removed or "
                    "reordered here"]),
])
def test_rows_deleted_on_a_border_are_named_as_one_range_names_them(
    log: Runtime, deleted: tuple[int, ...], problems: list[str]
) -> None:
    """K2/K10: a gap that starts or ends on a border, or swallows a whole range, is named
    at its first missing seq, with its extent, and the link after it is named too."""
    sql(log, f"DELETE FROM events WHERE seq IN ({', '.join(map(str, deleted))})")
    assert _split_and_whole(log) == problems


def test_a_fork_on_a_border_names_only_the_broken_link(log: Runtime) -> None:
    """K2: row 9 (the third range's first) re-linked to row 7 and the rest re-chained onto
    it: no row is missing, every hash matches, only the link at 9 is wrong."""
    _relink(log, 9, _hash_of(log, 7))
    assert _split_and_whole(log) == [
        "seq 9: previous-hash link broken: a row was inserted, removed or reordered here"]


def test_the_first_rows_cut_and_the_next_relinked_to_genesis_name_only_the_gap(
    log: Runtime
) -> None:
    """K2: rows 1..4 (the whole first range) deleted and row 5 re-linked to the genesis hash,
    the rest re-chained: the cut is named, and the link, which really is to genesis, is
    not. A broken link to genesis (row 5 left as it was) is named as well."""
    sql(log, "DELETE FROM events WHERE seq <= 4")
    assert _split_and_whole(log) == [
        "seq 1: row(s) 1..4 missing: deleted from the log",
        "seq 5: previous-hash link broken: a row was inserted, removed or reordered here"]
    _relink(log, 5, GENESIS_HASH)
    assert _split_and_whole(log) == ["seq 1: row(s) 1..4 missing: deleted from the log"]


def test_only_the_first_row_cut_and_relinked_to_genesis(log: Runtime) -> None:
    """K2: the gap of one row at the very start: '1', not '1..1'."""
    sql(log, "DELETE FROM events WHERE seq = 1")
    _relink(log, 2, GENESIS_HASH)
    assert _split_and_whole(log) == ["seq 1: row(s) 1 missing: deleted from the log"]


def test_each_ranges_own_problems_are_kept_in_order(log: Runtime) -> None:
    """K2: problems found inside each range (an edited row in each) come through the stitch
    at their seqs, and the border links stay intact."""
    for seq in (2, 6, 10):
        sql(log, "UPDATE events SET payload = :p WHERE seq = :s", p='{"edited": true}', s=seq)
    assert _split_and_whole(log) == [
        f"seq {seq}: content does not match its hash: row edited (type {kind!r})"
        for seq, kind in ((2, "key.drawn"), (6, "key.drawn"), (10, "key.drawn"))]


def test_rows_beyond_the_head_come_from_the_last_range(log: Runtime) -> None:
    """K2: checked against a head at 10, rows 11 and 12 are 'beyond the head', not checked:
    the stitch hands their seqs on and counts only rows 1..10."""
    problems, result, hashes, beyond = _stitched(log, _plan(10, 3), 10)
    assert problems == [] and beyond == [11, 12]
    assert (result.checked, result.last_seq, sorted(hashes)) == (10, 10, [4, 8, 10])
    assert _split_and_whole(log, head_seq=10) == []


def test_a_range_with_no_rows_leaves_the_stitch_where_it_was() -> None:
    """An empty range (its rows all deleted, or all beyond the head) has no first row: the
    next range is linked to the last range that had rows."""
    first = RangeResult(last_seq=4, last_hash="d" * 64, checked=4, hashes={4: "d" * 64})
    empty = RangeResult()
    third = RangeResult(first_seq=5, first_prev_hash="d" * 64, last_seq=6, last_hash="f" * 64,
                        checked=2, beyond=[9])
    result = VerifyResult(CAB)
    hashes, beyond = _stitch([first, empty, third], result)
    assert result.problems == []
    assert (result.checked, result.last_seq, hashes, beyond) == (6, 6, {4: "d" * 64}, [9])
    result = VerifyResult(CAB)
    _stitch([first, third, empty], result)
    assert (result.checked, result.last_seq) == (6, 6)


# -------------------------------------------------------------------- rows beyond the head
def test_the_seqs_kept_beyond_the_head_stop_at_max_beyond() -> None:
    """A forger's flood of rows past the head is counted up to ``MAX_BEYOND`` (1,000) seqs,
    so a verify's memory stays bounded: verify's message then says 1000 row(s)."""
    rows = [(seq, "", "", "", None, None, None, "", "", "", "") for seq in range(6, 6 + 1005)]
    out = check_rows(rows, cabinet_id=CAB, first=False, wanted=frozenset(), head_seq=5,
                     time_is_text=False)
    assert MAX_BEYOND == 1000
    assert out.beyond == list(range(6, 6 + MAX_BEYOND))
    assert out.checked == 0 and out.problems == []


def test_verify_names_at_most_a_thousand_rows_beyond_the_head(log: Runtime) -> None:
    """K2: 1,005 rows slipped in past the head are named from the first, counted up to the
    cap (the message's count stops at 1000)."""
    sql(log, "WITH RECURSIVE n(s) AS (SELECT 13 UNION ALL SELECT s + 1 FROM n WHERE s < 1017) "
             "INSERT INTO events (cabinet_id, seq, at, type, actors, slot, key_number, "
             "decision, rules, payload, prev_hash, hash) SELECT e.cabinet_id, n.s, e.at, "
             "e.type, e.actors, e.slot, e.key_number, e.decision, e.rules, e.payload, "
             "e.hash, 'forged-' || n.s FROM n, events e WHERE e.seq = 12")
    result = verify_log(log.engine, cabinet_id=CAB, workers=1)
    assert [str(p) for p in result.problems] == [
        "seq 13: 1000 row(s) from seq 13 lie beyond the head record (seq 12): "
        "appended outside the log"]


# ----------------------------------------------------------------------- how many processes
def _file_engine(tmp_path: Path) -> Any:
    return make_engine(f"sqlite:///{tmp_path / 'kiosk.db'}")


@pytest.mark.parametrize(("cores", "head_seq", "expected"), [
    (2, PARALLEL_MIN_ROWS, 2),
    (2, PARALLEL_MIN_ROWS - 1, 1),
    (2, None, 1),
    (4, 1_000_000, 4),
    (8, 1_000_000, 8),
    (16, 1_000_000, 8),  # never more than eight processes
    (1, 1_000_000, 1),
    (None, 1_000_000, 1),  # the core count unknown: this process alone
])
def test_the_worker_count_follows_the_cores_and_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int | None, head_seq: int | None,
    expected: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    engine = _file_engine(tmp_path)
    try:
        assert _worker_count(engine, head_seq, None) == expected
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite:///:memory:"])
def test_an_in_memory_log_is_never_split(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """A worker process cannot open another process's in-memory (or nameless temporary)
    database."""
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    engine = make_engine(url)
    try:
        assert _worker_count(engine, 1_000_000, None) == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize(("asked", "expected"), [(3, 3), (1, 1), (0, 1), (-2, 1)])
def test_an_asked_worker_count_is_taken_but_never_below_one(
    tmp_path: Path, asked: int, expected: int
) -> None:
    engine = _file_engine(tmp_path)
    try:
        assert _worker_count(engine, 10, asked) == expected
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------ error path
def test_workers_still_running_are_stopped_when_the_parents_own_range_fails(
    log: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verify that fails in this process (here: the checkpoint signatures it checks while
    the workers hash raise) leaves no worker process behind: each still running is killed
    and reaped before the error goes on."""
    started: list[subprocess.Popen[bytes]] = []
    real_start = verify_module.start_worker

    def start_and_keep(*args: Any) -> subprocess.Popen[bytes]:
        proc = real_start(*args)
        started.append(proc)
        return proc

    def fails() -> None:
        raise RuntimeError("the parent's own range failed")

    monkeypatch.setattr(verify_module, "start_worker", start_and_keep)
    specs = _plan(EVENTS, 3)
    with pytest.raises(RuntimeError, match="the parent's own range failed"):
        verify_module._run_parallel(log.engine, CAB, specs, frozenset(), EVENTS, fails)
    assert len(started) == 2
    assert [proc.returncode for proc in started] == [-signal.SIGKILL, -signal.SIGKILL]


def test_an_asked_worker_count_splits_the_log_with_the_parent_taking_the_longer_range(
    log: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``workers=2`` (``kiosk audit verify --workers``) is obeyed even for a small log, and
    the parent, which has no process to start, takes the longer range: the worker is given
    the range ``_plan`` leaves after the parent's handicap. ``workers=1`` starts nothing."""
    started: list[RangeSpec] = []
    real_start = verify_module.start_worker

    def start_and_keep(url: str, cabinet_id: str, spec: RangeSpec, *rest: Any) -> Any:
        started.append(spec)
        return real_start(url, cabinet_id, spec, *rest)

    monkeypatch.setattr(verify_module, "start_worker", start_and_keep)
    sql(log, "UPDATE events SET payload = '{}' WHERE seq = 11")
    result = verify_log(log.engine, cabinet_id=CAB, workers=2)
    assert [str(p) for p in result.problems] == [
        "seq 11: content does not match its hash: row edited (type 'access.denied')"]
    assert (result.checked, result.last_seq) == (EVENTS, EVENTS)
    parent_longer = _plan(EVENTS, 2, _handicap(EVENTS, 0, keyed=False))
    assert parent_longer[1] != _plan(EVENTS, 2)[1]  # the handicap moves the border
    assert started == parent_longer[1:]
    started.clear()
    assert verify_log(log.engine, cabinet_id=CAB, workers=1).problems == result.problems
    assert started == []


def test_a_head_record_edited_while_a_verify_runs_is_left_for_the_next_verify(
    log: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """K2: the head record's seq edited to a negative number after the verify read it: this
    verify ends with its verdict on the head it read (no traceback), and the next one
    names the edit."""
    check_all = verify_module._Signatures.check_all

    def head_edited_meanwhile(self: object, stored: list[object]) -> None:
        sql(log, "UPDATE audit_heads SET seq = -1")
        check_all(self, stored)  # type: ignore[arg-type]

    monkeypatch.setattr(verify_module._Signatures, "check_all", head_edited_meanwhile)
    result = verify_log(log.engine, cabinet_id=CAB, workers=1)
    assert result.ok and (result.checked, result.last_seq) == (EVENTS, EVENTS)
    monkeypatch.undo()
    assert [str(p) for p in verify_log(log.engine, cabinet_id=CAB).problems] == [
        "seq 0: the head record's seq -1 is not a whole number: it was edited",
        "seq 12: events exist but the head record is missing"]


# ------------------------------------------------ the head and the stored checkpoints
def _signed_log(rt: Runtime, events: int) -> AuditLog:
    """A log signing a checkpoint at every 4th event (4, 8, 12 for twelve events)."""
    signed = AuditLog(rt.engine, cabinet_id=CAB, device_key=rt.device_key, checkpoint_every=4)
    for i in range(events):
        signed.append(NewEvent(type="test.append", payload={"i": i}))
    return signed


def _keyed(rt: Runtime, **kwargs: Any) -> list[str]:
    result = verify_log(rt.engine, cabinet_id=CAB, public_key=rt.device_key.public,
                        checkpoint_every=4, **kwargs)
    return [str(p) for p in result.problems]


def test_a_head_record_whose_hash_was_edited_is_named(log: Runtime) -> None:
    """K2: the head says the right seq but another hash."""
    sql(log, "UPDATE audit_heads SET hash = :h", h="e" * 64)
    assert [str(p) for p in verify_log(log.engine, cabinet_id=CAB).problems] == [
        "seq 12: the head record's hash differs from the row at its seq: the head record "
        "was edited"]


def test_an_empty_log_verifies_over_two_processes_too(runtime: Runtime) -> None:
    """No head yet, two processes asked: one range, nothing to find, no traceback."""
    result = verify_log(runtime.engine, cabinet_id=CAB, workers=2)
    assert result.ok and (result.checked, result.last_seq) == (0, 0)


def test_a_checkpoint_whose_seq_is_no_whole_number_is_named_and_the_rest_still_checked(
    runtime: Runtime
) -> None:
    """K2: the checkpoint at 4 edited to seq 3.5 (SQLite keeps what it is given) is named,
    its boundary is unsigned, and the checkpoints after it (8, 12) are still checked."""
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL refuses a seq that is no whole number")
    _signed_log(runtime, EVENTS)
    sql(runtime, "UPDATE checkpoints SET seq = 3.5 WHERE seq = 4")
    assert _keyed(runtime) == [
        "seq 4: no signed checkpoint at seq 4, a checkpoint_every (4) boundary: checkpoints "
        "were deleted or the log was rewritten",
        "seq 12: a checkpoint is stored with seq 3.5, which is not a whole number: it was "
        "edited"]


def test_a_checkpoint_of_an_unknown_key_is_named_and_leaves_its_boundary_unsigned(
    runtime: Runtime
) -> None:
    _signed_log(runtime, 8)
    sql(runtime, "UPDATE checkpoints SET key_id = 'other-key' WHERE seq = 4")
    assert _keyed(runtime) == [
        "seq 4: checkpoint signed by unknown key other-key",
        "seq 4: no signed checkpoint at seq 4, a checkpoint_every (4) boundary: checkpoints "
        "were deleted or the log was rewritten"]


def test_a_checkpoint_signed_at_the_new_head_while_a_verify_runs_is_left_for_the_next(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """K2: the cabinet appends two events and signs its head (seq 8) during a verify that
    started at 6: the checkpoint at 8 is left for the next verify; a forged checkpoint
    beyond any head (seq 100), stored before, is still named as a cut tail."""
    signed = _signed_log(runtime, 6)
    sql(runtime, "INSERT INTO checkpoints (cabinet_id, seq, head_hash, signed_at, key_id, "
                 "signature) SELECT cabinet_id, 100, head_hash, signed_at, key_id, signature "
                 "FROM checkpoints WHERE seq = 4")
    check_all = verify_module._Signatures.check_all

    def cabinet_keeps_logging(self: object, stored: list[object]) -> None:
        signed.append(NewEvent(type="test.append", payload={"i": 6}))
        signed.append(NewEvent(type="test.append", payload={"i": 7}))
        signed.sign_head()
        check_all(self, stored)  # type: ignore[arg-type]

    monkeypatch.setattr(verify_module._Signatures, "check_all", cabinet_keeps_logging)
    assert _keyed(runtime, workers=1) == [
        "seq 7: tail cut: stored checkpoint covers seq 100 but the log ends at seq 6",
        "seq 100: checkpoint signature invalid"]
