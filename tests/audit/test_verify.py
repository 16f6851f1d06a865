"""The verifier's verdict in the cases mutation testing found no test for (docs/testing.md):
events appended while a verify runs, rows behind the head record's back, an empty log or
a missing head, the exported checkpoint's own problems, the unsigned tail's wording, the
cap on problems, and verify split over two processes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from audit_forge import edit_and_rechain, fill, sql

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit import verify as verify_module
from kiosk.audit.device_key import load_or_create
from kiosk.audit.verify import ExportedCheckpoint, VerifyResult, verify_log
from kiosk.errors import AuditError
from kiosk.runtime import Runtime
from kiosk.store import migrate
from kiosk.store.db import make_engine, write_session

CAB = "cab-test"


def _verify(rt: Runtime, **kwargs: object) -> VerifyResult:
    return verify_log(rt.engine, cabinet_id=CAB, public_key=rt.device_key.public,
                      **kwargs)  # type: ignore[arg-type]


def _problems(result: VerifyResult) -> list[str]:
    return [str(p) for p in result.problems]


def _export(rt: Runtime, tmp_path: Path, **changes: object) -> ExportedCheckpoint:
    """The head signed now and written to a file, as ``kiosk audit checkpoint --export``."""
    doc = {**rt.audit.export_checkpoint(rt.audit.checkpoint()), **changes}
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return ExportedCheckpoint.read(path)


def test_events_appended_while_a_verify_runs_are_left_for_the_next_one(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cabinet keeps logging during a verify: rows, and checkpoints signed for them,
    past the head the verify started from are neither 'beyond the head' nor a cut tail."""
    log = AuditLog(runtime.engine, cabinet_id=CAB, device_key=runtime.device_key,
                   checkpoint_every=4)
    for i in range(6):
        log.append(NewEvent(type="test.append", payload={"i": i}))
    log.sign_head()  # checkpoints at 4 and 6
    check_all = verify_module._Signatures.check_all

    def cabinet_keeps_logging(self: object, stored: list[object]) -> None:
        log.append(NewEvent(type="test.append", payload={"i": 6}))
        log.sign_head()  # a checkpoint at 7, the first seq after the verify's head
        log.append(NewEvent(type="test.append", payload={"i": 7}))  # and at 8
        log.append(NewEvent(type="test.append", payload={"i": 8}))
        check_all(self, stored)  # type: ignore[arg-type]

    monkeypatch.setattr(verify_module._Signatures, "check_all", cabinet_keeps_logging)
    result = _verify(runtime, checkpoint_every=4)
    assert result.ok, result.problems
    assert (result.checked, result.last_seq, result.checkpoints) == (6, 6, 2)
    assert result.unsigned_tail is None
    monkeypatch.undo()
    assert (_verify(runtime, checkpoint_every=4).checked, log.head()[0]) == (9, 9)


@pytest.mark.parametrize("workers", [1, 2])
def test_rows_behind_the_head_records_back_are_counted_and_named(
    runtime: Runtime, workers: int
) -> None:
    """Also when the rows lie in a worker process's range."""
    fill(runtime, 5)
    for seq in (6, 7):
        sql(runtime, "INSERT INTO events (cabinet_id, seq, at, type, actors, slot, key_number, "
                     "decision, rules, payload, prev_hash, hash) SELECT cabinet_id, :s, at, "
                     "type, actors, slot, key_number, decision, rules, payload, hash, :h "
                     "FROM events WHERE seq = :s - 1", s=seq, h=str(seq) * 64)
    assert _problems(_verify(runtime, workers=workers)) == [
        "seq 6: 2 row(s) from seq 6 lie beyond the head record (seq 5): appended outside the log"
    ]


def test_an_empty_log_verifies_and_a_missing_head_record_is_named(runtime: Runtime) -> None:
    empty = _verify(runtime, checkpoint_every=4)
    assert empty.ok and (empty.checked, empty.last_seq, empty.unsigned_tail) == (0, 0, None)
    fill(runtime, 3)
    sql(runtime, "DELETE FROM audit_heads")
    assert _problems(_verify(runtime)) == [
        "seq 3: events exist but the head record is missing"
    ]


