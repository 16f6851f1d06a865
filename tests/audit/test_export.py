"""The exported copy of the log (A1): what a verifier off the device gets, checked there.

``kiosk audit export`` (and ``[audit] export_path``) writes the signed checkpoints and, with
the log, every event. An auditor holding only that folder must be able to recompute each
event's hash from the exported fields, follow the links, and check the head's signature with
the public key in the file; nothing in the folder may be half written. Mutation testing
showed the exported event fields were never read back. Here they are read back with the
public hash function (``kiosk.audit.chain``), never with the exporter's own code.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_forge import edit_and_rechain, fill, sql

from kiosk.audit import AuditLog, NewEvent, export
from kiosk.audit.chain import GENESIS_HASH, checkpoint_message, event_hash
from kiosk.audit.device_key import public_from_hex, verify_signature
from kiosk.audit.export import export_to
from kiosk.config import AuditSettings, Settings
from kiosk.errors import AuditError
from kiosk.runtime import Runtime

CAB = "cab-test"
FIELDS = {"seq", "at", "type", "actors", "slot", "key_number", "decision", "rules", "payload",
          "prev_hash", "hash"}


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.open(settings.model_copy(update={"audit": AuditSettings(checkpoint_every=4)}))
    yield runtime
    runtime.close()


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def assert_verifies_off_the_device(folder: Path, events: list[dict[str, Any]]) -> None:
    """What an auditor does with the folder alone: every hash, every link, the signature."""
    prev = GENESIS_HASH
    for doc in events:
        assert set(doc) == FIELDS
        assert doc["prev_hash"] == prev
        assert event_hash(
            cabinet_id=CAB, seq=doc["seq"], at=parse_time(doc["at"]), type=doc["type"],
            actors=doc["actors"], slot=doc["slot"], key_number=doc["key_number"],
            decision=doc["decision"], rules=doc["rules"], payload=doc["payload"],
            prev_hash=doc["prev_hash"]) == doc["hash"]
        prev = doc["hash"]
    latest = json.loads((folder / "latest-checkpoint.json").read_text(encoding="utf-8"))
    assert latest == lines(folder / "checkpoints.jsonl")[-1]
    assert (latest["seq"], latest["head_hash"]) == (events[-1]["seq"], events[-1]["hash"])
    message = checkpoint_message(cabinet_id=CAB, seq=latest["seq"], head_hash=latest["head_hash"],
                                 signed_at=dt.datetime.fromisoformat(latest["signed_at"]))
    assert verify_signature(public_from_hex(latest["public_key"]), latest["signature"], message)


def test_A1_an_exported_log_verifies_with_nothing_but_the_folder(
        rt: Runtime, tmp_path: Path) -> None:
    fill(rt, 6)  # a checkpoint at 4; the export signs the head at 6
    summary = export_to(rt.audit, tmp_path / "usb", with_log=True)
    assert summary == export.ExportSummary(tmp_path / "usb" / CAB, 6, 2, 6)
    events = lines(summary.folder / "events.jsonl")
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[1]["type"] == "key.drawn" and events[1]["key_number"] == "U1201"
    assert (events[1]["slot"], events[1]["decision"]) == (2, "allow")
    assert json.loads(events[1]["actors"]) == ["person-1"]
    assert json.loads(events[1]["rules"]) == ["K3"]
    assert json.loads(events[1]["payload"]) == {"reason": "维修", "i": 1}
    assert [c["seq"] for c in lines(summary.folder / "checkpoints.jsonl")] == [4, 6]
    assert_verifies_off_the_device(summary.folder, events)
    assert sorted(p.name for p in summary.folder.iterdir()) == [
        "checkpoints.jsonl", "events.jsonl", "latest-checkpoint.json"]  # no .tmp left
    # the head's checkpoint is for a person to read too: one field a line, two spaces in
    latest = (summary.folder / "latest-checkpoint.json").read_text(encoding="utf-8")
    assert latest.startswith('{\n  "format": "kiosk-checkpoint/1",\n  "cabinet_id": ')


def test_A1_a_long_log_is_exported_whole_and_in_order_batch_by_batch(
        rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "EXPORT_BATCH", 2)  # a million events come in batches too
    fill(rt, 7)
    first = export_to(rt.audit, tmp_path, with_log=True)
    assert first.events_added == 7
    again = export_to(rt.audit, tmp_path, with_log=True)  # nothing new: nothing appended
    assert (again.events_added, again.checkpoint_seq) == (0, 7)
    fill(rt, 2)
    assert export_to(rt.audit, tmp_path, with_log=True).events_added == 2
    events = lines(tmp_path / CAB / "events.jsonl")
    assert [e["seq"] for e in events] == list(range(1, 10))
    assert_verifies_off_the_device(tmp_path / CAB, events)


def test_A1_checkpoints_only_unless_the_log_is_asked_for(rt: Runtime, tmp_path: Path) -> None:
    fill(rt, 3)
    summary = export_to(rt.audit, tmp_path)
    assert (summary.events_added, summary.checkpoints, summary.checkpoint_seq) == (None, 1, 3)
    assert not (summary.folder / "events.jsonl").exists()


def test_an_empty_events_file_starts_a_fresh_export(rt: Runtime, tmp_path: Path) -> None:
    fill(rt, 3)
    (tmp_path / CAB).mkdir()
    (tmp_path / CAB / "events.jsonl").write_text("", encoding="utf-8")
    assert export_to(rt.audit, tmp_path, with_log=True).events_added == 3


def test_an_unreadable_last_exported_event_is_named_and_nothing_is_appended(
        rt: Runtime, tmp_path: Path) -> None:
    fill(rt, 3)
    export_to(rt.audit, tmp_path, with_log=True)
    path = tmp_path / CAB / "events.jsonl"
    path.write_text(path.read_text(encoding="utf-8") + '{"seq": 4, "hash"\n', encoding="utf-8")
    before = path.read_bytes()
    fill(rt, 1)
    with pytest.raises(AuditError, match=rf"^{path}: the last exported event is unreadable "
                                         r"\(.+\); move the file aside to start a fresh export$"):
        export_to(rt.audit, tmp_path, with_log=True)
    assert path.read_bytes() == before


def test_an_export_to_somewhere_unwritable_is_named(rt: Runtime, tmp_path: Path) -> None:
    fill(rt, 2)
    blocked = tmp_path / "usb"
    blocked.write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(AuditError, match=rf"^cannot export the audit log to {blocked}: "):
        export_to(rt.audit, blocked)
    taken = tmp_path / "ok"
    (taken / CAB / "checkpoints.jsonl.tmp").mkdir(parents=True)  # the temporary name is taken
    with pytest.raises(AuditError, match=rf"^cannot export the audit log to {taken / CAB}: "):
        export_to(rt.audit, taken)


def test_an_empty_log_has_nothing_to_export(rt: Runtime, tmp_path: Path) -> None:
    with pytest.raises(AuditError, match=r"^the log is empty: nothing to export$"):
        export_to(rt.audit, tmp_path)


def test_A1_the_exported_text_is_the_logged_text_not_escapes(rt: Runtime, tmp_path: Path) -> None:
    fill(rt, 2)
    summary = export_to(rt.audit, tmp_path, with_log=True)
    assert "维修".encode() in (summary.folder / "events.jsonl").read_bytes()  # readable as is


def test_A1_only_this_cabinets_events_are_exported(rt: Runtime, tmp_path: Path) -> None:
    other = AuditLog(rt.engine, cabinet_id="cab-other", device_key=rt.device_key)
    other.append(NewEvent(type="cabinet.started"))
    fill(rt, 2)
    other.append(NewEvent(type="cabinet.started"))
    summary = export_to(rt.audit, tmp_path, with_log=True)
    events = lines(summary.folder / "events.jsonl")
    assert [(e["seq"], e["type"]) for e in events] == [(1, "access.denied"), (2, "key.drawn")]
    assert_verifies_off_the_device(summary.folder, events)


def test_A1_a_log_of_one_event_then_more_is_exported_in_steps(rt: Runtime, tmp_path: Path) -> None:
    fill(rt, 1)
    assert export_to(rt.audit, tmp_path, with_log=True).events_added == 1
    fill(rt, 1)
    assert export_to(rt.audit, tmp_path, with_log=True).events_added == 1
    assert [e["seq"] for e in lines(tmp_path / CAB / "events.jsonl")] == [1, 2]


def test_A1_an_event_longer_than_the_tail_read_still_lets_the_export_go_on(
        rt: Runtime, tmp_path: Path) -> None:
    fill(rt, 2)
    rt.audit.append(NewEvent(type="people.imported", payload={"rows": "行" * 40_000}))  # 120 KB
    assert export_to(rt.audit, tmp_path, with_log=True).events_added == 3
    fill(rt, 1)
    assert export_to(rt.audit, tmp_path, with_log=True).events_added == 1
    events = lines(tmp_path / CAB / "events.jsonl")
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert_verifies_off_the_device(tmp_path / CAB, events)


def test_A1_a_log_rewritten_after_its_export_is_refused_and_the_copy_kept(
        rt: Runtime, tmp_path: Path) -> None:
    fill(rt, 5)
    export_to(rt.audit, tmp_path, with_log=True)
    path = tmp_path / CAB / "events.jsonl"
    kept = path.read_bytes()
    edit_and_rechain(rt, 3, '{"i":2,"reason":"私事"}')
    fill(rt, 1)
    with pytest.raises(AuditError, match=(
            rf"^the device's event 5 differs from the exported copy in {path}: the log was "
            r"rewritten after it was exported \(keep that file as evidence\)$")):
        export_to(rt.audit, tmp_path, with_log=True)
    sql(rt, "DELETE FROM events WHERE seq >= 5")  # the exported head gone from the device
    with pytest.raises(AuditError, match=r"^the device's event 5 differs from the exported"):
        export_to(rt.audit, tmp_path, with_log=True)
    assert path.read_bytes() == kept  # the evidence is untouched


def test_A1_a_cabinet_named_in_chinese_is_exported_as_written(
        settings: Settings, tmp_path: Path) -> None:
    runtime = Runtime.open(settings.model_copy(update={"cabinet_id": "百富-01"}))
    try:
        runtime.audit.append(NewEvent(type="cabinet.started"))
        summary = export_to(runtime.audit, tmp_path)
        assert summary.folder == tmp_path / "百富-01"
        for name in ("checkpoints.jsonl", "latest-checkpoint.json"):
            raw = (summary.folder / name).read_bytes()
            assert '"cabinet_id": "百富-01"'.encode() in raw, name
    finally:
        runtime.close()
