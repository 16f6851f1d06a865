"""Appending to the event log, serialised across threads and processes.

An append locks the cabinet's head row (``SELECT … FOR UPDATE`` on PostgreSQL; a
``BEGIN IMMEDIATE`` write transaction on SQLite), reads the head, writes the new row and
the new head in the same transaction, and commits. The primary key ``(cabinet_id, seq)``
and the unique hash are a second line of defence: a writer that somehow raced would fail
its insert rather than fork the chain.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from kiosk.audit.chain import GENESIS_HASH, canonical_json, checkpoint_message, event_hash
from kiosk.audit.device_key import DeviceKey
from kiosk.audit.statements import ChainStatements, CoreStatements, SqliteSql, SqliteStatements
from kiosk.errors import AuditError
from kiosk.store.db import write_session
from kiosk.store.models import AuditHead, Checkpoint
from kiosk.store.types import utcnow

APPEND_ATTEMPTS = 8


class HeadMoved(AuditError):
    """``append_in(after=N)``: the log's head is no longer N; nothing was appended."""


@dataclass(frozen=True)
class NewEvent:
    """What a caller wants logged. ``rules`` carries rule ids (docs/rules.md) (``K8``...)."""

    type: str
    actors: Sequence[str] = ()
    slot: int | None = None
    key_number: str | None = None
    decision: str | None = None
    rules: Sequence[str] = ()
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.type or len(self.type) > 64:
            raise ValueError("event type must be 1..64 characters")
        if self.decision not in (None, "allow", "deny"):
            raise ValueError(f"decision must be 'allow', 'deny' or None, not {self.decision!r}")


@dataclass(frozen=True)
class AppendedEvent:
    """The stored event: its place in the chain and its hash."""

    cabinet_id: str
    seq: int
    at: dt.datetime
    hash: str
    type: str
    key_number: str | None = None
    """The key the event names, if any: the cabinet's facts re-read only that key after a
    draw or a return (kiosk/cabinet/facts.py)."""
    slot: int | None = field(default=None, compare=False)
    """The slot the event names, if any (the metrics count lock faults by slot)."""
    rules: tuple[str, ...] = field(default=(), compare=False)
    """The rule ids it cites (the metrics count refusals by rule as they are heard, rather
    than keep each refusal's number until a scrape reads its row: issue 15, item 4)."""


_HEADS = cast(Table, AuditHead.__table__)
_HEAD_SEQ = select(_HEADS.c.seq).where(_HEADS.c.cabinet_id == bindparam("cabinet"))