def test_a_head_record_whose_seq_is_no_whole_number_is_named(runtime: Runtime) -> None:
    fill(runtime, 3)
    sql(runtime, "UPDATE audit_heads SET seq = -3")
    assert _problems(_verify(runtime))[0] == (
        "seq 0: the head record's seq -3 is not a whole number: it was edited"
    )


@pytest.mark.parametrize(("events", "tail"), [
    (1, "unsigned tail of 1 event from seq 1"),
    (3, "unsigned tail of 3 events from seq 1"),
    (6, "unsigned tail of 2 events after seq 4"),
])
def test_the_unsigned_tail_is_counted_from_the_last_signed_checkpoint(
    runtime: Runtime, events: int, tail: str
) -> None:
    log = AuditLog(runtime.engine, cabinet_id=CAB, device_key=runtime.device_key,
                   checkpoint_every=4)
    for i in range(events):
        log.append(NewEvent(type="test.append", payload={"i": i}))
    result = _verify(runtime, checkpoint_every=4)
    assert result.ok, result.problems
    assert str(result.unsigned_tail) == (
        f"{tail}: no signed checkpoint covers them yet (sign one with `kiosk audit checkpoint`); "
        "on the device they rest on the hash chain alone"
    )


@pytest.mark.parametrize("events", [7, 8])
def test_a_checkpoint_is_required_at_the_last_boundary_and_no_further(
    runtime: Runtime, events: int
) -> None:
    """Seq 8 is a boundary only once the log reaches it."""
    log = AuditLog(runtime.engine, cabinet_id=CAB, device_key=runtime.device_key,
                   checkpoint_every=4)
    for i in range(events):
        log.append(NewEvent(type="test.append", payload={"i": i}))
    sql(runtime, "DELETE FROM checkpoints WHERE seq = 4")
    if events == 8:
        sql(runtime, "DELETE FROM checkpoints WHERE seq = 8")
    missing = [p.seq for p in _verify(runtime, checkpoint_every=4).problems]
    assert missing == ([4] if events == 7 else [4, 8])


def test_problems_are_capped_at_one_hundred(runtime: Runtime) -> None:
    with write_session(runtime.engine) as session:
        for i in range(105):
            runtime.audit.append_in(session, NewEvent(type="test.append", payload={"i": i}))
    sql(runtime, "UPDATE events SET payload = '{}'")
    sql(runtime, "DELETE FROM audit_heads")  # a 106th problem, found after the rows
    result = _verify(runtime)
    assert [p.seq for p in result.problems] == list(range(1, 101))


def test_an_exported_checkpoint_whose_stored_copy_was_deleted_still_vouches(
    runtime: Runtime, tmp_path: Path
) -> None:
    fill(runtime, 3)
    exported = _export(runtime, tmp_path)
    fill(runtime, 2)
    sql(runtime, "DELETE FROM checkpoints")
    assert _verify(runtime, exported=exported).ok


def test_an_exported_checkpoint_of_another_cabinet_is_named(
    runtime: Runtime, tmp_path: Path
) -> None:
    fill(runtime, 3)
    exported = _export(runtime, tmp_path, cabinet_id="cab-other")
    assert _problems(_verify(runtime, exported=exported)) == [
        "seq 3: exported checkpoint is for cabinet 'cab-other'"
    ]


def test_an_exported_checkpoint_with_a_wrong_signature_is_named(
    runtime: Runtime, tmp_path: Path
) -> None:
    fill(runtime, 3)
    good = runtime.audit.export_checkpoint(runtime.audit.checkpoint())
    exported = _export(runtime, tmp_path, signature=good["signature"][::-1])
    assert _problems(_verify(runtime, exported=exported)) == [
        "seq 3: exported checkpoint signature invalid"
    ]


