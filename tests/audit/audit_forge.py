"""What a forger with write access to the database (but not the device key) can do.

Shared by the tamper tests: each function is one step of a realistic attack on the
SQLite or PostgreSQL file, done with plain SQL or the public hash function, never through
the product's own writing code.
"""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from kiosk.audit import NewEvent
from kiosk.audit.chain import event_hash
from kiosk.runtime import Runtime
from kiosk.store.models import AuditHead, Event


def fill(runtime: Runtime, n: int = 10) -> None:
    """``n`` realistic events through the log's own append."""
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


def sql(runtime: Runtime, statement: str, **params: object) -> None:
    with runtime.engine.begin() as conn:
        conn.execute(text(statement), params)


def rehash(row: Event) -> str:
    return event_hash(
        cabinet_id=row.cabinet_id, seq=row.seq, at=row.at, type=row.type, actors=row.actors,
        slot=row.slot, key_number=row.key_number, decision=row.decision, rules=row.rules,
        payload=row.payload, prev_hash=row.prev_hash,
    )


def edit_and_rehash_row(runtime: Runtime, seq: int, payload: str) -> None:
    """Edit one row and recompute its own hash (no key needed), leaving the rows after it."""
    with Session(runtime.engine) as s:
        row = s.get(Event, (runtime.settings.cabinet_id, seq))
        assert row is not None
        row.payload = payload
        row.hash = rehash(row)
        s.commit()


def edit_and_rechain(runtime: Runtime, seq: int, payload: str) -> None:
    """Edit row ``seq`` and recompute every later hash and link, and the head record, so
    the chain itself is intact again: the attack of issue 16 item 4."""
    with Session(runtime.engine) as s:
        rows = s.scalars(select(Event).where(Event.seq >= seq).order_by(Event.seq)).all()
        prev = rows[0].prev_hash
        for row in rows:
            if row.seq == seq:
                row.payload = payload
            row.prev_hash = prev
            row.hash = prev = rehash(row)
        head = s.get(AuditHead, runtime.settings.cabinet_id)
        assert head is not None
        head.hash = prev
        s.commit()
