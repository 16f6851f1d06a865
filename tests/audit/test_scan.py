"""The verifier's inner loop (``kiosk.audit.scan``): times in any shape the database layer
reads, and the worker process that checks one range of a large log.

A verify of a large log runs ``python -m kiosk.audit.scan`` workers (task as JSON on stdin,
result as JSON on stdout); what a worker reports must be exactly what the parent would
have found itself, and a worker that fails must fail the verify with its error, not hang or
pass. Mutation testing (docs/testing.md) found these reached by no test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_forge import fill, sql
from sqlalchemy import text

from kiosk.audit import NewEvent, scan
from kiosk.audit.scan import RangeResult, RangeSpec, check_range_on, collect, start_worker
from kiosk.audit.verify import verify_log
from kiosk.config import Settings
from kiosk.runtime import Runtime

CAB = "cab-test"
EIGHT = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def sqlite_rt(tmp_path: Path) -> Iterator[Runtime]:
    """A file-backed SQLite log (worker processes open the file themselves)."""
    runtime = Runtime.open(Settings(data_dir=tmp_path / "var", database_url="", cabinet_id=CAB))
    yield runtime
    runtime.close()


def _stored_at(rt: Runtime, seq: int) -> dt.datetime:
    with rt.engine.connect() as conn:
        stored = conn.execute(text("SELECT at FROM events WHERE seq = :s"), {"s": seq}).scalar_one()
    return dt.datetime.fromisoformat(stored).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize("shape", [
    lambda m: m.replace(tzinfo=None).isoformat(),  # 'T' between date and time
    lambda m: m.astimezone(EIGHT).isoformat(sep=" "),  # the same moment in UTC+8
    lambda m: m.isoformat(sep=" "),  # with its '+00:00'
])
def test_a_time_rewritten_in_another_shape_for_the_same_moment_still_verifies(
    sqlite_rt: Runtime, shape: object
) -> None:
    """A copy or repair tool may rewrite a time cell in another ISO shape the database
    layer reads as the same moment: the verifier must read it as that moment too (no false
    alarm), and still name a rewrite that moves the moment by a microsecond."""
    fill(sqlite_rt, 4)
    moment = _stored_at(sqlite_rt, 2)
    sql(sqlite_rt, "UPDATE events SET at = :a WHERE seq = 2", a=shape(moment))  # type: ignore[operator]
    result = verify_log(sqlite_rt.engine, cabinet_id=CAB, public_key=sqlite_rt.device_key.public)
    assert result.ok, result.problems
    later = moment + dt.timedelta(microseconds=1)
    sql(sqlite_rt, "UPDATE events SET at = :a WHERE seq = 2", a=shape(later))  # type: ignore[operator]
    result = verify_log(sqlite_rt.engine, cabinet_id=CAB, public_key=sqlite_rt.device_key.public)
    assert [str(p) for p in result.problems] == [
        "seq 2: content does not match its hash: row edited (type 'key.drawn')"
    ]


def _tampered(rt: Runtime) -> None:
    fill(rt, 6)
    sql(rt, "UPDATE events SET payload = '{}' WHERE seq = 4")


SPEC = RangeSpec(2, None, first=False)
"""Rows from seq 2 on, with the head record at 4: rows 5 and 6 lie beyond it."""
BOUNDED = RangeSpec(2, 5, first=False)
"""Rows 2 to 4: a worker's range between two others."""


def _expected(rt: Runtime, beyond: list[int]) -> RangeResult:
    """What the range from 2 of ``_tampered``'s log shows, spelled out."""
    with rt.engine.connect() as conn:
        hashes: dict[int, str] = dict(conn.execute(text("SELECT seq, hash FROM events")).all())
    return RangeResult(
        first_seq=2, first_prev_hash=hashes[1], last_seq=4, last_hash=hashes[4], checked=3,
        problems=[(4, "content does not match its hash: row edited (type 'key.drawn')")],
        hashes={3: hashes[3]}, beyond=beyond,
    )