class AuditLog:
    """The event log of one cabinet."""

    def __init__(
        self,
        engine: Engine,
        *,
        cabinet_id: str,
        device_key: DeviceKey,
        checkpoint_every: int = 256,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.cabinet_id = cabinet_id
        self.device_key = device_key
        self.checkpoint_every = checkpoint_every
        self.clock = clock
        self.listeners: list[Callable[[AppendedEvent], None]] = []
        # How the append's statements run (kiosk/audit/statements.py): on SQLite on the
        # session's DB-API cursor, elsewhere as Core statements.
        self._sqlite = SqliteSql(engine.dialect) if engine.dialect.name == "sqlite" else None

    # ---------------------------------------------------------------------------- writing
    def append(self, event: NewEvent) -> AppendedEvent:
        """Append in a transaction of its own and commit durably before returning."""
        last_error: Exception | None = None
        for attempt in range(APPEND_ATTEMPTS):
            try:
                with write_session(self.engine) as session:
                    stored = self.append_in(session, event)
                self._notify(stored)
                return stored
            except (IntegrityError, OperationalError) as exc:
                # A first-ever head row created concurrently, or a lock wait that timed out.
                last_error = exc
                time.sleep(min(0.01 * 2**attempt, 0.5))
        raise AuditError(
            f"could not append {event.type!r} after {APPEND_ATTEMPTS} attempts: {last_error}"
        )

    def append_in(self, session: Session, event: NewEvent, *,
                  after: int | None = None) -> AppendedEvent:
        """Append inside the caller's transaction (so a record and its event commit together).

        The session must be a write transaction (``kiosk.store.db.write_session``) so the head
        read below is serialised on SQLite; on PostgreSQL the row lock does it. With
        ``after``, the event is appended only if the head is still that sequence number,
        else :class:`HeadMoved` (a decision made from facts read at ``after`` is stale).
        """
        run: ChainStatements = (CoreStatements(session) if self._sqlite is None
                                else SqliteStatements(session, self._sqlite))
        head = run.head(self.cabinet_id)
        if head is None:
            run.first_head(self.cabinet_id, GENESIS_HASH)
            prev_seq, prev_hash = 0, GENESIS_HASH
        else:
            prev_seq, prev_hash = head
        if after is not None and prev_seq != after:
            raise HeadMoved(f"the log is at {prev_seq}, not {after}")
        seq = prev_seq + 1
        at = self.clock()
        # The stored columns are exactly what is hashed: one dict feeds both.
        fields: dict[str, Any] = {
            "cabinet_id": self.cabinet_id,
            "seq": seq,
            "at": at,
            "type": event.type,
            "actors": canonical_json(list(event.actors)),
            "slot": event.slot,
            "key_number": event.key_number,
            "decision": event.decision,
            "rules": canonical_json(list(event.rules)),
            "payload": canonical_json(dict(event.payload)),
            "prev_hash": prev_hash,
        }
        digest = event_hash(**fields)
        run.insert_event({**fields, "hash": digest})
        run.move_head(self.cabinet_id, seq, digest)
        if seq % self.checkpoint_every == 0:
            self._checkpoint_in(session, seq, digest)
        session.flush()  # the checkpoint, and the caller's rows added before (as ever)
        return AppendedEvent(self.cabinet_id, seq, at, digest, event.type, event.key_number,
                             slot=event.slot, rules=tuple(event.rules))

    def head_seq_in(self, session: Session) -> int:
        """The head's sequence number as ``session`` sees it (0 for an empty log)."""
        return session.execute(_HEAD_SEQ, {"cabinet": self.cabinet_id}).scalar() or 0

    def notify_committed(self, stored: AppendedEvent) -> None:
        """Tell listeners (live feed, notifications) about an event committed by ``append_in``."""
        self._notify(stored)

    def _notify(self, stored: AppendedEvent) -> None:
        for listener in list(self.listeners):
            listener(stored)

    # ------------------------------------------------------------------------ checkpoints
    def _checkpoint_in(self, session: Session, seq: int, head_hash: str) -> Checkpoint:
        signed_at = self.clock()
        message = checkpoint_message(
            cabinet_id=self.cabinet_id, seq=seq, head_hash=head_hash, signed_at=signed_at
        )
        row = Checkpoint(
            cabinet_id=self.cabinet_id,
            seq=seq,
            head_hash=head_hash,
            signed_at=signed_at,
            key_id=self.device_key.key_id,
            signature=self.device_key.sign(message),
        )
        session.merge(row)
        return row

    def checkpoint(self) -> Checkpoint:
        """Sign the current head now (on demand, e.g. before exporting it off the device)."""
        with write_session(self.engine) as session:
            head = session.execute(
                select(AuditHead).where(AuditHead.cabinet_id == self.cabinet_id).with_for_update()
            ).scalar_one_or_none()
            if head is None or head.seq == 0:
                raise AuditError("the log is empty: nothing to checkpoint")
            return self._checkpoint_in(session, head.seq, head.hash)

    def sign_head(self) -> Checkpoint | None:
        """Sign the head unless a checkpoint already covers it; None when nothing was signed.

        Called when the daemon stops and at each scheduler tick, so the head record is
        normally signed and ``verify`` reports no unsigned tail. Logs no event of its own:
        an event would move the head past the checkpoint that was just signed.
        """
        with write_session(self.engine) as session:
            head = session.execute(
                select(AuditHead).where(AuditHead.cabinet_id == self.cabinet_id).with_for_update()
            ).scalar_one_or_none()
            if head is None or head.seq == 0:
                return None
            if session.get(Checkpoint, (self.cabinet_id, head.seq)) is not None:
                return None
            return self._checkpoint_in(session, head.seq, head.hash)

    def latest_checkpoint(self) -> Checkpoint | None:
        with Session(self.engine) as session:  # no commit here: nothing is expired
            return session.scalars(
                select(Checkpoint).where(Checkpoint.cabinet_id == self.cabinet_id)
                .order_by(Checkpoint.seq.desc()).limit(1)
            ).first()

    def export_checkpoint(self, row: Checkpoint) -> dict[str, Any]:
        """A self-contained JSON document a verifier can keep off the device."""
        return {
            "format": "kiosk-checkpoint/1",
            "cabinet_id": row.cabinet_id,
            "seq": row.seq,
            "head_hash": row.head_hash,
            "signed_at": row.signed_at.isoformat(),
            "key_id": row.key_id,
            "public_key": self.device_key.public_hex,
            "signature": row.signature,
        }

    # ---------------------------------------------------------------------------- reading
    def head(self) -> tuple[int, str]:
        with Session(self.engine) as session:
            head = session.get(AuditHead, self.cabinet_id)
            return (head.seq, head.hash) if head else (0, GENESIS_HASH)
