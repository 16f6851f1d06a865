"""The cabinet's keys kept in memory for the tap path, invalidated by the writes that change them.

Why: a badge tap lists every key of the cabinet with why it can or cannot be drawn now. On
a large site (2,000 keys, 50,000 loans, 1,000,000 events) loading those keys through the
ORM each tap took tens of milliseconds; the aim is 5 ms from tap to list (issue 15, item 1).
The keys, their groups, units and slots change rarely, and every change is a logged event,
so the facts are loaded once (core SQL, no ORM objects) and kept until an event says they
may have changed:

* a draw or a return recorded (``ONE_KEY_EVENTS``: they create or close one loan of the key
  the event names, and a return may move that key's home) re-reads that one key and its
  loan at the next tap, well under a millisecond; reloading all 2,000 keys took over 100 ms
  on the large site, and every visit that ends with a key drawn or returned would have
  made the next person wait for it;
* every other event the log's listeners hear (the cabinet's writer thread, the admin API,
  the fleet link, all in this process) marks the facts stale, except event types that
  cannot change a key or a loan (``UNCHANGING_*``): a denial or an intent does not;
* a write by another process (``kiosk import`` on the command line) is seen by the audit
  head having moved past the last event heard here: one primary-key read per tap.

``commit_mark`` answers a narrower question for the draw flow, which decides a choice from
what it read for the person's list (issue 15): has *anything* been committed to the
database since, by any connection, with an event or without? On SQLite that is ``PRAGMA
data_version`` on one connection kept for it (a few microseconds, no read of any table).

A tap reads everything it needs from one ``Snapshot`` (one freshness check, not one per
question), and the keys a person may be offered come grouped by standing
(``policy.Standings``), so the policy decides one key of each standing per tap.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, select

from kiosk import policy
from kiosk.audit import AppendedEvent, AuditLog
from kiosk.store.db import is_sqlite
from kiosk.store.models import AuditHead, Key, KeyGroup, KeyStatus, Loan, Person, Slot, Unit

log = logging.getLogger("kiosk.cabinet")

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

ONE_KEY_EVENTS = frozenset({"key.drawn", "key.returned", "draw.resolved", "return.resolved"})
"""Events written by the one loan write path (``records.record_loan``/``record_return``):
each opens or closes a loan of the key it names and, on a return to another slot, moves
that key's home (``records.rehome``); no other key changes. Only that key is re-read."""


def unchanging(event_type: str) -> bool:
    return event_type.startswith(UNCHANGING_PREFIXES) or event_type.endswith(UNCHANGING_SUFFIXES)


@dataclass(frozen=True)
class Snapshot:
    """The cabinet's keys as of one freshness check. Never changed once made: a change
    makes a new one (plain dicts, not read-only proxies, because the tap reads them 2,000
    times and a proxy's lookups cost a third more)."""

    keys: Mapping[uuid.UUID, policy.KeyFacts]
    by_number: Mapping[str, uuid.UUID]
    by_fob: Mapping[str, uuid.UUID]
    holders: Mapping[uuid.UUID, policy.Holder]
    """Key id → who has it out (``records.loans_out`` of this cabinet)."""
    awaiting: frozenset[uuid.UUID]
    """Keys imported with a home slot here and never hung yet (stocking, K1/K2)."""
    offered: policy.Standings
    """The active keys in the cabinet (not awaiting stocking), grouped by standing: what a
    badge tap decides."""
    places: Mapping[uuid.UUID, int]
    """Key id → its index in ``offered.keys`` (a draw's key is replaced there in place)."""

    def key(self, key_number: str) -> policy.KeyFacts | None:
        key_id = self.by_number.get(key_number)
        return self.keys.get(key_id) if key_id is not None else None


def _offered(keys: Mapping[uuid.UUID, policy.KeyFacts],
             awaiting: set[uuid.UUID]) -> list[policy.KeyFacts]:
    return [k for k in keys.values()
            if k.status == KeyStatus.ACTIVE.value and k.id not in awaiting]