def test_an_exported_checkpoint_of_another_device_key_is_named(
    runtime: Runtime, tmp_path: Path
) -> None:
    """Signed, matching, but by another key than the device's: a forger's own key."""
    fill(runtime, 3)
    other = load_or_create(tmp_path / "other.key")
    forger = AuditLog(runtime.engine, cabinet_id=CAB, device_key=other)
    doc = forger.export_checkpoint(forger.checkpoint())
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = _verify(runtime, exported=ExportedCheckpoint.read(path))
    assert "seq 3: exported checkpoint was signed by a different device key" in _problems(result)


def test_an_exported_checkpoint_file_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps({"format": "kiosk-checkpoint/9"}), encoding="utf-8")
    with pytest.raises(AuditError, match=(
        rf"^checkpoint file {path} is unreadable: unknown format 'kiosk-checkpoint/9'$"
    )):
        ExportedCheckpoint.read(path)


def test_a_verify_split_over_two_processes_names_the_problem(
    runtime: Runtime, tmp_path: Path
) -> None:
    """The second half runs in a worker process: an edit there is still named."""
    fill(runtime, 8)
    sql(runtime, "UPDATE events SET payload = '{}' WHERE seq = 7")
    exported = _export(runtime, tmp_path)
    result = _verify(runtime, workers=2, exported=exported)
    assert _problems(result) == [
        "seq 7: content does not match its hash: row edited (type 'access.denied')"
    ]
    assert (result.checked, result.last_seq) == (8, 8)


def test_a_head_record_set_back_to_zero_leaves_every_row_beyond_it(runtime: Runtime) -> None:
    fill(runtime, 3)
    sql(runtime, "UPDATE audit_heads SET seq = 0")
    assert _problems(_verify(runtime)) == [
        "seq 1: 3 row(s) from seq 1 lie beyond the head record (seq 0): appended outside the log"
    ]


def test_a_large_log_is_split_over_the_cores_on_its_own(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``PARALLEL_MIN_ROWS`` (lowered here: a real large log is bench/'s job) verify
    starts workers by itself, for a file-backed log; an in-memory one has no file a worker
    could open, so it stays in one process. Either way the verdict is the same."""
    monkeypatch.setattr(verify_module, "PARALLEL_MIN_ROWS", 4)
    fill(runtime, 8)
    sql(runtime, "UPDATE events SET payload = '{}' WHERE seq = 7")
    started: list[object] = []
    start_worker = verify_module.start_worker

    def counted(*args: Any) -> Any:
        started.append(args)
        return start_worker(*args)

    monkeypatch.setattr(verify_module, "start_worker", counted)
    assert [p.seq for p in _verify(runtime).problems] == [7]
    if runtime.engine.dialect.name == "sqlite":
        assert len(started) == max(1, min(os.cpu_count() or 1, 8)) - 1
    memory = make_engine("sqlite://")
    migrate.upgrade(memory)
    log = AuditLog(memory, cabinet_id=CAB, device_key=runtime.device_key)
    for i in range(8):
        log.append(NewEvent(type="test.append", payload={"i": i}))
    started.clear()
    result = verify_log(memory, cabinet_id=CAB, public_key=runtime.device_key.public)
    assert result.ok and result.checked == 8, result.problems
    assert started == []


def test_a_checkpoint_that_no_longer_matches_leaves_its_boundary_unsigned(
    runtime: Runtime,
) -> None:
    """A forger re-chains the log after seq 2 but cannot re-sign: the checkpoint at 4 no
    longer matches, so the boundary counts as unsigned too and both are named."""
    log = AuditLog(runtime.engine, cabinet_id=CAB, device_key=runtime.device_key,
                   checkpoint_every=4)
    for i in range(6):
        log.append(NewEvent(type="test.append", payload={"i": i}))
    edit_and_rechain(runtime, 2, '{"i":-1}')
    assert _problems(_verify(runtime, checkpoint_every=4)) == [
        "seq 4: stored checkpoint hash differs: the log up to here was rewritten",
        "seq 4: no signed checkpoint at seq 4, a checkpoint_every (4) boundary: checkpoints "
        "were deleted or the log was rewritten",
    ]
