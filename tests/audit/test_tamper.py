"""Every kind of tampering with the event log is detected and named by sequence number."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from kiosk.audit import NewEvent
from kiosk.audit.chain import event_hash
from kiosk.audit.device_key import load, load_or_create
from kiosk.audit.verify import ExportedCheckpoint, VerifyResult, verify_log
from kiosk.config import AuditSettings, Settings
from kiosk.errors import DeviceKeyError
from kiosk.runtime import Runtime
from kiosk.store.models import AuditHead, Event

CAB = "cab-test"


def _fill(runtime: Runtime, n: int = 10) -> None:
    for i in range(n):
        runtime.audit.append(
            NewEvent(
                type="key.drawn" if i % 2 else "access.denied",
                actors=[f"person-{i}"],
                slot=i + 1,
                key_number=f"U{1200 + i}",
                decision="allow" if i % 2 else "deny",
                rules=["K3"] if i % 2 else ["K8"],
                payload={"reason": "维修", "i": i},
            )
        )


def _verify(runtime: Runtime, exported: ExportedCheckpoint | None = None) -> VerifyResult:
    return verify_log(
        runtime.engine, cabinet_id=CAB, public_key=runtime.device_key.public, exported=exported
    )


def _sql(runtime: Runtime, statement: str, **params: object) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_untouched_log_verifies(runtime: Runtime) -> None:
    _fill(runtime)
    result = _verify(runtime)
    assert result.ok, result.problems
    assert (result.checked, result.last_seq) == (10, 10)


def test_edited_row_is_named(runtime: Runtime) -> None:
    _fill(runtime)
    _sql(runtime, "UPDATE events SET payload = :p WHERE seq = 4", p='{"i":3,"reason":"保洁"}')
    result = _verify(runtime)
    assert not result.ok
    assert result.first_bad_seq == 4
    assert [p.seq for p in result.problems] == [4]  # one edit, one problem: no cascade


@pytest.mark.parametrize(
    "column,value",
    [
        ("actors", '["someone-else"]'),
        ("decision", "allow"),
        ("key_number", "U9999"),
        ("slot", 99),
        ("rules", '["K7"]'),
    ],
)
def test_any_column_edit_is_detected(runtime: Runtime, column: str, value: object) -> None:
    _fill(runtime)
    _sql(runtime, f"UPDATE events SET {column} = :v WHERE seq = 7", v=value)
    assert _verify(runtime).first_bad_seq == 7


def test_deleted_row_is_named(runtime: Runtime) -> None:
    _fill(runtime)
    _sql(runtime, "DELETE FROM events WHERE seq = 5")
    result = _verify(runtime)
    assert result.first_bad_seq == 5
    assert "missing" in str(result.problems[0])


def test_reordered_rows_are_detected(runtime: Runtime) -> None:
    _fill(runtime)
    # Swap the contents of rows 3 and 6, keeping their sequence numbers.
    _sql(runtime, "UPDATE events SET seq = 1000 WHERE seq = 3")
    _sql(runtime, "UPDATE events SET seq = 3 WHERE seq = 6")
    _sql(runtime, "UPDATE events SET seq = 6 WHERE seq = 1000")
    result = _verify(runtime)
    assert result.first_bad_seq == 3


def test_row_inserted_in_the_middle_is_named(runtime: Runtime) -> None:
    _fill(runtime)
    for seq in range(10, 4, -1):  # make room at 5 by shifting the tail up
        _sql(runtime, "UPDATE events SET seq = :n WHERE seq = :o", n=seq + 1, o=seq)
    _sql(
        runtime,
        "INSERT INTO events (cabinet_id, seq, at, type, actors, slot, key_number, decision, rules,"
        " payload, prev_hash, hash) SELECT cabinet_id, 5, at, 'key.returned', '[]', NULL, NULL,"
        " NULL, '[]', '{}', hash, :h FROM events WHERE seq = 4",
        h="f" * 64,
    )
    assert _verify(runtime).first_bad_seq == 5


def test_row_forged_after_the_tail_is_detected(runtime: Runtime) -> None:
    """A forger who knows the hash algorithm appends a well-formed row behind the log's back."""
    _fill(runtime)
    with Session(runtime.engine) as s:
        last = s.get(Event, (CAB, 10))
        assert last is not None
        forged: dict[str, Any] = dict(  # the columns event_hash takes, by name
            cabinet_id=CAB,
            seq=11,
            at=last.at,
            type="key.returned",
            actors="[]",
            slot=None,
            key_number="U1200",
            decision=None,
            rules="[]",
            payload="{}",
            prev_hash=last.hash,
        )
        s.add(Event(**forged, hash=event_hash(**forged)))
        s.commit()
    result = _verify(runtime)
    assert result.first_bad_seq == 11


