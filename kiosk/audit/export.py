"""The off-device copy: signed checkpoints (and optionally the events) written to a folder.

Why: on the device, a forger with write access to the database can cut the log back to a
signed checkpoint or rewrite its unsigned tail, and a forger with the device key can
re-sign anything (see ``kiosk.audit.verify``). A checkpoint kept elsewhere — a USB stick
the custodian takes away, a network share — pins the head as it was, and
``kiosk audit verify --checkpoint FOLDER/CABINET/latest-checkpoint.json`` then names any
such change before it.

Layout of ``FOLDER/CABINET/``:

- ``latest-checkpoint.json``: the newest checkpoint, the document ``verify --checkpoint``
  reads (the head is signed first when no checkpoint covers it yet);
- ``checkpoints.jsonl``: every stored checkpoint, one document per line;
- ``events.jsonl`` (when asked for): the events, appended after the last one exported.
  Before appending, the last exported event is compared with the device's row of that
  seq: when they differ the device's log was rewritten after the export, and the export
  stops with an error instead of burying the evidence.

Each file is written to a temporary name, synced and renamed, so a stick pulled mid-write
leaves the previous copy whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit.chain import format_time
from kiosk.audit.log import AuditLog
from kiosk.errors import AuditError
from kiosk.store.models import Checkpoint, Event

LATEST = "latest-checkpoint.json"
CHECKPOINTS = "checkpoints.jsonl"
EVENTS = "events.jsonl"
EXPORT_BATCH = 5000
TAIL_WINDOW = 64 * 1024


@dataclass(frozen=True)
class ExportSummary:
    folder: Path
    checkpoint_seq: int
    checkpoints: int
    events_added: int | None
    """None when the events were not exported."""


def export_to(audit: AuditLog, folder: Path, *, with_log: bool = False) -> ExportSummary:
    """Sign the head if needed, then write the copy into ``folder/<cabinet>/``."""
    target = folder / audit.cabinet_id
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AuditError(f"cannot export the audit log to {folder}: {exc}") from None
    audit.sign_head()
    with Session(audit.engine) as session:
        rows = list(session.scalars(
            select(Checkpoint).where(Checkpoint.cabinet_id == audit.cabinet_id)
            .order_by(Checkpoint.seq)
        ))
    if not rows:
        raise AuditError("the log is empty: nothing to export")
    docs = [audit.export_checkpoint(row) for row in rows]
    try:
        _write_atomic(target / CHECKPOINTS,
                      "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
        _write_atomic(target / LATEST, json.dumps(docs[-1], indent=2, ensure_ascii=False) + "\n")
        added = _append_events(audit, target / EVENTS) if with_log else None
    except OSError as exc:
        raise AuditError(f"cannot export the audit log to {target}: {exc}") from None
    return ExportSummary(target, rows[-1].seq, len(rows), added)


def event_doc(row: Event) -> dict[str, Any]:
    """One event as exported: every hashed column, the time in the hashed form."""
    return {
        "seq": row.seq, "at": format_time(row.at), "type": row.type, "actors": row.actors,
        "slot": row.slot, "key_number": row.key_number, "decision": row.decision,
        "rules": row.rules, "payload": row.payload, "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def _last_line(path: Path) -> dict[str, Any] | None:
    """The last exported event, read from the end of the file: a window of the file's tail,
    doubled until it holds the whole last line (an event's payload may be long), so a
    growing export is never read whole."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    size, window = path.stat().st_size, TAIL_WINDOW
    with path.open("rb") as fh:
        while True:
            start = max(0, size - window)
            fh.seek(start)
            tail = fh.read().splitlines()
            if start == 0 or len(tail) > 1:
                break  # the file's start, or a line break before the last line
            window *= 2
    try:
        doc: dict[str, Any] = json.loads(tail[-1])
        return doc
    except (ValueError, IndexError) as exc:
        raise AuditError(f"{path}: the last exported event is unreadable ({exc}); move the "
                         f"file aside to start a fresh export") from None


def _append_events(audit: AuditLog, path: Path) -> int:
    last = _last_line(path)
    after = 0
    with Session(audit.engine) as session:
        if last is not None:
            after = int(last["seq"])
            row = session.get(Event, (audit.cabinet_id, after))
            if row is None or row.hash != last.get("hash"):
                raise AuditError(
                    f"the device's event {after} differs from the exported copy in {path}: "
                    f"the log was rewritten after it was exported (keep that file as evidence)"
                )
        added = 0
        with path.open("a", encoding="utf-8") as fh:
            while True:
                batch = list(session.scalars(
                    select(Event).where(Event.cabinet_id == audit.cabinet_id, Event.seq > after)
                    .order_by(Event.seq).limit(EXPORT_BATCH)
                ))
                if not batch:
                    break
                fh.write("".join(json.dumps(event_doc(r), ensure_ascii=False) + "\n"
                                 for r in batch))
                after, added = batch[-1].seq, added + len(batch)
                session.expunge_all()
            fh.flush()
            os.fsync(fh.fileno())
    return added


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)
