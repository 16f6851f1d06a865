"""The cabinet's side of the fleet, run inside the daemon only when ``[fleet] hub_url`` is
set: a shipper that sends the log and the records this cabinet owns up, and a puller that
long-polls configuration down. Neither is ever on the path of a decision: a tap is decided
from the local database whether the hub answers or not (EN 60839-11-1).

The one point of contact with the cabinet's flow is ``FleetLink.guard_tap``: a tap that
arrives while an answer from the hub is being applied waits for that local write to finish
(milliseconds), so a revocation that has reached the cabinet is in force before the next
tap is decided. It never waits on the network.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
from sqlalchemy import Engine, inspect, or_, select
from sqlalchemy.orm import Session

from kiosk.audit import AppendedEvent
from kiosk.audit.chain import format_time
from kiosk.config import Settings
from kiosk.fleet import report_files, site_settings, state
from kiosk.fleet.apply import apply_changes, apply_pending_moves, config_version
from kiosk.fleet.client import HubClient, HubError
from kiosk.runtime import Runtime
from kiosk.store.models import Alarm, AuditHead, Checkpoint, Event, Handover, IntakeRecord, Loan
from kiosk.store.models_reports import Report
from kiosk.store.types import utcnow

log = logging.getLogger("kiosk.fleet")
CONTACT_EVERY = dt.timedelta(seconds=30)
HEARTBEAT_S = 30.0
"""With nothing new to ship, the shipper still asks the hub's cursor this often (a hub
restored from an older backup is noticed within it)."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date | dt.time | uuid.UUID):
        return str(value)
    if hasattr(value, "value"):  # enums
        return value.value
    return value


def record_body(obj: Any) -> dict[str, Any]:
    return {attr.key: _jsonable(getattr(obj, attr.key))
            for attr in inspect(obj).mapper.column_attrs}


def read_batch(engine: Engine, cabinet_id: str, acked: int, limit: int) -> dict[str, Any]:
    """Events after the hub's cursor (plus the event at the cursor, as an anchor the hub
    compares with its copy), the checkpoints they complete, and the records they made."""
    with Session(engine) as session:
        head = session.get(AuditHead, cabinet_id)
        head_seq, head_hash = (head.seq, head.hash) if head else (0, "0" * 64)
        rows = session.scalars(
            select(Event).where(Event.cabinet_id == cabinet_id, Event.seq >= max(acked, 1),
                                Event.seq <= acked + limit).order_by(Event.seq)).all()
        events = [{"cabinet_id": r.cabinet_id, "seq": r.seq, "at": format_time(r.at),
                   "type": r.type, "actors": r.actors, "slot": r.slot,
                   "key_number": r.key_number, "decision": r.decision, "rules": r.rules,
                   "payload": r.payload, "prev_hash": r.prev_hash, "hash": r.hash}
                  for r in rows]
        last = rows[-1].seq if rows else acked
        checkpoints = [{"seq": c.seq, "head_hash": c.head_hash,
                        "signed_at": c.signed_at.isoformat(), "key_id": c.key_id,
                        "signature": c.signature}
                       for c in session.scalars(select(Checkpoint).where(
                           Checkpoint.cabinet_id == cabinet_id, Checkpoint.seq > acked - 1,
                           Checkpoint.seq <= last))]
        touched = {json.loads(r.payload).get("alarm") for r in rows
                   if r.seq > acked and r.type.startswith("alarm.")} - {None}
        records = _records(session, acked, last, touched) if last > acked else []
    return {"head_seq": head_seq, "head_hash": head_hash, "events": events,
            "checkpoints": checkpoints, "records": records}


def _local_head(engine: Engine, cabinet_id: str) -> tuple[int, str]:
    with Session(engine) as session:
        head = session.get(AuditHead, cabinet_id)
        return (head.seq, head.hash) if head else (0, "0" * 64)


def _records(session: Session, low: int, high: int,
             alarm_ids: set[str]) -> list[dict[str, Any]]:
    """The records whose events are in (low, high]: shipped with the event that made or
    changed them, so the hub's copy is never ahead of the log that explains it. An alarm
    goes again with every ``alarm.*`` event about it (a note, a new state, its owner)."""
    def within(column: Any) -> Any:
        return (column > low) & (column <= high)

    out: list[dict[str, Any]] = []
    for loan in session.scalars(select(Loan).where(or_(within(Loan.draw_event_seq),
                                                       within(Loan.return_event_seq)))):
        out.append({"kind": "loan", "id": str(loan.id), "body": record_body(loan)})
    ids = [uuid.UUID(a) for a in alarm_ids if _is_uuid(a)]
    for alarm in session.scalars(select(Alarm).where(or_(within(Alarm.event_seq),
                                                         Alarm.id.in_(ids)))):
        body = record_body(alarm)
        body["notes"] = [record_body(n) for n in alarm.notes]
        out.append({"kind": "alarm", "id": str(alarm.id), "body": body})
    for intake in session.scalars(select(IntakeRecord).where(within(IntakeRecord.event_seq))):
        out.append({"kind": "intake", "id": str(intake.id), "body": record_body(intake)})
    for handover in session.scalars(select(Handover).where(
            or_(within(Handover.started_seq), within(Handover.accepted_seq)))):
        out.append({"kind": "handover", "id": str(handover.id), "body": record_body(handover)})
    for report in session.scalars(select(Report).where(within(Report.event_seq))):
        # The frozen report data and its SHA-256 (in its chained event); the rendered PDF
        # and CSV files follow once the hub holds the event (``_ship_report_files``).
        out.append({"kind": "report", "id": str(report.id), "body": record_body(report)})
    return out


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