def test_tail_cut_is_caught_by_the_head_record(runtime: Runtime) -> None:
    _fill(runtime)
    _sql(runtime, "DELETE FROM events WHERE seq > 7")
    result = _verify(runtime)
    assert result.first_bad_seq == 8
    assert "tail cut" in str(result.problems[0])


def test_careful_tail_cut_is_caught_only_by_an_exported_checkpoint(
    runtime: Runtime, tmp_path: Path
) -> None:
    _fill(runtime)
    row = runtime.audit.checkpoint()
    exported_file = tmp_path / "cp.json"
    exported_file.write_text(json.dumps(runtime.audit.export_checkpoint(row)), encoding="utf-8")
    # The forger cuts rows 8–10, fixes the head record and removes stored checkpoints.
    _sql(runtime, "DELETE FROM events WHERE seq > 7")
    _sql(runtime, "DELETE FROM checkpoints")
    _sql(
        runtime,
        "UPDATE audit_heads SET seq = 7, hash = (SELECT hash FROM events WHERE seq = 7)",
    )
    assert _verify(runtime).ok  # without the exported checkpoint the cut is invisible...
    result = _verify(runtime, ExportedCheckpoint.read(exported_file))
    assert not result.ok  # ...with it, it is named
    assert result.first_bad_seq == 8
    assert "tail cut" in str(result.problems[0])


def test_rewritten_chain_is_caught_by_signed_checkpoints(runtime: Runtime) -> None:
    """Edit row 3, then recompute every later hash so the chain itself looks intact."""
    _fill(runtime)
    runtime.audit.checkpoint()
    with Session(runtime.engine) as s:
        rows = s.scalars(select(Event).order_by(Event.seq)).all()
        prev = rows[1].hash
        for row in rows[2:]:
            if row.seq == 3:
                row.payload = '{"i":2,"reason":"私事"}'
            row.prev_hash = prev
            row.hash = event_hash(
                cabinet_id=row.cabinet_id,
                seq=row.seq,
                at=row.at,
                type=row.type,
                actors=row.actors,
                slot=row.slot,
                key_number=row.key_number,
                decision=row.decision,
                rules=row.rules,
                payload=row.payload,
                prev_hash=row.prev_hash,
            )
            prev = row.hash
        head = s.get(AuditHead, CAB)
        assert head is not None
        head.hash = prev
        s.commit()
    result = _verify(runtime)
    assert not result.ok
    assert any("rewritten" in p.what for p in result.problems)


def test_forged_checkpoint_signature_is_detected(runtime: Runtime) -> None:
    _fill(runtime)
    runtime.audit.checkpoint()
    _sql(runtime, "UPDATE checkpoints SET signature = :s", s="00" * 64)
    result = _verify(runtime)
    assert any("signature invalid" in p.what for p in result.problems)


def test_checkpoints_are_signed_every_n_events(settings: Settings) -> None:
    rt = Runtime.open(settings.model_copy(update={"audit": AuditSettings(checkpoint_every=4)}))
    try:
        _fill(rt, 9)
        result = verify_log(rt.engine, cabinet_id=CAB, public_key=rt.device_key.public)
        assert result.ok and result.checkpoints == 2  # at seq 4 and 8
    finally:
        rt.close()


def test_device_key_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "device_key.pem"
    key = load_or_create(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_or_create(path).key_id == key.key_id  # never regenerated
    path.chmod(0o644)
    with pytest.raises(DeviceKeyError, match="chmod 600"):
        load(path)
