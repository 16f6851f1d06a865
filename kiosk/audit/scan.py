"""Reading and re-hashing a range of the event log, fast: the verifier's inner loop.

Why not the ORM: at a million rows the ORM's per-row objects, type conversions and
identity map cost more than the hashing itself (37–58 s per million on the project's
2-core machine). Here rows come straight from the DB-API cursor in large batches as plain
tuples, the time column is turned into ``format_time``'s text without building a
``datetime`` where the stored text already has the one shape the log writes, and the
record text is built from ``chain.RECORD_TEMPLATE``. Anything unusual in a row (a hand-edited
SQLite cell of the wrong type, an unparsable time) falls back to the reference encoding or
becomes a named problem: a tampered row must never end the verifier with a traceback.

A range is checked on its own (its rows' hashes and the links between them), so ranges can
run in separate processes; ``verify.verify_log`` stitches the links between ranges. A
worker is ``python -m kiosk.audit.scan`` reading its task as JSON on stdin (the database
URL may hold a password: never on the command line) and writing its ``RangeResult`` as
JSON on stdout. A plain subprocess, not ``multiprocessing``: that re-imports the caller's
main module in each worker, which breaks callers without a ``__main__`` guard.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import Engine

from kiosk.audit.chain import (
    GENESIS_HASH,
    RECORD_TEMPLATE,
    canonical_json,
    event_hash,
    format_time,
)
from kiosk.store.db import make_engine

FETCH_ROWS = 20_000
"""Rows per ``fetchmany``: big enough that the per-call cost vanishes, small in memory."""

MAX_PROBLEMS = 100
MAX_BEYOND = 1000

COLUMNS = "seq, {at}, type, actors, slot, key_number, decision, rules, payload, prev_hash, hash"
PG_TIME = "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
"""PostgreSQL formats the time as ``format_time`` does, in the server, for free."""

_SQLITE_STORED_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}")
"""The one shape SQLAlchemy writes a SQLite DATETIME in (microseconds always present)."""


class BadTime(ValueError):
    """A stored time that cannot be read as a time."""


def stored_time_text(value: object) -> str:
    """``format_time`` of a time as SQLite stores it (naive UTC text), or ``BadTime``.

    The common shape is rearranged without building a ``datetime`` (after checking it is a
    real date); any other shape SQLAlchemy would accept is parsed as SQLAlchemy parses it.
    """
    if type(value) is str and _SQLITE_STORED_TIME.fullmatch(value):
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise BadTime(f"stored time {value!r} is not a valid time") from None
        return f"{value[:10]}T{value[11:]}Z"
    try:  # the raw cursor gives text (or, in a hand-edited cell, a number): never a datetime
        moment = dt.datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadTime(f"stored time {value!r} is not a valid time") from None
    moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment
    try:
        return format_time(moment)
    except (ValueError, OverflowError) as exc:
        raise BadTime(f"stored time {value!r} is not a valid time: {exc}") from None


@dataclass
class RangeResult:
    """What one range of rows showed; picklable, so a worker process can return it."""

    first_seq: int | None = None
    first_prev_hash: str | None = None
    last_seq: int = 0
    last_hash: str | None = None
    checked: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    hashes: dict[int, str] = field(default_factory=dict)
    beyond: list[int] = field(default_factory=list)
    """Whole-number seqs above ``head_seq`` (only the open-ended last range has any)."""

    def add(self, seq: int, what: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append((seq, what))


@dataclass(frozen=True)
class RangeSpec:
    """Rows with ``low <= seq < high``; ``None`` leaves that end open."""

    low: int | None
    high: int | None
    first: bool
    """The range holding seq 1: its first row links to the genesis hash."""


def range_sql(dialect: str, spec: RangeSpec) -> tuple[str, list[Any]]:
    """The SELECT for one range and its parameters, in the driver's parameter style."""
    mark = "?" if dialect == "sqlite" else "%s"
    at = PG_TIME if dialect == "postgresql" else "at"
    where, params = [f"cabinet_id = {mark}"], []
    if spec.low is not None:
        where.append(f"seq >= {mark}")
        params.append(spec.low)
    if spec.high is not None:
        where.append(f"seq < {mark}")
        params.append(spec.high)
    sql = f"SELECT {COLUMNS.format(at=at)} FROM events WHERE {' AND '.join(where)} ORDER BY seq"
    return sql, params


