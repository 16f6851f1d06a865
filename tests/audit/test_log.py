"""The log's own promises to its callers: what it refuses, what its listeners hear, what it
signs on demand, and how it gives up when an append cannot commit.

These were reached by no test until mutation testing (docs/testing.md) changed them and the
suite still passed: a listener handed nothing, an append that never gave up or waited
for seconds, a checkpoint refused on a one-event log, an exported checkpoint without its
key id.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from audit_forge import fill, sql
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from kiosk.audit import GENESIS_HASH, AppendedEvent, AuditLog, NewEvent
from kiosk.audit import log as log_module
from kiosk.audit.verify import ExportedCheckpoint, verify_log
from kiosk.config import AuditSettings, Settings
from kiosk.errors import AuditError
from kiosk.runtime import Runtime
from kiosk.store.db import write_session

CAB = "cab-test"
AT = dt.datetime(2026, 12, 5, 9, 30, 0, 123456, tzinfo=dt.UTC)


def _log(runtime: Runtime, **kwargs: object) -> AuditLog:
    """A second log object on the runtime's cabinet, with a fixed clock."""
    return AuditLog(runtime.engine, cabinet_id=CAB, device_key=runtime.device_key,
                    clock=lambda: AT, **kwargs)  # type: ignore[arg-type]


def test_an_event_type_must_be_1_to_64_characters() -> None:
    with pytest.raises(ValueError, match=r"^event type must be 1\.\.64 characters$"):
        NewEvent(type="")
    assert NewEvent(type="t" * 64).type == "t" * 64
    with pytest.raises(ValueError, match=r"^event type must be 1\.\.64 characters$"):
        NewEvent(type="t" * 65)


def test_a_decision_is_allow_deny_or_none_and_a_wrong_one_is_named() -> None:
    for decision in ("allow", "deny", None):
        assert NewEvent(type="key.drawn", decision=decision).decision == decision
    with pytest.raises(ValueError,
                       match=r"^decision must be 'allow', 'deny' or None, not 'maybe'$"):
        NewEvent(type="key.drawn", decision="maybe")


def test_listeners_hear_each_appended_event_with_its_place_in_the_chain(runtime: Runtime) -> None:
    log = _log(runtime)
    heard: list[AppendedEvent] = []
    log.listeners.append(heard.append)
    stored = log.append(NewEvent(type="key.drawn", actors=["p-1"], key_number="U1200"))
    assert log.head() == (1, stored.hash)
    assert stored == AppendedEvent(CAB, 1, AT, stored.hash, "key.drawn", "U1200")
    assert heard == [stored]


def test_an_event_appended_inside_a_transaction_is_announced_only_when_told(
    runtime: Runtime,
) -> None:
    """``append_in`` (a record and its event in one transaction) announces nothing itself:
    a listener must never hear an event a rollback erases; ``notify_committed`` tells it."""
    log = _log(runtime)
    heard: list[AppendedEvent] = []
    log.listeners.append(heard.append)
    with write_session(runtime.engine) as session:
        stored = log.append_in(session, NewEvent(type="key.returned", key_number="U7"))
    assert heard == []
    log.notify_committed(stored)
    assert heard == [AppendedEvent(CAB, 1, AT, log.head()[1], "key.returned", "U7")]


