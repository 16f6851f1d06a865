"""Checking the log: chain, head, the signed checkpoints it must have, an exported checkpoint.

What ``verify_log`` requires of a log of ``checkpoint_every`` = N (see README, "Audit"):

1. **The chain.** Every row from seq 1 to the head is present (no gap), its stored
   ``prev_hash`` equals the previous row's hash, and its hash is the SHA-256 of its own
   canonical encoding. An edited row fails its hash; a row whose hash was recomputed
   breaks the next row's link; a deleted, inserted or reordered row breaks a link or
   leaves a gap. Every problem names its sequence number, and a row whose cells cannot
   even be read (a time that is no time, a seq that is no whole number) is named too, never
   a traceback.
2. **The head record** (``audit_heads``) says the same last seq as the rows: rows after it
   were appended behind the log's back, rows missing before it are a cut tail.
3. **A signed checkpoint at every multiple of N** up to the head. Each is checked against
   the device's public key and compared with the row's hash at its seq. A missing one is a
   problem naming its seq ("no signed checkpoint at seq 512"). This is what turns "edit a
   row, recompute every later hash, delete the ``checkpoints`` rows" from invisible into a
   failure: the forger cannot re-sign without the device key.
4. **The head is signed, or the unsigned tail is short.** The daemon signs the head when it
   stops and at every scheduler tick that finds it moved (``kiosk.services.checkpoints``),
   and ``kiosk audit checkpoint`` signs it on demand; a crash or power cut can still leave
   the last events unsigned. Verify accepts such a tail only when it is shorter than N
   (by rule 3 it cannot be longer) and reports it as ``unsigned_tail`` ("unsigned tail of
   K events after seq X"): those K events rest on the hash chain alone.

What no check on the device can see: a forger with write access to the database can
rewrite or drop the unsigned tail (at most N-1 events), and can cut the log back to any
signed checkpoint while deleting the checkpoints after it (the log then looks shorter and
honest). Only a checkpoint kept off the device (``kiosk audit export``, ``[audit]
export_path``) catches these: pass it as ``exported`` and a tail cut or re-chained tail
after it is named. A forger holding the device key itself can re-sign anything; the
off-device copy is the only defence against that too.

Speed: rows are read with raw DB-API cursors and re-hashed by ``kiosk.audit.scan``; a
large log is split into seq ranges checked in parallel processes (each row's hash depends
only on its own cells and its stored ``prev_hash``, so ranges are independent; the links
across range borders are compared here).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from kiosk.audit.chain import GENESIS_HASH, checkpoint_message, checkpoint_message_text
from kiosk.audit.device_key import PublicKey, key_id_of, public_from_hex, verify_signature
from kiosk.audit.scan import (
    PG_TIME,
    BadTime,
    RangeResult,
    RangeSpec,
    check_range_on,
    collect,
    start_worker,
    stored_time_text,
)
from kiosk.errors import AuditError

MAX_PROBLEMS = 100
PARALLEL_MIN_ROWS = 200_000
"""Below this, starting worker processes costs more than it saves."""


@dataclass(frozen=True)
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.what}"


@dataclass(frozen=True)
class UnsignedTail:
    """The last events after the newest signed checkpoint (fewer than ``checkpoint_every``)."""

    after_seq: int
    events: int

    def __str__(self) -> str:
        where = f"after seq {self.after_seq}" if self.after_seq else "from seq 1"
        return (
            f"unsigned tail of {self.events} event{'s' if self.events != 1 else ''} {where}: "
            f"no signed checkpoint covers them yet (sign one with `kiosk audit checkpoint`); "
            f"on the device they rest on the hash chain alone"
        )


@dataclass
class VerifyResult:
    cabinet_id: str
    checked: int = 0
    last_seq: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)
    unsigned_tail: UnsignedTail | None = None
    """Not a failure (see the module docstring, rule 4), but always reported."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        return min((p.seq for p in self.problems), default=None)

    def add(self, seq: int, what: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(seq, what))


