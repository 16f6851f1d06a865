"""Verify requires a signed checkpoint at every ``checkpoint_every`` boundary (issue 16 item 4).

The attack that used to pass: edit a row, recompute every later hash (no key is needed for
that), delete the ``checkpoints`` rows. Each test here reproduces one form of it, through
plain SQL on the database file, and shows verify now names what is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_forge import edit_and_rechain, fill, sql

from kiosk.audit.export import export_to
from kiosk.audit.verify import ExportedCheckpoint, VerifyResult, verify_log
from kiosk.config import AuditSettings, Settings
from kiosk.runtime import Runtime

CAB = "cab-test"
EVERY = 4


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.open(
        settings.model_copy(update={"audit": AuditSettings(checkpoint_every=EVERY)})
    )
    yield runtime
    runtime.close()


def _verify(rt: Runtime, exported: ExportedCheckpoint | None = None) -> VerifyResult:
    return verify_log(rt.engine, cabinet_id=CAB, public_key=rt.device_key.public,
                      checkpoint_every=EVERY, exported=exported)


def test_untouched_log_verifies_and_reports_its_unsigned_tail(rt: Runtime) -> None:
    fill(rt, 10)  # checkpoints at 4 and 8 are signed as the events are appended
    result = _verify(rt)
    assert result.ok, result.problems
    assert result.checkpoints == 2
    assert result.unsigned_tail is not None
    assert (result.unsigned_tail.after_seq, result.unsigned_tail.events) == (8, 2)
    assert str(result.unsigned_tail).startswith("unsigned tail of 2 events after seq 8")


def test_signing_the_head_leaves_no_unsigned_tail(rt: Runtime) -> None:
    fill(rt, 10)
    assert rt.audit.sign_head() is not None
    assert rt.audit.sign_head() is None  # already covered: nothing new to sign
    result = _verify(rt)
    assert result.ok and result.unsigned_tail is None and result.checkpoints == 3


def test_rechained_log_with_checkpoints_deleted_fails_and_names_the_missing_ones(
    rt: Runtime,
) -> None:
    """Issue 16 item 4, exactly: edit, recompute from there, delete every checkpoint."""
    fill(rt, 10)
    edit_and_rechain(rt, 3, '{"i":2,"reason":"私事"}')
    sql(rt, "DELETE FROM checkpoints")
    result = _verify(rt)
    assert not result.ok
    assert result.first_bad_seq == 4
    missing = [p for p in result.problems if "no signed checkpoint" in p.what]
    assert [p.seq for p in missing] == [4, 8]
    assert "checkpoint_every (4) boundary" in missing[0].what


def test_one_boundary_checkpoint_deleted_is_named(rt: Runtime) -> None:
    fill(rt, 10)
    sql(rt, "DELETE FROM checkpoints WHERE seq = 8")
    result = _verify(rt)
    assert [str(p) for p in result.problems] == [
        "seq 8: no signed checkpoint at seq 8, a checkpoint_every (4) boundary: "
        "checkpoints were deleted or the log was rewritten"
    ]


def test_rechained_log_with_checkpoints_kept_fails_on_the_checkpoint_hash(rt: Runtime) -> None:
    """Recompute the whole tail and keep the checkpoints: the signed hash no longer fits."""
    fill(rt, 10)
    edit_and_rechain(rt, 3, '{"i":2,"reason":"私事"}')
    result = _verify(rt)
    assert result.first_bad_seq == 4
    assert any("stored checkpoint hash differs" in p.what for p in result.problems)


def test_forged_replacement_checkpoint_fails_its_signature(rt: Runtime) -> None:
    """The forger rewrites a checkpoint row to the new hash but cannot sign it."""
    fill(rt, 10)
    edit_and_rechain(rt, 3, '{"i":2,"reason":"私事"}')
    sql(rt, "UPDATE checkpoints SET head_hash = (SELECT hash FROM events e "
            "WHERE e.seq = checkpoints.seq AND e.cabinet_id = checkpoints.cabinet_id)")
    result = _verify(rt)
    assert [p.seq for p in result.problems] == [4, 4, 8, 8]
    assert {p.what for p in result.problems} >= {"checkpoint signature invalid"}


def test_rechained_unsigned_tail_passes_on_the_device_but_not_against_an_export(
    rt: Runtime, tmp_path: Path
) -> None:
    """The documented limit: the tail after the last signed checkpoint rests on the hash
    chain alone; a checkpoint kept off the device catches its rewrite."""
    fill(rt, 10)
    summary = export_to(rt.audit, tmp_path / "usb")  # signs the head (seq 10) and copies it
    latest = ExportedCheckpoint.read(summary.folder / "latest-checkpoint.json")
    assert latest.seq == 10
    edit_and_rechain(rt, 9, '{"i":8,"reason":"私事"}')
    sql(rt, "DELETE FROM checkpoints WHERE seq > 8")
    on_device = _verify(rt)
    assert on_device.ok and on_device.unsigned_tail is not None
    assert on_device.unsigned_tail.after_seq == 8
    with_export = _verify(rt, latest)
    assert with_export.first_bad_seq == 10
    assert "exported checkpoint hash differs" in str(with_export.problems[0])


def test_verify_command_names_the_missing_checkpoint_and_exits_1(
    rt: Runtime, settings: Settings
) -> None:
    fill(rt, 10)
    edit_and_rechain(rt, 3, '{"i":2,"reason":"私事"}')
    sql(rt, "DELETE FROM checkpoints")
    env = {**os.environ, "KIOSK_DATA_DIR": str(settings.data_dir),
           "KIOSK_DATABASE_URL": settings.database_url or "", "KIOSK_CABINET_ID": CAB,
           "KIOSK_AUDIT__CHECKPOINT_EVERY": str(EVERY)}
    out = subprocess.run([sys.executable, "-m", "kiosk", "audit", "verify"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAILED: first bad sequence number 4" in out.stderr
    assert "seq 8: no signed checkpoint at seq 8" in out.stderr
    assert "Traceback" not in out.stderr


def test_verify_command_warns_of_the_unsigned_tail_and_exits_0(
    rt: Runtime, settings: Settings
) -> None:
    fill(rt, 6)
    env = {**os.environ, "KIOSK_DATA_DIR": str(settings.data_dir),
           "KIOSK_DATABASE_URL": settings.database_url or "", "KIOSK_CABINET_ID": CAB,
           "KIOSK_AUDIT__CHECKPOINT_EVERY": str(EVERY)}
    out = subprocess.run([sys.executable, "-m", "kiosk", "audit", "verify"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "warning: unsigned tail of 2 events after seq 4" in out.stdout
    assert "OK: the chain and every checkpoint verify" in out.stdout


def test_export_appends_only_new_events_and_refuses_a_rewritten_log(
    rt: Runtime, tmp_path: Path
) -> None:
    fill(rt, 5)
    first = export_to(rt.audit, tmp_path, with_log=True)
    assert first.events_added == 5 and first.checkpoint_seq == 5
    fill(rt, 3)
    second = export_to(rt.audit, tmp_path, with_log=True)
    assert second.events_added == 3 and second.checkpoint_seq == 8
    lines = (second.folder / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, 9))
    checkpoints = (second.folder / "checkpoints.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["seq"] for line in checkpoints] == [4, 5, 8]
    edit_and_rechain(rt, 7, '{"i":1,"reason":"私事"}')
    from kiosk.errors import AuditError

    with pytest.raises(AuditError, match="event 8 differs from the exported copy"):
        export_to(rt.audit, tmp_path, with_log=True)