def iter_rows(engine: Engine, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` from a raw DB-API cursor, in batches (server-side on PostgreSQL)."""
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "postgresql":
            cur = raw.driver_connection.cursor(name="kiosk_audit_verify")  # type: ignore[union-attr]
            cur.itersize = FETCH_ROWS
        else:
            cur = raw.cursor()
        cur.execute(sql, params)
        while True:
            batch = cur.fetchmany(FETCH_ROWS)
            if not batch:
                break
            yield from batch
        cur.close()
    finally:
        raw.rollback()
        raw.close()


def check_rows(
    rows: Iterable[tuple[Any, ...]],
    *,
    cabinet_id: str,
    first: bool,
    wanted: frozenset[int],
    head_seq: int | None,
    time_is_text: bool,
) -> RangeResult:
    """Re-hash each row and check its links within the range.

    ``time_is_text``: the time column already holds ``format_time``'s text (PostgreSQL's
    ``to_char``); otherwise it is SQLite's stored text. The loop inlines
    ``chain.RECORD_TEMPLATE`` and ``stored_time_text`` for rows of the usual shape (a call
    per row is a fifth of the time); any other row takes ``_slow_hash``.
    """
    out = RangeResult()
    sha256, enc, template, iso = hashlib.sha256, encode_basestring, RECORD_TEMPLATE, _ISO
    time_shape = _SQLITE_STORED_TIME.fullmatch
    cab = encode_basestring(cabinet_id)
    expected_seq: int | None = 1 if first else None
    prev_hash: str | None = GENESIS_HASH if first else None
    for row in rows:
        seq, at, type_, actors, slot, key_number, decision, rules, payload, prev, stored = row
        if seq.__class__ is not int:
            at_seq = out.last_seq + 1  # where the row should be (``expected_seq`` when known)
            out.add(at_seq, f"a row is stored with seq {seq!r}, which is not a whole number "
                            f"(its hash {str(stored)[:16]}…): the row was edited")
            continue
        if head_seq is not None and seq > head_seq:
            if len(out.beyond) < MAX_BEYOND:
                out.beyond.append(seq)
            continue
        if expected_seq is None:
            out.first_seq, out.first_prev_hash = seq, prev
        else:
            if seq != expected_seq:
                missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
                out.add(expected_seq, f"row(s) {missing} missing: deleted from the log")
            if prev != prev_hash:
                out.add(seq, "previous-hash link broken: a row was inserted, removed or "
                             "reordered here")
        recomputed: str | None
        try:
            if time_is_text:
                at_text = at
            elif time_shape(at):
                iso(at)  # a real date and time, not only the right digits
                at_text = f"{at[:10]}T{at[11:]}Z"
            else:
                raise ValueError(at)
            recomputed = sha256((template % (
                enc(actors), at_text, cab,
                "null" if decision is None else enc(decision),
                "null" if key_number is None else enc(key_number),
                enc(payload), enc(prev), enc(rules), seq,
                "null" if slot is None else str(slot) if slot.__class__ is int
                else canonical_json(slot),
                enc(type_),
            )).encode("utf-8")).hexdigest()
        except (TypeError, ValueError):
            recomputed, problem = _slow_hash(row, cabinet_id, time_is_text)
            if problem:
                out.add(seq, problem)
        if recomputed is not None and recomputed != stored:
            out.add(seq, f"content does not match its hash: row edited (type {type_!r})")
        if seq in wanted:
            out.hashes[seq] = stored
        prev_hash = stored
        expected_seq = seq + 1
        out.last_seq, out.last_hash = seq, stored
        out.checked += 1
    return out


_ISO = dt.datetime.fromisoformat


def _slow_hash(
    row: tuple[Any, ...], cabinet_id: str, time_is_text: bool
) -> tuple[str | None, str | None]:
    """The hash of a row of unusual shape, by the reference ``event_hash``; or a problem.

    The reference encoding takes any JSON value, so an integer typed into a text column is
    hashed as the writer would have hashed that value (and so found to differ).
    """
    seq, at, type_, actors, slot, key_number, decision, rules, payload, prev, _ = row
    try:
        at_text = at if time_is_text else stored_time_text(at)
    except BadTime as exc:
        return None, f"{exc}: the row was edited"
    moment = dt.datetime.strptime(at_text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    try:
        return event_hash(
            cabinet_id=cabinet_id, seq=seq, at=moment, type=type_, actors=actors, slot=slot,
            key_number=key_number, decision=decision, rules=rules, payload=payload,
            prev_hash=prev,
        ), None
    except (TypeError, ValueError) as exc:
        return None, f"a cell cannot be read ({exc}): the row was edited"


def check_range(
    url: str, cabinet_id: str, spec: RangeSpec, wanted: frozenset[int], head_seq: int | None
) -> RangeResult:
    """One range, on a connection of its own: what a worker process runs."""
    engine = make_engine(url)
    try:
        return check_range_on(engine, cabinet_id, spec, wanted, head_seq)
    finally:
        engine.dispose()


def check_range_on(
    engine: Engine, cabinet_id: str, spec: RangeSpec, wanted: frozenset[int], head_seq: int | None
) -> RangeResult:
    dialect = engine.dialect.name
    sql, params = range_sql(dialect, spec)
    return check_rows(
        iter_rows(engine, sql, [cabinet_id, *params]),
        cabinet_id=cabinet_id,
        first=spec.first,
        wanted=wanted,
        head_seq=head_seq,
        time_is_text=dialect == "postgresql",
    )


# ------------------------------------------------------------------------------ workers
def start_worker(
    url: str, cabinet_id: str, spec: RangeSpec, wanted: frozenset[int], head_seq: int | None
) -> subprocess.Popen[bytes]:
    """Start checking ``spec`` in a process of its own; ``collect`` gets the result."""
    task = {"url": url, "cabinet_id": cabinet_id, "spec": dataclasses.asdict(spec),
            "wanted": sorted(wanted), "head_seq": head_seq}
    proc = subprocess.Popen([sys.executable, "-m", "kiosk.audit.scan"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(task).encode("utf-8"))
    proc.stdin.close()
    proc.stdin = None  # sent in full: ``communicate`` must not touch it again
    return proc


def collect(proc: subprocess.Popen[bytes]) -> RangeResult:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"audit verify worker failed: {err.decode(errors='replace')[-2000:]}")
    doc = json.loads(out)
    doc["hashes"] = {int(k): v for k, v in doc["hashes"].items()}
    doc["problems"] = [tuple(p) for p in doc["problems"]]
    return RangeResult(**doc)


def main() -> None:
    task = json.loads(sys.stdin.buffer.read())
    result = check_range(task["url"], task["cabinet_id"], RangeSpec(**task["spec"]),
                         frozenset(task["wanted"]), task["head_seq"])
    sys.stdout.write(json.dumps(dataclasses.asdict(result)))


if __name__ == "__main__":
    main()