@dataclass(frozen=True)
class ExportedCheckpoint:
    cabinet_id: str
    seq: int
    head_hash: str
    signed_at: dt.datetime
    public_key: PublicKey
    signature: str

    @classmethod
    def read(cls, path: Path) -> ExportedCheckpoint:
        try:
            doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != "kiosk-checkpoint/1":
                raise ValueError(f"unknown format {doc.get('format')!r}")
            return cls(
                cabinet_id=str(doc["cabinet_id"]),
                seq=int(doc["seq"]),
                head_hash=str(doc["head_hash"]),
                signed_at=dt.datetime.fromisoformat(doc["signed_at"]),
                public_key=public_from_hex(str(doc["public_key"])),
                signature=str(doc["signature"]),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AuditError(f"checkpoint file {path} is unreadable: {exc}") from None


@dataclass(frozen=True)
class _StoredCheckpoint:
    seq: Any
    head_hash: Any
    signed_at: Any
    key_id: Any
    signature: Any


def verify_log(
    engine: Engine,
    *,
    cabinet_id: str,
    public_key: PublicKey | None = None,
    exported: ExportedCheckpoint | None = None,
    checkpoint_every: int | None = None,
    workers: int | None = None,
) -> VerifyResult:
    """Verify the log of ``cabinet_id`` as of the moment it starts; never raises for tampering.

    ``checkpoint_every``: the ``[audit] checkpoint_every`` the log was written with; a signed
    checkpoint is then required at each multiple of it (rule 3). ``None`` skips only that
    requirement, for callers that cannot know the setting; every other check still runs.
    ``workers``: processes for the chain (default: every core for a large file-backed log).
    Events appended while the check runs are left for the next one.
    """
    result = VerifyResult(cabinet_id)
    dialect = engine.dialect.name
    head = _read_head(engine, cabinet_id, result)
    stored = _read_checkpoints(engine, cabinet_id, dialect)
    wanted = {cp.seq for cp in stored if cp.seq.__class__ is int}
    if exported is not None:
        wanted.add(exported.seq)
    if head is not None:
        wanted.add(head[0])
    head_seq = head[0] if head is not None else None
    signatures = _Signatures(cabinet_id, public_key, dialect)
    hashes, beyond = _check_chain(
        engine, cabinet_id, result, frozenset(wanted), head_seq, workers,
        meanwhile=lambda: signatures.check_all(stored),
        handicap=_handicap(head_seq, len(stored), keyed=public_key is not None),
    )
    # The head as it is now: rows and checkpoints past the first head read but within this
    # one were appended while the check ran, by the log itself (row and head commit together).
    now = _read_head(engine, cabinet_id, VerifyResult(cabinet_id)) if head is not None else None
    now_seq = now[0] if now is not None else head_seq
    late = [seq for seq in beyond if now_seq is None or seq > now_seq]
    if late:
        result.add(min(late), f"{len(late)} row(s) from seq {min(late)} lie beyond the head "
                              f"record (seq {now_seq}): appended outside the log")
    _check_head(result, head, hashes)
    covered = _check_stored_checkpoints(
        engine, cabinet_id, result, hashes, public_key, signatures,
        skip_above=now_seq if now_seq is not None and now_seq > result.last_seq else None,
        skip_from=(head_seq or 0) + 1,
    )
    if checkpoint_every:
        _require_checkpoints(result, covered, checkpoint_every)
    if exported is not None:
        _check_exported(exported, result, hashes, public_key)
    result.problems.sort(key=lambda p: p.seq)
    return result


# ------------------------------------------------------------------------------ reading
@contextmanager
def _cursor(engine: Engine) -> Iterator[Any]:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        yield cur
        cur.close()
    finally:
        raw.rollback()
        raw.close()


def _mark(engine: Engine) -> str:
    return "?" if engine.dialect.name == "sqlite" else "%s"


def _read_head(engine: Engine, cabinet_id: str, result: VerifyResult) -> tuple[int, Any] | None:
    with _cursor(engine) as cur:
        cur.execute(f"SELECT seq, hash FROM audit_heads WHERE cabinet_id = {_mark(engine)}",
                    [cabinet_id])
        row = cur.fetchone()
    if row is None:
        return None
    if row[0].__class__ is not int or row[0] < 0:
        result.add(0, f"the head record's seq {row[0]!r} is not a whole number: it was edited")
        return None
    return row[0], row[1]


def _read_checkpoints(engine: Engine, cabinet_id: str, dialect: str) -> list[_StoredCheckpoint]:
    signed_at = PG_TIME.replace("(at ", "(signed_at ") if dialect == "postgresql" else "signed_at"
    with _cursor(engine) as cur:
        cur.execute(
            f"SELECT seq, head_hash, {signed_at}, key_id, signature FROM checkpoints "
            f"WHERE cabinet_id = {_mark(engine)} ORDER BY seq",
            [cabinet_id],
        )
        return [_StoredCheckpoint(*row) for row in cur.fetchall()]


# -------------------------------------------------------------------------------- chain
SIGNATURE_COST_ROWS = 25
"""One Ed25519 verification costs about as much as re-hashing this many rows."""
WORKER_START_ROWS = 150_000
"""Starting a worker process (interpreter, imports) costs about as much as re-hashing this
many rows: the parent, already running, takes that many more."""


def _handicap(head_seq: int | None, checkpoints: int, *, keyed: bool) -> int:
    """How many rows fewer the parent's range gets (negative: more)."""
    start = min(WORKER_START_ROWS, (head_seq or 0) // 4)
    return (checkpoints * SIGNATURE_COST_ROWS if keyed else 0) - start


def _plan(head_seq: int | None, parts: int, handicap: int = 0) -> list[RangeSpec]:
    """Split 1..head into ``parts`` seq ranges; the ends stay open so no row is skipped.

    The first range (the parent's) is ``handicap`` rows shorter: the parent also checks the
    checkpoint signatures while the workers hash, but has no process to start (a negative
    handicap makes it longer).
    """
    if head_seq is None or parts <= 1 or head_seq < parts:
        return [RangeSpec(None, None, first=True)]
    first_len = min(head_seq - parts + 1, max(1, head_seq // parts - handicap))
    rest = head_seq - first_len
    edges = [1 + first_len + rest * i // (parts - 1) for i in range(parts - 1)]
    lows: list[int | None] = [None, *edges]
    highs: list[int | None] = [*edges, None]
    return [RangeSpec(lo, hi, first=i == 0) for i, (lo, hi) in enumerate(zip(lows, highs, strict=True))]


def _worker_count(engine: Engine, head_seq: int | None, workers: int | None) -> int:
    if workers is not None:
        return max(1, workers)
    if head_seq is None or head_seq < PARALLEL_MIN_ROWS:
        return 1
    if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _check_chain(
    engine: Engine,
    cabinet_id: str,
    result: VerifyResult,
    wanted: frozenset[int],
    head_seq: int | None,
    workers: int | None,
    meanwhile: Callable[[], object],
    handicap: int,
) -> tuple[dict[int, str], list[int]]:
    """Check the chain; run ``meanwhile`` in this process while the workers hash."""
    specs = _plan(head_seq, _worker_count(engine, head_seq, workers), handicap)
    if len(specs) == 1:
        meanwhile()
        parts = [check_range_on(engine, cabinet_id, specs[0], wanted, head_seq)]
    else:
        parts = _run_parallel(engine, cabinet_id, specs, wanted, head_seq, meanwhile)
    return _stitch(parts, result)


def _run_parallel(
    engine: Engine,
    cabinet_id: str,
    specs: list[RangeSpec],
    wanted: frozenset[int],
    head_seq: int | None,
    meanwhile: Callable[[], object],
) -> list[RangeResult]:
    """The first range here, the others in worker processes (``kiosk.audit.scan``); the
    parent's own work overlaps the workers' start-up."""
    url = engine.url.render_as_string(hide_password=False)
    procs = [start_worker(url, cabinet_id, spec, wanted, head_seq) for spec in specs[1:]]
    try:
        meanwhile()
        first = check_range_on(engine, cabinet_id, specs[0], wanted, head_seq)
        return [first, *(collect(proc) for proc in procs)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _stitch(parts: list[RangeResult], result: VerifyResult) -> tuple[dict[int, str], list[int]]:
    """Join the ranges: the links across each border, counts, problems, kept hashes; and
    the seqs of rows found beyond the head record."""
    hashes: dict[int, str] = {}
    last_seq: int = 0
    last_hash: str | None = GENESIS_HASH
    for part in parts:
        if part.first_seq is not None and part.checked:
            expected = last_seq + 1
            if part.first_seq != expected:
                gap = (f"{expected}" if part.first_seq == expected + 1
                       else f"{expected}..{part.first_seq - 1}")
                result.add(expected, f"row(s) {gap} missing: deleted from the log")
            if part.first_prev_hash != last_hash:
                result.add(part.first_seq, "previous-hash link broken: a row was inserted, "
                                           "removed or reordered here")
        for seq, what in part.problems:
            result.add(seq, what)
        if part.checked:
            last_seq, last_hash = part.last_seq, part.last_hash
        result.checked += part.checked
        hashes.update(part.hashes)
    result.last_seq = last_seq
    return hashes, [seq for part in parts for seq in part.beyond]


def _check_head(
    result: VerifyResult, head: tuple[int, Any] | None, hashes: dict[int, str]
) -> None:
    if head is None:
        if result.last_seq:
            result.add(result.last_seq, "events exist but the head record is missing")
        return
    head_seq, head_hash = head
    if head_seq > result.last_seq:
        result.add(
            result.last_seq + 1,
            f"tail cut: the log ends at seq {result.last_seq} but its head says {head_seq}",
        )
    elif head_seq and hashes.get(head_seq) != head_hash:
        result.add(head_seq, "the head record's hash differs from the row at its seq: "
                             "the head record was edited")


# --------------------------------------------------------------------------- checkpoints
def _check_stored_checkpoints(
    engine: Engine,
    cabinet_id: str,
    result: VerifyResult,
    hashes: dict[int, str],
    public_key: PublicKey | None,
    signatures: _Signatures,
    *,
    skip_above: int | None,
    skip_from: int,
) -> set[int]:
    """Check every stored checkpoint; return the seqs validly signed.

    Checkpoints from ``skip_from`` up to ``skip_above`` were signed for rows appended while
    this check ran: they are left for the next check, not taken for a cut tail.
    """
    dialect = engine.dialect.name
    covered: set[int] = set()
    key_id = key_id_of(public_key) if public_key is not None else None
    for cp in _read_checkpoints(engine, cabinet_id, dialect):
        if cp.seq.__class__ is not int:
            result.add(result.last_seq, f"a checkpoint is stored with seq {cp.seq!r}, "
                                        "which is not a whole number: it was edited")
            continue
        if skip_above is not None and skip_from <= cp.seq <= skip_above:
            continue
        result.checkpoints += 1
        valid = True
        if public_key is not None:
            if cp.key_id != key_id:
                result.add(cp.seq, f"checkpoint signed by unknown key {cp.key_id}")
                valid = False
            problem = signatures.check(cp)
            if problem is not None:
                result.add(cp.seq, problem)
                valid = False
        if _compare(cp.seq, cp.head_hash, result, hashes, "stored checkpoint") and valid:
            covered.add(cp.seq)
    return covered


class _Signatures:
    """Checks stored checkpoints' signatures once each, remembering the verdicts, so the
    bulk of them can be checked while worker processes hash the chain."""

    def __init__(
        self, cabinet_id: str, public_key: PublicKey | None, dialect: str
    ) -> None:
        self.cabinet_id = cabinet_id
        self.public_key = public_key
        self.dialect = dialect
        self.verdicts: dict[_StoredCheckpoint, str | None] = {}

    def check_all(self, stored: list[_StoredCheckpoint]) -> None:
        for cp in stored:
            self.check(cp)

    def check(self, cp: _StoredCheckpoint) -> str | None:
        """None when ``cp`` is validly signed by the device key (or no key is known)."""
        if self.public_key is None or cp.seq.__class__ is not int:
            return None
        if cp not in self.verdicts:
            self.verdicts[cp] = self._verdict(cp, self.public_key)
        return self.verdicts[cp]

    def _verdict(self, cp: _StoredCheckpoint, public_key: PublicKey) -> str | None:
        try:
            signed_at = (cp.signed_at if self.dialect == "postgresql"
                         else stored_time_text(cp.signed_at))
        except BadTime:
            return f"checkpoint time {cp.signed_at!r} is not a valid time: it was edited"
        message = checkpoint_message_text(cabinet_id=self.cabinet_id, seq=cp.seq,
                                          head_hash=str(cp.head_hash), signed_at_text=signed_at)
        if not verify_signature(public_key, str(cp.signature), message):
            return "checkpoint signature invalid"
        return None


def _require_checkpoints(result: VerifyResult, covered: set[int], every: int) -> None:
    """Rule 3 (a signed checkpoint at each multiple of ``every``) and rule 4 (the tail)."""
    for seq in range(every, result.last_seq + 1, every):
        if seq not in covered:
            result.add(seq, f"no signed checkpoint at seq {seq}, a checkpoint_every ({every}) "
                            "boundary: checkpoints were deleted or the log was rewritten")
    last_signed = max((s for s in covered if s <= result.last_seq), default=0)
    if result.last_seq > last_signed:
        result.unsigned_tail = UnsignedTail(last_signed, result.last_seq - last_signed)


def _check_exported(
    exported: ExportedCheckpoint,
    result: VerifyResult,
    hashes: dict[int, str],
    public_key: PublicKey | None,
) -> None:
    if exported.cabinet_id != result.cabinet_id:
        result.add(exported.seq, f"exported checkpoint is for cabinet {exported.cabinet_id!r}")
        return
    message = checkpoint_message(
        cabinet_id=exported.cabinet_id,
        seq=exported.seq,
        head_hash=exported.head_hash,
        signed_at=exported.signed_at,
    )
    if not verify_signature(exported.public_key, exported.signature, message):
        result.add(exported.seq, "exported checkpoint signature invalid")
    if public_key is not None and key_id_of(public_key) != key_id_of(exported.public_key):
        result.add(exported.seq, "exported checkpoint was signed by a different device key")
    _compare(exported.seq, exported.head_hash, result, hashes, "exported checkpoint")


def _compare(
    seq: int, head_hash: Any, result: VerifyResult, hashes: dict[int, str], what: str
) -> bool:
    if seq > result.last_seq:
        result.add(
            result.last_seq + 1,
            f"tail cut: {what} covers seq {seq} but the log ends at seq {result.last_seq}",
        )
        return False
    if hashes.get(seq) != head_hash:
        result.add(seq, f"{what} hash differs: the log up to here was rewritten")
        return False
    return True