def _snapshot(keys: dict[uuid.UUID, policy.KeyFacts], awaiting: set[uuid.UUID],
              holders: dict[uuid.UUID, policy.Holder], fobs: dict[uuid.UUID, str],
              patched: tuple[policy.Standings, Mapping[uuid.UUID, int]] | None = None,
              by_number: dict[str, uuid.UUID] | None = None,
              by_fob: dict[str, uuid.UUID] | None = None) -> Snapshot:
    if patched is None:
        offered = policy.standings(_offered(keys, awaiting))
        places: Mapping[uuid.UUID, int] = {key.id: i for i, key in enumerate(offered.keys)}
    else:
        offered, places = patched
    return Snapshot(
        keys=keys,
        by_number=by_number if by_number is not None
        else {k.key_number: k.id for k in keys.values()},
        by_fob=by_fob if by_fob is not None else {fob: key_id for key_id, fob in fobs.items()},
        holders=holders,
        awaiting=frozenset(awaiting),
        offered=offered,
        places=places,
    )


def _patched(before: Snapshot, keys: Mapping[uuid.UUID, policy.KeyFacts],
             awaiting: set[uuid.UUID], changed: set[uuid.UUID],
             ) -> tuple[policy.Standings, Mapping[uuid.UUID, int]] | None:
    """``before.offered`` with the ``changed`` keys replaced in place, if each is still
    offered with the same standing (a draw or a return changes only whether the key is
    out); None when the grouping itself changed and must be made again. Grouping 2,000
    keys again after every draw took 10 ms of the next badge's 5 (issue 15)."""
    offered, where = before.offered, before.places
    listed, firsts = list(offered.keys), list(offered.firsts)
    for key_id in changed:
        new = keys.get(key_id)
        will = new is not None and new.status == KeyStatus.ACTIVE.value \
            and key_id not in awaiting
        if key_id not in where:
            if will:
                return None  # newly offered here: it needs its place in a group
            continue
        old = listed[where[key_id]]
        if new is None or not will or policy.standing(new) != policy.standing(old):
            return None
        listed[where[key_id]] = new
        group = offered.classes[where[key_id]]
        if firsts[group].id == key_id:
            firsts[group] = new
    return policy.Standings(tuple(listed), offered.classes, tuple(firsts)), where