def test_an_append_that_cannot_commit_gives_up_with_a_clear_error(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row slipped in behind the log's back at the next seq makes every insert fail: the
    append retries (waiting 10 ms, doubling, at most 0.5 s: 1.63 s in all) and then raises
    a clear ``AuditError`` naming the event and the cause, forking nothing."""
    fill(runtime, 2)
    sql(runtime, "INSERT INTO events (cabinet_id, seq, at, type, actors, slot, key_number, "
                 "decision, rules, payload, prev_hash, hash) SELECT cabinet_id, seq + 1, at, "
                 "type, actors, slot, key_number, decision, rules, payload, hash, :h "
                 "FROM events WHERE seq = 2", h="f" * 64)
    waits: list[float] = []
    monkeypatch.setattr(log_module, "time", SimpleNamespace(sleep=waits.append))
    before = runtime.audit.head()
    with pytest.raises(AuditError, match=r"^could not append 'key\.drawn' after 8 attempts: "
                                         r".*(UNIQUE constraint failed|duplicate key)"):
        runtime.audit.append(NewEvent(type="key.drawn"))
    assert waits == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.5, 0.5])
    assert runtime.audit.head() == before


def test_the_head_of_an_empty_log_is_the_genesis(runtime: Runtime) -> None:
    assert runtime.audit.head() == (0, GENESIS_HASH)


def test_a_checkpoint_on_demand_needs_an_event_and_signs_the_head(runtime: Runtime) -> None:
    with pytest.raises(AuditError, match=r"^the log is empty: nothing to checkpoint$"):
        runtime.audit.checkpoint()
    fill(runtime, 1)
    row = runtime.audit.checkpoint()
    assert (row.seq, row.head_hash) == runtime.audit.head() == (1, row.head_hash)


def test_the_latest_checkpoint_is_the_newest(runtime: Runtime) -> None:
    log = _log(runtime, checkpoint_every=2)
    assert log.latest_checkpoint() is None
    for i in range(5):
        log.append(NewEvent(type="test.append", payload={"i": i}))
    latest = log.latest_checkpoint()
    assert latest is not None
    assert latest.seq == 4


def test_an_exported_checkpoint_names_its_key_and_verifies_off_the_device(
    runtime: Runtime, tmp_path: Path
) -> None:
    fill(runtime, 3)
    row = runtime.audit.checkpoint()
    doc = runtime.audit.export_checkpoint(row)
    assert doc == {
        "format": "kiosk-checkpoint/1",
        "cabinet_id": CAB,
        "seq": 3,
        "head_hash": runtime.audit.head()[1],
        "signed_at": row.signed_at.isoformat(),
        "key_id": runtime.device_key.key_id,
        "public_key": runtime.device_key.public_hex,
        "signature": row.signature,
    }
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = verify_log(runtime.engine, cabinet_id=CAB, exported=ExportedCheckpoint.read(path))
    assert result.ok, result.problems


def test_a_log_made_without_a_setting_signs_at_the_configured_default(runtime: Runtime) -> None:
    """Tools and the fleet hub build an ``AuditLog`` without ``checkpoint_every``: its log
    must still pass a verify run with the default ``[audit] checkpoint_every``."""
    log = AuditLog(runtime.engine, cabinet_id=CAB, device_key=runtime.device_key)
    every = AuditSettings().checkpoint_every
    with write_session(runtime.engine) as session:
        for i in range(every):
            log.append_in(session, NewEvent(type="test.append", payload={"i": i}))
    result = verify_log(runtime.engine, cabinet_id=CAB, public_key=runtime.device_key.public,
                        checkpoint_every=every)
    assert result.ok, result.problems
    assert result.unsigned_tail is None


def test_signing_the_head_signs_a_one_event_log_and_not_an_empty_one(runtime: Runtime) -> None:
    """The daemon signs the head when it stops and at each scheduler tick: an empty log has
    nothing to sign, and the very first event is signed like any other head."""
    assert runtime.audit.sign_head() is None
    fill(runtime, 1)
    row = runtime.audit.sign_head()
    assert row is not None and (row.seq, row.head_hash) == runtime.audit.head()
    assert runtime.audit.sign_head() is None  # already covered


def test_an_event_is_stored_with_its_actors_rules_and_payload(runtime: Runtime) -> None:
    """K3/K8: a log line names who acted, under which rules and why, as canonical JSON;
    mutation testing found an event logged with ``null`` in each of them passing every
    narrow audit test (the hash is computed from the same stored text, so the chain still
    verified)."""
    log = _log(runtime)
    log.append(NewEvent(type="key.drawn", actors=("person-1", "duty-2"), slot=3,
                        key_number="U1201", decision="allow", rules=("K3", "K8"),
                        payload={"reason": "维修", "night": True}))
    with write_session(runtime.engine) as session:
        log.append_in(session, NewEvent(type="key.returned", actors=["person-1"], rules=["K4"],
                                        payload={"on_time": True}))
    with runtime.engine.connect() as conn:
        rows = conn.execute(text("SELECT actors, rules, payload FROM events ORDER BY seq")).all()
    assert [tuple(row) for row in rows] == [
        ('["person-1","duty-2"]', '["K3","K8"]', '{"night":true,"reason":"维修"}'),
        ('["person-1"]', '["K4"]', '{"on_time":true}'),
    ]
    assert verify_log(runtime.engine, cabinet_id=CAB).ok


def test_an_append_after_a_head_goes_on_only_while_the_head_is_still_there(
        runtime: Runtime) -> None:
    """``append_in(after=N)``: a draw decided from facts read when the log was at N is
    logged only if nothing was appended since (issue 15, ``Visit.decided``)."""
    log = _log(runtime)
    first = log.append(NewEvent(type="key.drawn"))
    with write_session(runtime.engine) as session:
        stored = log.append_in(session, NewEvent(type="draw.intent", slot=4), after=1)
    assert (stored.seq, log.head()) == (2, (2, stored.hash))
    with pytest.raises(log_module.HeadMoved, match=r"^the log is at 2, not 1$"), \
            write_session(runtime.engine) as session:
        log.append_in(session, NewEvent(type="draw.intent", slot=5), after=1)
    assert log.head() == (2, stored.hash)  # nothing appended, nothing half-written
    with write_session(runtime.engine) as session:  # no ``after``: onto whatever head
        log.append_in(session, NewEvent(type="draw.intent", slot=6))
    assert log.head()[0] == 3
    assert issubclass(log_module.HeadMoved, AuditError)
    assert first.seq == 1 and verify_log(runtime.engine, cabinet_id=CAB).ok


def test_after_on_an_empty_log_means_its_head_is_zero(runtime: Runtime) -> None:
    log = _log(runtime)
    with write_session(runtime.engine) as session:
        assert log.append_in(session, NewEvent(type="draw.intent"), after=0).seq == 1
    with pytest.raises(log_module.HeadMoved, match=r"^the log is at 1, not 0$"), \
            write_session(runtime.engine) as session:
        log.append_in(session, NewEvent(type="draw.intent"), after=0)


def test_the_head_a_session_sees_is_the_logs_head(runtime: Runtime) -> None:
    log = _log(runtime)
    with write_session(runtime.engine) as session:
        assert log.head_seq_in(session) == 0
        log.append_in(session, NewEvent(type="key.drawn"))
        assert log.head_seq_in(session) == 1  # its own append, before the commit
    log.append(NewEvent(type="key.returned"))
    with write_session(runtime.engine) as session:
        assert log.head_seq_in(session) == 2


def test_a_callers_row_and_its_event_commit_together_or_not_at_all(runtime: Runtime) -> None:
    """A record added to the session before its event is written with it (the append
    flushes it first); a failure after both rolls back both."""
    log = _log(runtime)
    with write_session(runtime.engine) as session:
        session.execute(text("CREATE TABLE notes (body TEXT NOT NULL)"))
    with pytest.raises(RuntimeError), write_session(runtime.engine) as session:
        session.execute(text("INSERT INTO notes VALUES ('kept?')"))
        log.append_in(session, NewEvent(type="note.added"))
        raise RuntimeError("the caller fails after the append")
    with runtime.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM notes")).scalar() == 0
    assert log.head() == (0, GENESIS_HASH)


@pytest.fixture
def on_sqlite(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on SQLite whatever the run's database: the cursor path is SQLite's."""
    runtime = Runtime.open(Settings(data_dir=tmp_path / "sqlite", cabinet_id=CAB))
    yield runtime
    runtime.close()


def test_the_sqlite_cursor_path_stores_exactly_the_row_core_stores(on_sqlite: Runtime) -> None:
    """On SQLite the append's statements run on the session's DB-API cursor (issue 15); a
    log forced onto the Core statements must store the same bytes for the same event: the
    time's text, the JSON, the nulls."""
    runtime = on_sqlite
    event = NewEvent(type="draw.intent", actors=["p-1"], slot=7, key_number="U1201",
                     rules=["K2", "K3"], payload={"reason_code": "repair", "night": False})
    fast, core = _log(runtime), _log(runtime)
    core._sqlite = None  # the Core statements, whatever the database
    for log in (fast, core):
        with write_session(runtime.engine) as session:
            log.append_in(session, event)
    with runtime.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT CAST(at AS TEXT), type, actors, slot, key_number, decision, rules, "
            "payload FROM events WHERE cabinet_id = :c ORDER BY seq"), {"c": CAB}).all()
    assert len(rows) == 2 and tuple(rows[0]) == tuple(rows[1])
    assert verify_log(runtime.engine, cabinet_id=CAB).ok