def test_a_worker_reads_its_task_on_stdin_and_answers_on_stdout(
    sqlite_rt: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The task travels on stdin (the URL may hold a password: never on a command line)."""
    _tampered(sqlite_rt)
    task = {"url": str(sqlite_rt.engine.url), "cabinet_id": CAB,
            "spec": dataclasses.asdict(SPEC), "wanted": [3], "head_seq": 4}
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(json.dumps(task).encode())))
    scan.main()
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads(json.dumps(dataclasses.asdict(_expected(sqlite_rt, [5, 6]))))


def test_a_worker_process_finds_what_the_parent_would_find(sqlite_rt: Runtime) -> None:
    _tampered(sqlite_rt)
    url = sqlite_rt.engine.url.render_as_string(hide_password=False)
    found = collect(start_worker(url, CAB, BOUNDED, frozenset({3}), 4))
    assert found == _expected(sqlite_rt, [])
    assert found == check_range_on(sqlite_rt.engine, CAB, BOUNDED, frozenset({3}), 4)


def test_a_failed_worker_fails_with_its_error(tmp_path: Path) -> None:
    """A worker that cannot read its range (here: its database is under a plain file, not a
    folder) fails the verify with the worker's own error, not with an empty range that would
    pass; a long error is cut to its last 2000 characters, where the cause is."""
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    deep = tmp_path / "file" / "/".join(["d" * 200] * 12)
    with pytest.raises(RuntimeError) as failed:
        collect(start_worker(f"sqlite:///{deep / 'kiosk.db'}", CAB, SPEC, frozenset(), None))
    prefix, _, detail = str(failed.value).partition(": ")
    assert prefix == "audit verify worker failed"
    assert len(detail) == 2000
    assert f"NotADirectoryError: [Errno 20] Not a directory: '{deep}'\n".endswith(detail)


def test_an_untouched_log_is_hashed_on_the_fast_path(
    sqlite_rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every row of the usual shape (each nullable cell empty and filled) is re-hashed by the
    inlined loop; the reference encoding is only for rows of unusual shape. A broken fast
    path would still give the right verdict through the fallback, at a fraction of the
    speed issue 15 asks for (measured by bench/bench_verify.py; here the fallback is counted,
    not timed)."""
    fill(sqlite_rt, 4)  # decisions, key numbers and slots filled
    sqlite_rt.audit.append(NewEvent(type="door.closed"))  # decision, key number, slot empty
    slow: list[object] = []
    reference = scan._slow_hash

    def counted(*args: Any) -> tuple[str | None, str | None]:
        slow.append(args)
        return reference(*args)

    monkeypatch.setattr(scan, "_slow_hash", counted)
    result = verify_log(sqlite_rt.engine, cabinet_id=CAB, public_key=sqlite_rt.device_key.public)
    assert result.ok and result.checked == 5, result.problems
    assert slow == []
    sql(sqlite_rt, "UPDATE events SET at = 'x' WHERE seq = 3")
    assert verify_log(sqlite_rt.engine, cabinet_id=CAB).first_bad_seq == 3
    assert len(slow) == 1  # the unusual row, and only it


def test_a_seq_that_is_no_whole_number_is_named_with_the_rows_hash(sqlite_rt: Runtime) -> None:
    """The row has no seq to name it by: the problem gives the place it holds in the stored
    order (SQLite sorts text after every number: after the last row) and the start of its
    hash, so the row can be found."""
    fill(sqlite_rt, 6)
    with sqlite_rt.engine.connect() as conn:
        stored = conn.execute(text("SELECT hash FROM events WHERE seq = 4")).scalar_one()
    sql(sqlite_rt, "UPDATE events SET seq = 'four' WHERE seq = 4")
    problems = [str(p) for p in verify_log(sqlite_rt.engine, cabinet_id=CAB).problems]
    assert problems == [
        "seq 4: row(s) 4 missing: deleted from the log",
        "seq 5: previous-hash link broken: a row was inserted, removed or reordered here",
        f"seq 7: a row is stored with seq 'four', which is not a whole number (its hash "
        f"{stored[:16]}…): the row was edited",
    ]


def test_rows_deleted_together_are_named_as_one_gap(sqlite_rt: Runtime) -> None:
    fill(sqlite_rt, 8)
    sql(sqlite_rt, "DELETE FROM events WHERE seq BETWEEN 4 AND 6")
    problems = [str(p) for p in verify_log(sqlite_rt.engine, cabinet_id=CAB).problems]
    assert problems == [
        "seq 4: row(s) 4..6 missing: deleted from the log",
        "seq 7: previous-hash link broken: a row was inserted, removed or reordered here",
    ]


def test_a_time_beyond_what_a_time_can_hold_is_named(sqlite_rt: Runtime) -> None:
    """The last microsecond of year 9999 an hour west of UTC is a valid text and a valid
    local time, but not a UTC time: named, no traceback."""
    fill(sqlite_rt, 3)
    bad = "9999-12-31 23:59:59.999999-01:00"
    sql(sqlite_rt, "UPDATE events SET at = :a WHERE seq = 2", a=bad)
    [problem] = verify_log(sqlite_rt.engine, cabinet_id=CAB).problems
    assert problem.seq == 2
    assert problem.what.startswith(f"stored time {bad!r} is not a valid time: ")
    assert problem.what.endswith(": the row was edited")
