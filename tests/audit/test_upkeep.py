"""The scheduler keeps the head signed and the off-device copy current (issue 16 item 4)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest
from audit_forge import fill

from kiosk.audit.verify import ExportedCheckpoint, verify_log
from kiosk.config import AuditSettings, Settings
from kiosk.runtime import Runtime
from kiosk.scheduler import Scheduler
from kiosk.services.checkpoints import CheckpointUpkeep

CAB = "cab-test"
MORNING = dt.datetime(2026, 11, 27, 1, 0, tzinfo=dt.UTC)  # 09:00 Shanghai, no K9 job due


def test_a_scheduler_tick_signs_the_head(runtime: Runtime) -> None:
    fill(runtime, 5)
    Scheduler(runtime, presence=None, clock=lambda: MORNING).tick()
    result = verify_log(runtime.engine, cabinet_id=CAB, public_key=runtime.device_key.public,
                        checkpoint_every=256)
    assert result.ok and result.unsigned_tail is None
    assert result.checkpoints == 1


def test_upkeep_exports_when_due_and_the_log_moved(settings: Settings, tmp_path: Path) -> None:
    usb = tmp_path / "usb"
    rt = Runtime.open(settings.model_copy(update={"audit": AuditSettings(
        export_path=usb, export_every_min=60, export_log=True)}))
    try:
        upkeep = CheckpointUpkeep(rt.audit, rt.settings.audit)
        fill(rt, 3)
        first = upkeep.tick(MORNING)
        assert first is not None and first.checkpoint_seq == 3 and first.events_added == 3
        latest = ExportedCheckpoint.read(usb / CAB / "latest-checkpoint.json")
        assert latest.seq == 3
        fill(rt, 2)
        assert upkeep.tick(MORNING + dt.timedelta(minutes=30)) is None  # not due yet
        later = upkeep.tick(MORNING + dt.timedelta(minutes=61))
        assert later is not None and later.checkpoint_seq == 5 and later.events_added == 2
        assert upkeep.tick(MORNING + dt.timedelta(minutes=200)) is None  # nothing new
        lines = (usb / CAB / "events.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5]
    finally:
        rt.close()


def test_a_failing_export_is_logged_and_does_not_stop_the_tick(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the stick's folder should be", encoding="utf-8")
    rt = Runtime.open(settings.model_copy(update={"audit": AuditSettings(export_path=blocked)}))
    try:
        fill(rt, 2)
        with caplog.at_level(logging.WARNING, logger="kiosk.audit"):
            Scheduler(rt, presence=None, clock=lambda: MORNING).tick()
        assert "audit export to" in caplog.text and "failed" in caplog.text
        assert rt.audit.latest_checkpoint() is not None  # the head was still signed
    finally:
        rt.close()
