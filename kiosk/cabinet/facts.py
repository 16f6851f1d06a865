"""The cabinet's keys kept in memory for the tap path, invalidated by the writes that change them.

Why: a badge tap lists every key of the cabinet with why it can or cannot be drawn now. On
a large site (2,000 keys, 50,000 loans, 1,000,000 events) loading those keys through the
ORM each tap took tens of milliseconds; the aim is 5 ms from tap to list (issue 15, item 1).
The keys, their groups, units and slots change rarely, and every change is a logged event,
so the facts are loaded once (core SQL, no ORM objects) and kept until an event says they
may have changed:

* every event the log's listeners hear (the cabinet's writer thread, the admin API, the
  fleet link, all in this process) marks the facts stale, except event types that cannot
  change a key or a loan (``UNCHANGING_*``): a draw or a return recorded makes the next tap
  reload (once, about as long as one tap took before), a denial or an intent does not;
* a write by another process (``kiosk import`` on the command line) is seen by the audit
  head having moved past the last event heard here: one primary-key read per tap.
"""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import Engine, select

from kiosk import policy
from kiosk.audit import AppendedEvent, AuditLog
from kiosk.store.models import AuditHead, Key, KeyGroup, KeyStatus, Loan, Person, Slot, Unit

UNCHANGING_PREFIXES = (
    "access.denied", "alarm.", "auth.", "account.", "card.", "approval.", "handover.",
    "daemon.", "hub.", "reader.", "lock.bus", "night.", "notification.", "report.",
    "audit.", "token.", "owner.", "authorization.", "roster.", "remote_unlock.",
    "cabinet.started", "cabinet.stopped", "count.daily", "fleet.", "demo.loaded",
)
UNCHANGING_SUFFIXES = (".intent", ".abandoned", ".not_taken", ".wrong_key", "unlock.failed")
"""Event types that never change a key, its group, unit or slot, or a loan; any other event
(including one added later) makes the facts stale. Cards, people, rights, approvals and
authorizations are not kept here: the tap reads them fresh."""


def unchanging(event_type: str) -> bool:
    return event_type.startswith(UNCHANGING_PREFIXES) or event_type.endswith(UNCHANGING_SUFFIXES)


class CabinetFacts:
    """The keys whose home is a slot of one cabinet, with who has each one out."""

    def __init__(self, engine: Engine, audit: AuditLog, cabinet_id: uuid.UUID) -> None:
        self.engine = engine
        self.audit = audit
        self.cabinet_id = cabinet_id
        self._lock = threading.Lock()  # the listener runs in whichever thread committed
        self._stale = True
        self._heard = 0
        self._keys: dict[uuid.UUID, policy.KeyFacts] = {}
        self._by_number: dict[str, uuid.UUID] = {}
        self._by_fob: dict[str, uuid.UUID] = {}
        self._holders: dict[uuid.UUID, policy.Holder] = {}
        self._awaiting: frozenset[uuid.UUID] = frozenset()
        audit.listeners.append(self._heard_event)

    def close(self) -> None:
        if self._heard_event in self.audit.listeners:
            self.audit.listeners.remove(self._heard_event)

    # ------------------------------------------------------------------ invalidation
    def _heard_event(self, stored: AppendedEvent) -> None:
        with self._lock:
            if stored.seq > self._heard + 1 or not unchanging(stored.type):
                self._stale = True  # a change, or events not heard here (another process)
            self._heard = max(self._heard, stored.seq)

    # ------------------------------------------------------------------------ reads
    def keys(self) -> list[policy.KeyFacts]:
        """Every active key of the cabinet (``records.cabinet_keys``, from memory)."""
        self._fresh()
        return [k for k in self._keys.values() if k.status == KeyStatus.ACTIVE.value]

    def awaiting(self) -> frozenset[uuid.UUID]:
        """Keys imported with a home slot here and never hung yet (stocking, K1/K2)."""
        self._fresh()
        return self._awaiting

    def holders(self) -> dict[uuid.UUID, policy.Holder]:
        """Key id → who has it out (``records.loans_out`` of this cabinet, from memory)."""
        self._fresh()
        return dict(self._holders)

    def by_number(self, key_number: str) -> policy.KeyFacts | None:
        self._fresh()
        key_id = self._by_number.get(key_number)
        return self._keys.get(key_id) if key_id is not None else None

    def by_fob(self, fob: str) -> policy.KeyFacts | None:
        self._fresh()
        key_id = self._by_fob.get(fob.upper())
        return self._keys.get(key_id) if key_id is not None else None

    def _fresh(self) -> None:
        with self.engine.connect() as conn:
            head = conn.execute(select(AuditHead.seq).where(
                AuditHead.cabinet_id == self.audit.cabinet_id)).scalar() or 0
            with self._lock:
                if not self._stale and head <= self._heard:
                    return
                self._stale = False  # an event heard from now on marks it stale again
                self._heard = max(self._heard, head)
            self._load(conn)

    def _load(self, conn: object) -> None:
        k, s, g, u = Key.__table__, Slot.__table__, KeyGroup.__table__, Unit.__table__
        rows = conn.execute(  # type: ignore[attr-defined]
            select(k.c.id, k.c.key_number, k.c.label, k.c.group_id, g.c.requires_cosign,
                   g.c.loan_minutes, k.c.status, s.c.number, k.c.unit_id, u.c.special,
                   u.c.floor, k.c.fob_tag, k.c.awaiting_stock)
            .select_from(k.join(s, k.c.home_slot_id == s.c.id)
                         .join(g, k.c.group_id == g.c.id)
                         .outerjoin(u, k.c.unit_id == u.c.id))
            .where(s.c.cabinet_id == self.cabinet_id)
        ).all()
        lo, p = Loan.__table__, Person.__table__
        loans = conn.execute(  # type: ignore[attr-defined]
            select(lo.c.key_id, lo.c.cabinet_id, lo.c.borrower_id, p.c.name, lo.c.due_at)
            .select_from(lo.join(p, lo.c.borrower_id == p.c.id))
            .where(lo.c.returned_at.is_(None))
        ).all()
        out = {row.key_id for row in loans}
        keys: dict[uuid.UUID, policy.KeyFacts] = {}
        by_number: dict[str, uuid.UUID] = {}
        by_fob: dict[str, uuid.UUID] = {}
        awaiting: set[uuid.UUID] = set()
        for r in rows:
            if r.awaiting_stock:
                awaiting.add(r.id)
            status = r.status.value if isinstance(r.status, KeyStatus) else str(r.status)
            keys[r.id] = policy.KeyFacts(
                id=r.id, key_number=r.key_number, label=r.label, group_id=r.group_id,
                requires_cosign=bool(r.requires_cosign), loan_minutes=r.loan_minutes,
                status=status, on_loan=r.id in out, home_slot=r.number, unit_id=r.unit_id,
                special=bool(r.special), floor=r.floor,
            )
            by_number[r.key_number] = r.id
            if r.fob_tag:
                by_fob[r.fob_tag.upper()] = r.id
        holders = {row.key_id: policy.Holder(row.borrower_id, row.name, row.due_at)
                   for row in loans if row.cabinet_id == self.cabinet_id}
        with self._lock:
            self._keys, self._by_number, self._by_fob = keys, by_number, by_fob
            self._awaiting = frozenset(awaiting)
            self._holders = holders