class FleetLink:
    """Shipper, puller and the online/offline state of one enrolled cabinet."""

    def __init__(self, runtime: Runtime, enrolment: state.Enrolment) -> None:
        settings = runtime.settings.fleet
        self.runtime, self.enrolment = runtime, enrolment
        self.settings_listeners: list[Callable[[Settings], None]] = []
        self.batch_size, self.poll_wait_s = settings.batch_size, settings.poll_wait_s
        self.client = HubClient(enrolment, runtime.device_key,
                                verify=str(settings.hub_ca_file) if settings.hub_ca_file
                                else True)
        self.apply_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        previous = state.link_status(runtime.engine)
        self.online = False
        self.offline_since = previous.offline_since if previous else None
        self.last_contact = previous.last_contact if previous else None
        self.shipped_seq = previous.shipped_seq if previous else 0
        self.files_seq = report_files.shipped_up_to(runtime.engine)
        self._saved_contact: dt.datetime | None = None
        self._hub_head: tuple[int, str] | None = None
        self._hub_head_at: float | None = None

    # ------------------------------------------------------------------ the tap hook
    def guard_tap(self, tap: Callable[[str], Coroutine[Any, Any, Any]]
                  ) -> Callable[[str], Coroutine[Any, Any, Any]]:
        """Wrap the cabinet's ``tap``: wait for an answer being applied, never the network."""
        async def guarded(uid: str) -> Any:
            async with self.apply_lock:
                pass
            return await tap(uid)
        return guarded

    # ------------------------------------------------------------------ online state
    async def _contact(self) -> None:
        now = utcnow()
        self.last_contact = now
        if not self.online or self._saved_contact is None or (
                now - self._saved_contact > CONTACT_EVERY):
            if not self.online:
                log.info("hub %s reachable", self.enrolment.hub_url)
                self._reconnected.set()  # the puller asks for changes now, not after backoff
            self.online, self.offline_since, self._saved_contact = True, None, now
            await self._save()

    async def _lost(self, exc: Exception) -> None:
        if self.online or self.offline_since is None:
            log.warning("hub %s unreachable: %s", self.enrolment.hub_url, exc)
            self.online = False
            self.offline_since = self.offline_since or utcnow()
            await self._save()

    async def _save(self) -> None:
        await asyncio.to_thread(state.save_link, self.runtime.engine, online=self.online,
                                offline_since=self.offline_since,
                                last_contact=self.last_contact, shipped_seq=self.shipped_seq)

    # ----------------------------------------------------------------------- shipper
    def _on_event(self, _stored: AppendedEvent) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def ship_forever(self, stop: asyncio.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            try:
                await self._ship_once()
                backoff = 1.0
                self._wake.clear()
                await _wait_any(stop, self._wake, 2.0)
            except httpx.HTTPError as exc:
                self._hub_head = None
                await self._lost(exc)
                await _wait_any(stop, None, backoff)
                backoff = min(backoff * 2, 15.0)
            except HubError as exc:
                self._hub_head = None
                await self._contact()
                if exc.status == 413 and self.batch_size > 1:
                    # A proxy or hub with a smaller body limit: ship in smaller batches.
                    self.batch_size = max(1, self.batch_size // 2)
                    log.warning("hub refused a batch as too large; batches of %d events now",
                                self.batch_size)
                    continue
                log.error("hub refused this cabinet's log: %s", exc)
                await _wait_any(stop, None, 30.0)

    async def _ship_once(self) -> None:
        engine, cabinet_id = self.runtime.engine, self.enrolment.cabinet_id
        if self._hub_head is not None and self._hub_head_at is not None and (
                time.monotonic() - self._hub_head_at < HEARTBEAT_S):
            # Nothing new since the hub last said how far it holds the log: no request (a
            # thousand idle cabinets must not cost the hub 500 requests a second).
            local = await asyncio.to_thread(_local_head, engine, cabinet_id)
            if local == self._hub_head:
                await self._ship_report_files(local[0])
                return
        cursor = await self.client.call("GET", "/cursor")
        await self._contact()
        acked, hub_hash = int(cursor["acked_seq"]), str(cursor["head_hash"])
        self._remember(acked, hub_hash)
        while True:
            batch = await asyncio.to_thread(read_batch, engine, cabinet_id, acked,
                                            self.batch_size)
            if batch["head_seq"] == acked and batch["head_hash"] == hub_hash:
                await self._ship_report_files(acked)
                return
            self._hub_head = None  # until the hub answers this batch
            answer = await self.client.call("POST", "/ingest", batch)
            acked, hub_hash = int(answer["acked_seq"]), str(answer["head_hash"])
            self._remember(acked, hub_hash)
            if acked != self.shipped_seq:
                self.shipped_seq = acked
                await self._save()

    async def _ship_report_files(self, acked: int) -> None:
        """The rendered files of the reports whose ``report.generated`` event the hub holds,
        one signed request per file, in log order; the cursor moves past a report once each
        of its files is answered. A file the hub refuses for good (its hash is not the
        logged one: the hub raised an alarm) is logged here and not sent again, so later
        reports still go up; anything else (the hub away, the record not there yet) stops
        the round and the same report is sent again next time."""
        engine = self.runtime.engine
        if self.files_seq > acked:  # the hub holds less than before: a restored hub
            self.files_seq = acked
        while True:
            found = await asyncio.to_thread(report_files.next_report_files, engine,
                                            self.files_seq, acked)
            if found is None:
                return
            seq, files = found
            for doc in files:
                try:
                    await self.client.call("POST", "/ingest/report-file", doc)
                except HubError as exc:
                    if exc.status not in (409, 413, 422):
                        raise
                    log.error("hub refused %s of report %s: %s", doc["name"], doc["report"],
                              exc)
            self.files_seq = seq
            await asyncio.to_thread(report_files.save_shipped, engine, seq)

    def _remember(self, acked: int, hub_hash: str) -> None:
        self._hub_head, self._hub_head_at = (acked, hub_hash), time.monotonic()

    # ------------------------------------------------------------------------ puller
    async def pull_forever(self, stop: asyncio.Event) -> None:
        backoff = 1.0
        while not stop.is_set():
            try:
                await self.pull_once(wait_s=self.poll_wait_s)
                backoff = 1.0
            except httpx.HTTPError as exc:
                await self._lost(exc)
                self._reconnected.clear()
                await _wait_any(stop, self._reconnected, backoff)
                backoff = min(backoff * 2, 15.0)
            except HubError as exc:
                log.error("hub refused a configuration pull: %s", exc)
                await _wait_any(stop, None, 30.0)

    async def pull_once(self, *, wait_s: float = 0.0) -> int:
        engine = self.runtime.engine

        def cursor() -> int:
            with Session(engine) as session:
                return config_version(session)

        since = await asyncio.to_thread(cursor)
        answer = await self.client.call("GET", f"/changes?since={since}&wait={wait_s:g}",
                                        timeout_s=wait_s + 15)
        await self._contact()
        version, changes = int(answer["version"]), list(answer["changes"])
        if changes or version != since:
            async with self.apply_lock:
                cards = await asyncio.to_thread(apply_changes, self.runtime.audit,
                                                version=version, changes=changes)
            if cards:
                log.info("configuration %d applied; cards changed: %s", version,
                         ", ".join(cards))
            if any(c.get("entity") == site_settings.ENTITY for c in changes):
                self.use_site_settings()
        else:
            async with self.apply_lock:
                await asyncio.to_thread(apply_pending_moves, self.runtime.audit)
        return version

    def use_site_settings(self) -> None:
        """Run with the site's settings just applied: the runtime's settings (read live by
        the PIN flow, the scheduler and reports) and whoever listens (the daemon gives the
        cabinet its new calendar and alarm owners)."""
        runtime = self.runtime
        runtime.settings = site_settings.effective(runtime.file_settings or runtime.settings,
                                                   runtime.engine)
        for listener in self.settings_listeners:
            listener(runtime.settings)

    # ------------------------------------------------------------------------- run
    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self.runtime.audit.listeners.append(self._on_event)
        try:
            await asyncio.gather(self.ship_forever(stop), self.pull_forever(stop))
        finally:
            if self._on_event in self.runtime.audit.listeners:
                self.runtime.audit.listeners.remove(self._on_event)
            await self.client.close()


async def _wait_any(stop: asyncio.Event, other: asyncio.Event | None, timeout: float) -> None:
    """Sleep until ``stop`` (or ``other``) is set, at most ``timeout`` seconds."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if other is not None:
        waiters.append(asyncio.ensure_future(other.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