def test_a_refused_write_on_the_cursor_path_raises_what_callers_catch(
        on_sqlite: Runtime) -> None:
    """The DB-API's own error is raised as SQLAlchemy's, which the cabinet's writer and
    every caller catch (a bare sqlite3.OperationalError would escape them)."""
    log = _log(on_sqlite)
    with write_session(on_sqlite.engine) as session:
        session.execute(text("PRAGMA query_only = ON"))
        with pytest.raises(OperationalError, match=r"readonly|read-only|query_only") as refused:
            log.append_in(session, NewEvent(type="key.drawn"))
    # and it names what was refused, as SQLAlchemy's own errors do: the statement (here the
    # new cabinet's first head) and its values, for the operator reading the daemon's log
    assert refused.value.statement is not None
    assert refused.value.statement.startswith("INSERT INTO audit_head")
    assert refused.value.params == (CAB, 0, GENESIS_HASH)


@pytest.mark.parametrize("first", ["core", "cursor"])
def test_a_new_cabinets_first_event_is_chained_to_genesis_on_either_path(
        on_sqlite: Runtime, first: str) -> None:
    """The first append of a cabinet makes its head: by the Core statements (PostgreSQL's,
    run here on SQLite) or the cursor's, then the other path appends onto it. The log
    starts at 1, on the genesis hash, and verifies."""
    fast, core = _log(on_sqlite), _log(on_sqlite)
    core._sqlite = None
    order = (core, fast) if first == "core" else (fast, core)
    for log in order:
        with write_session(on_sqlite.engine) as session:
            log.append_in(session, NewEvent(type="cabinet.started"))
    with on_sqlite.engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, prev_hash FROM events WHERE cabinet_id = :c "
                                 "ORDER BY seq"), {"c": CAB}).all()
    assert [r.seq for r in rows] == [1, 2] and rows[0].prev_hash == GENESIS_HASH
    assert core.head()[0] == 2 and verify_log(on_sqlite.engine, cabinet_id=CAB).ok


def test_the_appended_event_tells_listeners_its_slot_and_rules(on_sqlite: Runtime) -> None:
    """What an append returns is what the log's listeners hear (the live feed, the
    cabinet's facts, notifications): the slot and the rules of the event, not only its
    number and type."""
    fast, core = _log(on_sqlite), _log(on_sqlite)
    core._sqlite = None  # the second time by the Core statements
    for log in (fast, core):
        with write_session(on_sqlite.engine) as session:
            stored = log.append_in(session, NewEvent(
                type="draw.intent", slot=7, key_number="U1201", rules=["K2", "K3"]))
        assert (stored.slot, stored.rules, stored.key_number) == (7, ("K2", "K3"), "U1201")
