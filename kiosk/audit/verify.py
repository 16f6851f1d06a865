"""Checking the log: chain, head, stored checkpoints and an exported checkpoint.

The verifier reads every row in sequence order and reports each problem with the sequence
number it concerns, so ``kiosk audit verify`` can name the first bad row: an edited row
(its hash no longer matches), a deleted row (a gap), a reordered or inserted row (the
previous-hash link breaks), a cut-off tail (the head row or a checkpoint covers more rows
than the table holds).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kiosk.audit.chain import GENESIS_HASH, checkpoint_message, event_hash
from kiosk.audit.device_key import key_id_of, public_from_hex, verify_signature
from kiosk.errors import AuditError
from kiosk.store.models import AuditHead, Checkpoint, Event

MAX_PROBLEMS = 100


@dataclass(frozen=True)
class Problem:
    seq: int
    what: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.what}"


@dataclass
class VerifyResult:
    cabinet_id: str
    checked: int = 0
    last_seq: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

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
    public_key: Ed25519PublicKey
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
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AuditError(f"checkpoint file {path} is unreadable: {exc}") from None


def verify_log(
    engine: Engine,
    *,
    cabinet_id: str,
    public_key: Ed25519PublicKey | None = None,
    exported: ExportedCheckpoint | None = None,
) -> VerifyResult:
    """Verify the whole log of ``cabinet_id``; never raises for tampering, reports it."""
    result = VerifyResult(cabinet_id)
    with Session(engine) as session:
        # Keep only the hashes a checkpoint will be compared with: 1M rows must not need 1M
        # strings in memory on a Raspberry Pi.
        wanted = set(
            session.execute(select(Checkpoint.seq).where(Checkpoint.cabinet_id == cabinet_id))
            .scalars()
            .all()
        )
        if exported is not None:
            wanted.add(exported.seq)
        hashes: dict[int, str] = {}
        _check_chain(session, cabinet_id, result, hashes, wanted)
        _check_head(session, cabinet_id, result)
        _check_stored_checkpoints(session, cabinet_id, result, hashes, public_key)
    if exported is not None:
        _check_exported(exported, result, hashes, public_key)
    result.problems.sort(key=lambda p: p.seq)
    return result


def _check_chain(
    session: Session,
    cabinet_id: str,
    result: VerifyResult,
    hashes: dict[int, str],
    wanted: set[int],
) -> None:
    expected_seq, prev_hash = 1, GENESIS_HASH
    rows = session.execute(
        select(Event)
        .where(Event.cabinet_id == cabinet_id)
        .order_by(Event.seq)
        .execution_options(yield_per=5000)
    ).scalars()
    for row in rows:
        if row.seq != expected_seq:
            missing = (
                f"{expected_seq}"
                if row.seq == expected_seq + 1
                else f"{expected_seq}..{row.seq - 1}"
            )
            result.add(expected_seq, f"row(s) {missing} missing: deleted from the log")
        if row.prev_hash != prev_hash:
            result.add(
                row.seq, "previous-hash link broken: a row was inserted, removed or reordered here"
            )
        recomputed = event_hash(
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
        if recomputed != row.hash:
            result.add(row.seq, f"content does not match its hash: row edited (type {row.type!r})")
        if row.seq in wanted:
            hashes[row.seq] = row.hash
        prev_hash = row.hash
        expected_seq = row.seq + 1
        result.checked += 1
        result.last_seq = row.seq
        session.expunge(row)


def _check_head(session: Session, cabinet_id: str, result: VerifyResult) -> None:
    head = session.get(AuditHead, cabinet_id)
    if head is None:
        if result.last_seq:
            result.add(result.last_seq, "events exist but the head record is missing")
        return
    if head.seq > result.last_seq:
        result.add(
            result.last_seq + 1,
            f"tail cut: the log ends at seq {result.last_seq} but its head says {head.seq}",
        )
    elif head.seq < result.last_seq:
        result.add(
            head.seq + 1, f"rows after the head (seq {head.seq}) were appended outside the log"
        )


def _check_stored_checkpoints(
    session: Session,
    cabinet_id: str,
    result: VerifyResult,
    hashes: dict[int, str],
    public_key: Ed25519PublicKey | None,
) -> None:
    rows = session.execute(
        select(Checkpoint).where(Checkpoint.cabinet_id == cabinet_id).order_by(Checkpoint.seq)
    ).scalars()
    for cp in rows:
        result.checkpoints += 1
        if public_key is not None:
            if cp.key_id != key_id_of(public_key):
                result.add(cp.seq, f"checkpoint signed by unknown key {cp.key_id}")
            message = checkpoint_message(
                cabinet_id=cp.cabinet_id, seq=cp.seq, head_hash=cp.head_hash, signed_at=cp.signed_at
            )
            if not verify_signature(public_key, cp.signature, message):
                result.add(cp.seq, "checkpoint signature invalid")
        _compare(cp.seq, cp.head_hash, result, hashes, "stored checkpoint")


def _check_exported(
    exported: ExportedCheckpoint,
    result: VerifyResult,
    hashes: dict[int, str],
    public_key: Ed25519PublicKey | None,
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
    seq: int, head_hash: str, result: VerifyResult, hashes: dict[int, str], what: str
) -> None:
    if seq > result.last_seq:
        result.add(
            result.last_seq + 1,
            f"tail cut: {what} covers seq {seq} but the log ends at seq {result.last_seq}",
        )
    elif hashes.get(seq) != head_hash:
        result.add(seq, f"{what} hash differs: the log up to here was rewritten")