class CabinetFacts:
    """The keys whose home is a slot of one cabinet, with who has each one out."""

    def __init__(self, engine: Engine, audit: AuditLog, cabinet_id: uuid.UUID) -> None:
        self.engine = engine
        self.audit = audit
        self.cabinet_id = cabinet_id
        self._lock = threading.Lock()  # the listener runs in whichever thread committed
        self._stale = True
        self._heard = 0
        self._dirty: set[str] = set()  # key numbers whose one key must be re-read
        self._keys: dict[uuid.UUID, policy.KeyFacts] = {}
        self._awaiting: set[uuid.UUID] = set()
        self._holders: dict[uuid.UUID, policy.Holder] = {}
        self._fobs: dict[uuid.UUID, str] = {}
        self._snapshot: Snapshot | None = None
        k, lo = Key.__table__, Loan.__table__
        # built once: a draw's re-read must not pay for building its statements (issue 15)
        self._some_keys = self._key_query().where(
            k.c.key_number.in_(bindparam("numbers", expanding=True)))
        self._their_loans = self._loan_query().where(
            lo.c.key_id.in_(bindparam("ids", expanding=True)))
        self._mark_connection: Any = None  # kept for commit_mark (SQLite only)
        audit.listeners.append(self._heard_event)

    def close(self) -> None:
        if self._heard_event in self.audit.listeners:
            self.audit.listeners.remove(self._heard_event)
        self._drop_mark_connection()

    def commit_mark(self) -> int | None:
        """A number that changes whenever any other connection commits to the database
        (SQLite's ``data_version``); None where it cannot be told (PostgreSQL, a failed
        read). Called from the loop only."""
        if not is_sqlite(self.engine):
            return None
        try:
            if self._mark_connection is None:
                self._mark_connection = self.engine.raw_connection()
            cursor = self._mark_connection.cursor()
            try:
                cursor.execute("PRAGMA data_version")
                return int(cursor.fetchone()[0])
            finally:
                cursor.close()
        except Exception as exc:  # unknown: the caller reads afresh
            log.info("commit mark unavailable: %s", exc)
            self._drop_mark_connection()
            return None

    def _drop_mark_connection(self) -> None:
        connection, self._mark_connection = self._mark_connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    # ------------------------------------------------------------------ invalidation
    def _heard_event(self, stored: AppendedEvent) -> None:
        with self._lock:
            if stored.seq > self._heard + 1:
                self._stale = True  # events not heard here (another process)
            elif stored.type in ONE_KEY_EVENTS and stored.key_number:
                self._dirty.add(stored.key_number)
            elif not unchanging(stored.type):
                self._stale = True
            self._heard = max(self._heard, stored.seq)

    # ------------------------------------------------------------------------ reads
    @property
    def heard(self) -> int:
        """The last sequence number the log's listeners told this process about (no read)."""
        with self._lock:
            return self._heard

    def snapshot(self) -> Snapshot:
        """Everything the tap path asks, fresh as of now (one audit-head read)."""
        with self.engine.connect() as conn:
            head = conn.execute(select(AuditHead.seq).where(
                AuditHead.cabinet_id == self.audit.cabinet_id)).scalar() or 0
            return self.snapshot_at(conn, head)

    def snapshot_at(self, conn: Any, head: int) -> Snapshot:
        """``snapshot`` in a caller's read transaction, which has read the log's ``head``
        already: a badge tap reads the person's rights and the keys in one transaction, one
        head read for both (issue 15: each read and each connection costs the tap)."""
        with self._lock:
            full = self._stale or head > self._heard or self._snapshot is None
            dirty, self._dirty = self._dirty, set()
            self._stale = False  # an event heard from now on marks it stale again
            self._heard = max(self._heard, head)
            current = self._snapshot
        if full:
            self._load(conn)
        elif dirty:
            self._reload_keys(conn, dirty)
        elif current is not None:
            return current
        with self._lock:
            assert self._snapshot is not None
            return self._snapshot

    def keys(self) -> list[policy.KeyFacts]:
        """Every active key of the cabinet (``records.cabinet_keys``, from memory)."""
        return [k for k in self.snapshot().keys.values() if k.status == KeyStatus.ACTIVE.value]

    def awaiting(self) -> frozenset[uuid.UUID]:
        """Keys imported with a home slot here and never hung yet (stocking, K1/K2)."""
        return self.snapshot().awaiting

    def holders(self) -> dict[uuid.UUID, policy.Holder]:
        """Key id → who has it out (``records.loans_out`` of this cabinet, from memory)."""
        return dict(self.snapshot().holders)

    def by_number(self, key_number: str) -> policy.KeyFacts | None:
        return self.snapshot().key(key_number)

    def by_fob(self, fob: str) -> policy.KeyFacts | None:
        snap = self.snapshot()
        key_id = snap.by_fob.get(fob.upper())
        return snap.keys.get(key_id) if key_id is not None else None

    # ------------------------------------------------------------------------ loads
    def _key_query(self) -> Any:
        k, s, g, u = Key.__table__, Slot.__table__, KeyGroup.__table__, Unit.__table__
        return (
            select(k.c.id, k.c.key_number, k.c.label, k.c.group_id, g.c.requires_cosign,
                   g.c.loan_minutes, k.c.status, s.c.number, k.c.unit_id, u.c.special,
                   u.c.floor, k.c.fob_tag, k.c.awaiting_stock)
            .select_from(k.join(s, k.c.home_slot_id == s.c.id)
                         .join(g, k.c.group_id == g.c.id)
                         .outerjoin(u, k.c.unit_id == u.c.id))
            .where(s.c.cabinet_id == self.cabinet_id)
        )

    @staticmethod
    def _loan_query() -> Any:
        lo, p = Loan.__table__, Person.__table__
        return (select(lo.c.key_id, lo.c.cabinet_id, lo.c.borrower_id, p.c.name, lo.c.due_at)
                .select_from(lo.join(p, lo.c.borrower_id == p.c.id))
                .where(lo.c.returned_at.is_(None)))

    def _key_facts(self, r: Any, out: set[uuid.UUID]) -> policy.KeyFacts:
        status = r.status.value if isinstance(r.status, KeyStatus) else str(r.status)
        return policy.KeyFacts(
            id=r.id, key_number=r.key_number, label=r.label, group_id=r.group_id,
            requires_cosign=bool(r.requires_cosign), loan_minutes=r.loan_minutes,
            status=status, on_loan=r.id in out, home_slot=r.number, unit_id=r.unit_id,
            special=bool(r.special), floor=r.floor,
        )

    def _load(self, conn: Any) -> None:
        rows = conn.execute(self._key_query()).all()
        loans = conn.execute(self._loan_query()).all()
        out = {row.key_id for row in loans}
        keys: dict[uuid.UUID, policy.KeyFacts] = {}
        fobs: dict[uuid.UUID, str] = {}
        awaiting: set[uuid.UUID] = set()
        for r in rows:
            if r.awaiting_stock:
                awaiting.add(r.id)
            keys[r.id] = self._key_facts(r, out)
            if r.fob_tag:
                fobs[r.id] = r.fob_tag.upper()
        holders = {row.key_id: policy.Holder(row.borrower_id, row.name, row.due_at)
                   for row in loans if row.cabinet_id == self.cabinet_id}
        snap = _snapshot(keys, awaiting, holders, fobs)
        with self._lock:
            self._keys, self._awaiting, self._holders, self._fobs = keys, awaiting, holders, fobs
            self._snapshot = snap

    def _reload_keys(self, conn: Any, numbers: set[str]) -> None:
        """Re-read the keys ``numbers`` and their open loans only (``ONE_KEY_EVENTS``)."""
        rows = conn.execute(self._some_keys, {"numbers": sorted(numbers)}).all()
        with self._lock:
            keys, awaiting = dict(self._keys), set(self._awaiting)
            holders, fobs = dict(self._holders), dict(self._fobs)
            before = self._snapshot
        assert before is not None  # a full load came first
        by_number, by_fob = dict(before.by_number), dict(before.by_fob)
        old_ids = {before.by_number[n] for n in numbers if n in before.by_number}
        for gone in old_ids:
            key = keys.pop(gone, None)  # moved to another cabinet, or re-read just below
            if key is not None:
                by_number.pop(key.key_number, None)
            awaiting.discard(gone)
            holders.pop(gone, None)
            fob = fobs.pop(gone, None)
            if fob is not None:
                by_fob.pop(fob, None)
        ids = [r.id for r in rows]
        loans = conn.execute(self._their_loans, {"ids": ids}).all() if ids else []
        out = {row.key_id for row in loans}
        for r in rows:
            if r.awaiting_stock:
                awaiting.add(r.id)
            keys[r.id] = self._key_facts(r, out)
            by_number[r.key_number] = r.id
            if r.fob_tag:
                fobs[r.id] = r.fob_tag.upper()
                by_fob[fobs[r.id]] = r.id
        holders.update({row.key_id: policy.Holder(row.borrower_id, row.name, row.due_at)
                        for row in loans if row.cabinet_id == self.cabinet_id})
        snap = _snapshot(keys, awaiting, holders, fobs,
                         patched=_patched(before, keys, awaiting, set(ids) | old_ids),
                         by_number=by_number, by_fob=by_fob)
        with self._lock:
            self._keys, self._awaiting, self._holders, self._fobs = keys, awaiting, holders, fobs
            self._snapshot = snap
