"""The notification dispatcher: route new events into the outbox, send what is due.

It runs as an asyncio task of the daemon (``run_notifications``), next to the scheduler.
Database work is short and runs on the loop like the cabinet's own; every send (SMTP
dialogue, HTTP POST) runs in a worker thread via ``asyncio.to_thread``, so a slow or dead
receiver never blocks the loop that drives the locks. No transaction is open while a
message is on the wire: the due deliveries are read, sent, and each outcome is recorded in
a short write transaction of its own.

Between polls the dispatcher sleeps ``poll_s``, but an event committed in this process
that some route wants wakes it at once (an ``AuditLog`` listener), so an alarm email
leaves within a second rather than a poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from kiosk.audit import AppendedEvent
from kiosk.config import Settings
from kiosk.errors import Conflict
from kiosk.notify import outbox
from kiosk.notify.email import send_email
from kiosk.notify.message import EventView, Message, render
from kiosk.notify.outcome import Outcome, short
from kiosk.notify.robots import send_dingtalk, send_wecom
from kiosk.notify.routing import Channel, targets_for
from kiosk.notify.settings import NotificationSettings
from kiosk.notify.webhook import body_of, send_webhook
from kiosk.runtime import Runtime
from kiosk.services import tx
from kiosk.store.models import Event, Person
from kiosk.store.types import utcnow

log = logging.getLogger("kiosk.notify")

Clock = Callable[[], dt.datetime]
Jitter = Callable[[], float]
SEND_BATCH = 32
"""Due deliveries taken per tick; the rest wait for the next tick."""
CONCURRENCY = 4
"""Sends in flight at once: one slow receiver does not hold up the others."""


@dataclass(frozen=True)
class SendJob:
    """What a worker thread needs to send one delivery (no ORM objects cross threads)."""

    delivery_id: uuid.UUID
    channel: Channel
    target: str
    event: EventView
    mobiles: tuple[str, ...] = ()
    """Mobile numbers a robot message @-mentions (the borrower of a due-soon reminder)."""


class Dispatcher:
    """Routes and sends the notifications of one cabinet (``settings.cabinet_id``)."""

    def __init__(self, runtime: Runtime, *, clock: Clock = utcnow,
                 jitter: Jitter = random.random) -> None:
        self.runtime = runtime
        self.audit = runtime.audit
        self.options = runtime.settings.notifications
        self.cabinet_id = runtime.settings.cabinet_id
        self.cabinet_name = runtime.settings.cabinet_name
        self.zone = runtime.settings.zone
        self.clock = clock
        self.jitter = jitter
        self.backoff = outbox.Backoff(self.options.backoff_initial_s, self.options.backoff_max_s)

    def wants(self, event_type: str) -> bool:
        """Whether some route sends events of this type (cheap: used to wake the loop)."""
        return bool(targets_for(event_type, self.options.routes))

    # ------------------------------------------------------------------------ routing
    def route(self) -> int:
        """Route every event after the cursor into the outbox; returns deliveries queued."""
        queued = 0
        while True:
            with tx.write(self.audit) as session:
                routed = outbox.route_new(session, cabinet_id=self.cabinet_id,
                                          routes=self.options.routes, now=self.clock())
            queued += routed.deliveries
            if routed.events < outbox.ROUTE_BATCH:
                return queued

    # ------------------------------------------------------------------------ sending
    def _jobs(self) -> list[SendJob]:
        with tx.read(self.audit) as session:
            rows = outbox.due(session, cabinet_id=self.cabinet_id, now=self.clock(),
                              limit=SEND_BATCH)
            seqs = {row.event_seq for row in rows}
            events = {
                e.seq: EventView.of(e) for e in session.scalars(
                    select(Event).where(Event.cabinet_id == self.cabinet_id, Event.seq.in_(seqs))
                )
            } if seqs else {}
            mobiles = _mentions(session, events.values())
            return [SendJob(row.id, row.channel, row.target, events[row.event_seq],  # type: ignore[arg-type]
                            mobiles.get(row.event_seq, ()))
                    for row in rows]

    def send_one(self, job: SendJob) -> Outcome:
        """Send one delivery (blocking: call it in a worker thread). Never raises."""
        try:
            message = render(job.event, zone=self.zone, cabinet_name=self.cabinet_name,
                             console_base=self.options.console_base)
            delivery = str(job.delivery_id)
            if job.channel in ("wecom", "dingtalk"):
                return send_robot(self.options, job.channel, job.target, message,
                                  now=self.clock(), mobiles=job.mobiles)
            if job.channel == "email":
                if self.options.smtp is None:
                    return Outcome(False, True, error="no [notifications.smtp] is configured")
                return send_email(self.options.smtp, to=job.target, message=message,
                                  event_type=job.event.type, delivery_id=delivery)
            hook = self.options.webhooks.get(job.target)
            if hook is None:
                return Outcome(False, True,
                               error=f"webhook {job.target!r} is no longer configured")
            body = body_of(delivery_id=delivery, event=job.event, message=message,
                           cabinet_name=self.cabinet_name)
            return send_webhook(hook, body=body, event_type=job.event.type,
                                delivery_id=delivery, timestamp=int(self.clock().timestamp()))
        except Exception as exc:  # a bug or an odd payload must not kill the dispatcher
            log.exception("notification %s could not be sent", job.delivery_id)
            return Outcome(False, False, error=short(exc))

    def record(self, job: SendJob, outcome: Outcome) -> None:
        try:
            with tx.write(self.audit) as session:
                delivery = outbox.record_attempt(
                    session, self.audit, delivery_id=job.delivery_id, outcome=outcome,
                    now=self.clock(), max_attempts=self.options.max_attempts,
                    backoff=self.backoff, jitter=self.jitter(),
                )
                state, attempts = delivery.state, delivery.attempts
        except Conflict as exc:
            log.warning("notification %s: outcome not recorded: %s", job.delivery_id, exc)
            return
        level = logging.INFO if state != "failed" else logging.WARNING
        log.log(level, "notification %s (%s %s, event #%s %s) attempt %s: %s -> %s",
                job.delivery_id, job.channel, job.target, job.event.seq, job.event.type,
                attempts, outcome.describe(), state)

    async def send_due(self) -> int:
        """Send every due delivery (up to ``SEND_BATCH``); returns how many were attempted."""
        jobs = self._jobs()
        if not jobs:
            return 0
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(job: SendJob) -> None:
            async with gate:
                outcome = await asyncio.to_thread(self.send_one, job)
            self.record(job, outcome)

        await asyncio.gather(*(one(job) for job in jobs))
        return len(jobs)

    async def tick(self) -> tuple[int, int]:
        """Route new events, then send what is due: (queued, attempted)."""
        try:
            queued = self.route()
        except (IntegrityError, OperationalError) as exc:
            # Another dispatcher placed the first cursor, or the database was busy: the
            # transaction rolled back whole; the next tick routes the same events.
            log.warning("notification routing deferred: %s", short(exc))
            queued = 0
        return queued, await self.send_due()

    async def drain(self, *, rounds: int = 10) -> None:
        """Tick until nothing is due now (tests, and ``kiosk notify`` one-shot use)."""
        for _ in range(rounds):
            queued, attempted = await self.tick()
            if not queued and not attempted:
                return


async def run_notifications(
    runtime: Runtime, *, stop: asyncio.Event, clock: Clock = utcnow,
    jitter: Jitter = random.random,
) -> None:
    """The daemon's notification task: tick every ``poll_s`` (or when woken) until ``stop``.

    A failing tick is logged and retried at the next one, like the scheduler's: a database
    hiccup must not end notifications for the rest of the daemon's life.
    """
    options = runtime.settings.notifications
    if not options.active:
        await stop.wait()
        return
    dispatcher = Dispatcher(runtime, clock=clock, jitter=jitter)
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def on_event(stored: AppendedEvent) -> None:
        if dispatcher.wants(stored.type):
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(wake.set)

    runtime.audit.listeners.append(on_event)
    log.info("notifications: %d route(s), %d webhook(s), email %s", len(options.routes),
             len(options.webhooks), "on" if options.smtp else "off")
    try:
        while not stop.is_set():
            wake.clear()
            try:
                await dispatcher.tick()
            except Exception:
                log.exception("notification tick failed; retrying in %ss", options.poll_s)
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=options.poll_s,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
    finally:
        with contextlib.suppress(ValueError):
            runtime.audit.listeners.remove(on_event)


def _mentions(session: Session, events: Iterable[EventView]) -> dict[int, tuple[str, ...]]:
    """The borrower's mobile number for each due-soon reminder, read when it is sent (the
    number is kept out of the audit log)."""
    wanted = {e.seq: e.payload.get("borrower") for e in events if e.type == "loan.due_soon"}
    ids = {uuid.UUID(str(v)) for v in wanted.values() if v}
    if not ids:
        return {}
    phones = dict(session.execute(select(Person.id, Person.phone).where(Person.id.in_(ids))).all())
    found: dict[int, tuple[str, ...]] = {}
    for seq, person in wanted.items():
        phone = phones.get(uuid.UUID(str(person))) if person else None
        if phone:
            found[seq] = (phone.replace(" ", ""),)
    return found


def send_robot(options: NotificationSettings, channel: Channel, name: str, message: Message,
               *, now: dt.datetime, mobiles: Sequence[str] = ()) -> Outcome:
    """One message to a configured WeCom or DingTalk robot (blocking)."""
    if channel == "wecom":
        wecom = options.wecom.get(name)
        if wecom is None:
            return Outcome(False, True, error=f"wecom robot {name!r} is no longer configured")
        return send_wecom(wecom, message, mobiles=mobiles)
    dingtalk = options.dingtalk.get(name)
    if dingtalk is None:
        return Outcome(False, True, error=f"dingtalk robot {name!r} is no longer configured")
    return send_dingtalk(dingtalk, message, timestamp_ms=int(now.timestamp() * 1000),
                         mobiles=mobiles)


def sample_event(cabinet_id: str, now: dt.datetime) -> EventView:
    """The synthetic event a ``kiosk notify test`` message describes (not in the log)."""
    return EventView(
        cabinet_id=cabinet_id, seq=0, at=now, type="notification.test", actors=["console"],
        slot=None, key_number=None, decision=None, rules=[],
        payload={"message": "测试通知：配置正确时您会收到此消息。 "
                            "Test notification: you receive this when the setup works."},
        hash="",
    )


def send_test(
    settings: Settings, *, email: str | None = None, webhook: str | None = None,
    wecom: str | None = None, dingtalk: str | None = None, now: dt.datetime | None = None,
) -> Outcome:
    """Send a test message to one address or one configured webhook now, outside the
    outbox and without the database (an installer checks the server settings); blocking."""
    options = settings.notifications
    at = now or utcnow()
    event = sample_event(settings.cabinet_id, at)
    delivery = f"test-{uuid.uuid4()}"
    message = render(event, zone=settings.zone, cabinet_name=settings.cabinet_name)
    if wecom is not None:
        return send_robot(options, "wecom", wecom, message, now=at)
    if dingtalk is not None:
        return send_robot(options, "dingtalk", dingtalk, message, now=at)
    if email is not None:
        if options.smtp is None:
            return Outcome(False, True, error="no [notifications.smtp] section is configured")
        return send_email(options.smtp, to=email, message=message, event_type=event.type,
                          delivery_id=delivery)
    if webhook is None:
        raise ValueError("give an email address or a webhook name")
    hook = options.webhooks.get(webhook)
    if hook is None:
        known = ", ".join(sorted(options.webhooks)) or "none"
        return Outcome(False, True, error=f"no webhook {webhook!r} (configured: {known})")
    body = body_of(delivery_id=delivery, event=event, message=message,
                   cabinet_name=settings.cabinet_name)
    return send_webhook(hook, body=body, event_type=event.type, delivery_id=delivery,
                        timestamp=int(at.timestamp()))
