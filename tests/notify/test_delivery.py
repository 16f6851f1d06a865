"""Notifications end to end: real events through the real services, a real SMTP server
(aiosmtpd) and a real HTTP receiver on loopback, time driven by an injected clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from sqlalchemy import select

from kiosk.audit import NewEvent
from kiosk.notify.dispatcher import Dispatcher, run_notifications
from kiosk.notify.webhook import verify_signature
from kiosk.runtime import Runtime
from kiosk.services import alarms, tx
from kiosk.store.models import Event
from kiosk.store.models_notify import NotificationAttempt, NotificationDelivery
from tests.notify.conftest import (
    SECRET,
    Clock,
    OpenRuntime,
    Receiver,
    SmtpServer,
    add_key,
    webhook_section,
)

ALWAYS = 1.0
"""Jitter at its top: each wait is exactly the un-jittered backoff."""


def deliveries(runtime: Runtime) -> list[NotificationDelivery]:
    with tx.read(runtime.audit) as session:
        return list(session.scalars(
            select(NotificationDelivery).order_by(NotificationDelivery.event_seq,
                                                  NotificationDelivery.channel)))


def attempts_of(runtime: Runtime, delivery: NotificationDelivery) -> list[NotificationAttempt]:
    with tx.read(runtime.audit) as session:
        return list(session.scalars(
            select(NotificationAttempt).where(NotificationAttempt.delivery_id == delivery.id)
            .order_by(NotificationAttempt.attempt)))


def events_of_type(runtime: Runtime, event_type: str) -> list[Event]:
    with tx.read(runtime.audit) as session:
        return list(session.scalars(select(Event).where(Event.type == event_type)))


def raise_overdue_alarm(runtime: Runtime) -> int:
    """A K9 overdue alarm on key U1201 in slot 7, raised by the real alarm service."""
    tower = add_key(runtime)
    audit = runtime.audit
    with tx.write(audit) as session:
        alarm = alarms.raise_alarm(
            session, audit, kind="key_overdue", rule="K9", actors=["scheduler"],
            message="U1201 drawn by 王伟 was due 2026-11-27T18:00:00+08:00",
            cabinet_id=tower.cabinet_id, slot_id=tower.slot_id, key_id=tower.key_id,
        )
        assert alarm.event_seq is not None
        return alarm.event_seq


async def test_an_alarm_arrives_by_email_naming_the_key_slot_and_rule(
    open_runtime: OpenRuntime, smtp: SmtpServer, clock: Clock
) -> None:
    runtime = open_runtime(
        smtp={"host": smtp.host, "port": smtp.port, "security": "none",
              "from_address": "kiosk@tower.example"},
        routes=[{"events": ["alarm.*"], "email": ["supervisor@tower.example"]}],
    )
    dispatcher = Dispatcher(runtime, clock=clock, jitter=lambda: ALWAYS)
    await dispatcher.tick()  # first run: the cursor starts at the head of the log
    seq = raise_overdue_alarm(runtime)

    await dispatcher.tick()

    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert smtp.envelopes[0] == ("kiosk@tower.example", ["supervisor@tower.example"])
    subject = str(mail["Subject"])
    assert "U1201" in subject and "钥匙逾期未还" in subject and "Key overdue" in subject
    body = mail.get_content()
    assert "钥匙编号: U1201" in body and "Key: U1201" in body
    assert "规则: K9" in body and "Rule: K9" in body
    assert "格口: 7" in body and "Slot: 7" in body
    assert "王伟" in body and f"#{seq} alarm.key_overdue" in body
    [row] = deliveries(runtime)
    assert (row.state, row.channel, row.target, row.event_seq) == (
        "delivered", "email", "supervisor@tower.example", seq)
    assert mail["X-Kiosk-Delivery"] == str(row.id)
    assert mail["X-Kiosk-Event"] == "alarm.key_overdue"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtp_login_uses_the_password_from_the_environment(
    open_runtime: OpenRuntime, smtp_with_login: SmtpServer, clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIOSK_NOTIFICATIONS__SMTP__PASSWORD", "mail-password-123")
    from kiosk.config import Settings

    loaded = Settings(notifications={  # type: ignore[arg-type]
        "smtp": {"host": smtp_with_login.host, "port": smtp_with_login.port,
                 "security": "none", "username": "kiosk", "from_address": "kiosk@tower.example"},
        "routes": [{"events": ["alarm.*"], "email": ["duty@tower.example"]}],
    })
    assert loaded.notifications.smtp is not None
    assert "mail-password-123" not in repr(loaded)
    runtime = open_runtime(**loaded.notifications.model_dump(mode="python"))
    dispatcher = Dispatcher(runtime, clock=clock)
    await dispatcher.tick()
    raise_overdue_alarm(runtime)
    await dispatcher.tick()
    assert smtp_with_login.logins == [("kiosk", "mail-password-123")]
    assert len(smtp_with_login.messages) == 1
    [row] = deliveries(runtime)
    assert row.state == "delivered"
    with tx.read(runtime.audit) as session:
        stored = " ".join(str(v) for v in session.execute(select(Event.payload)).scalars())
    assert "mail-password-123" not in stored


async def test_webhook_is_signed_and_the_signature_verifies_only_untampered(
    open_runtime: OpenRuntime, receiver: Receiver, clock: Clock
) -> None:
    runtime = open_runtime(**webhook_section(receiver))
    dispatcher = Dispatcher(runtime, clock=clock)
    await dispatcher.tick()
    seq = raise_overdue_alarm(runtime)
    await dispatcher.tick()

    [request] = receiver.requests
    [row] = deliveries(runtime)
    h = {k.lower(): v for k, v in request.headers.items()}
    assert h["x-kiosk-event"] == "alarm.key_overdue"
    assert h["x-kiosk-delivery"] == str(row.id)
    assert h["x-kiosk-timestamp"] == str(int(clock().timestamp()))
    assert h["x-kiosk-signature"].startswith("sha256=")
    ts, sig, body = h["x-kiosk-timestamp"], h["x-kiosk-signature"], request.body

    assert verify_signature(SECRET, ts, body, sig, now=clock())
    assert verify_signature(SECRET, ts, body, sig, now=clock().timestamp() + 299)
    tampered = body.replace(b"U1201", b"U1202")
    assert tampered != body
    assert not verify_signature(SECRET, ts, tampered, sig, now=clock())
    assert not verify_signature("another-secret-of-16+chars", ts, body, sig, now=clock())
    assert not verify_signature(SECRET, str(int(ts) + 1), body, sig, now=clock())
    assert not verify_signature(SECRET, ts, body, sig, now=clock().timestamp() + 301)
    assert not verify_signature(SECRET, ts, body, "sha256=00", now=clock())
    assert not verify_signature(SECRET, "yesterday", body, sig, now=clock())

    document = json.loads(body)
    assert document["delivery"] == str(row.id)
    assert document["event"]["seq"] == seq and document["event"]["type"] == "alarm.key_overdue"
    assert document["event"]["key_number"] == "U1201" and document["event"]["slot"] == 7
    assert "K9" in document["event"]["rules"]
    assert "U1201" in document["message"]["subject"]
    assert body == json.dumps(document, sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False).encode()


async def test_503_twice_then_200_is_three_attempts_and_delivered(
    open_runtime: OpenRuntime, receiver: Receiver, clock: Clock
) -> None:
    runtime = open_runtime(**webhook_section(receiver, max_attempts=5))
    dispatcher = Dispatcher(runtime, clock=clock, jitter=lambda: ALWAYS)
    await dispatcher.tick()
    receiver.script(503, 503, 200)
    raise_overdue_alarm(runtime)

    await dispatcher.tick()
    [row] = deliveries(runtime)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == clock() + dt.timedelta(seconds=10)
    await dispatcher.tick()  # not due yet: nothing is sent
    assert len(receiver.requests) == 1

    clock.advance(10)
    await dispatcher.tick()
    [row] = deliveries(runtime)
    assert (row.state, row.attempts) == ("pending", 2)
    assert row.next_attempt_at == clock() + dt.timedelta(seconds=20)
    clock.advance(20)
    await dispatcher.tick()

    [row] = deliveries(runtime)
    assert (row.state, row.attempts, row.last_error is not None) == ("delivered", 3, True)
    assert row.delivered_at == clock()
    log = attempts_of(runtime, row)
    assert [(a.attempt, a.ok, a.status_code) for a in log] == [
        (1, False, 503), (2, False, 503), (3, True, 200)]
    assert all(a.duration_ms >= 0 for a in log)
    assert "HTTP 503" in (log[0].error or "")
    ids = {r.headers["X-Kiosk-Delivery"] for r in receiver.requests}
    assert ids == {str(row.id)}  # the same id on every retry: receivers de-duplicate on it
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1
    for r in receiver.requests:
        assert verify_signature(SECRET, r.headers["X-Kiosk-Timestamp"], r.body,
                                r.headers["X-Kiosk-Signature"], now=clock())
    assert events_of_type(runtime, "notification.failed") == []


async def test_always_failing_receiver_ends_failed_with_an_event_and_no_loop(
    open_runtime: OpenRuntime, receiver: Receiver, clock: Clock
) -> None:
    runtime = open_runtime(**webhook_section(receiver, events=["*"], max_attempts=3))
    dispatcher = Dispatcher(runtime, clock=clock, jitter=lambda: ALWAYS)
    await dispatcher.tick()
    receiver.script(500)
    seq = runtime.audit.append(NewEvent(type="alarm.door_forced", rules=["K2"],
                                        payload={"message": "door opened, no session"})).seq

    waits = []
    for _ in range(3):
        await dispatcher.tick()
        [row] = deliveries(runtime)
        if row.next_attempt_at is not None:
            waits.append((row.next_attempt_at - clock()).total_seconds())
        clock.advance(60)
    assert waits == [10.0, 20.0]  # initial, doubled; the third attempt was the last
    [row] = deliveries(runtime)
    assert (row.state, row.attempts, row.next_attempt_at) == ("failed", 3, None)
    assert "HTTP 500" in (row.last_error or "")
    [failed] = events_of_type(runtime, "notification.failed")
    payload = json.loads(failed.payload)
    assert payload["delivery"] == str(row.id) and payload["event_seq"] == seq
    assert payload["attempts"] == 3 and payload["permanent"] is False
    assert json.loads(failed.actors) == ["notifier"]

    for _ in range(3):  # "*" matches notification.failed, but it is never routed
        clock.advance(3600)
        await dispatcher.tick()
    assert len(deliveries(runtime)) == 1
    assert len(receiver.requests) == 3


async def test_a_400_is_not_retried(
    open_runtime: OpenRuntime, receiver: Receiver, clock: Clock
) -> None:
    runtime = open_runtime(**webhook_section(receiver, max_attempts=5))
    dispatcher = Dispatcher(runtime, clock=clock)
    await dispatcher.tick()
    receiver.script(400)
    raise_overdue_alarm(runtime)
    await dispatcher.tick()
    clock.advance(3600)
    await dispatcher.tick()
    [row] = deliveries(runtime)
    assert (row.state, row.attempts) == ("failed", 1)
    assert len(receiver.requests) == 1
    [failed] = events_of_type(runtime, "notification.failed")
    assert json.loads(failed.payload)["permanent"] is True


@pytest.mark.parametrize("status", [408, 429])
async def test_408_and_429_are_retried(
    open_runtime: OpenRuntime, receiver: Receiver, clock: Clock, status: int
) -> None:
    runtime = open_runtime(**webhook_section(receiver))
    dispatcher = Dispatcher(runtime, clock=clock, jitter=lambda: ALWAYS)
    await dispatcher.tick()
    receiver.script(status, 204)
    raise_overdue_alarm(runtime)
    await dispatcher.tick()
    clock.advance(10)
    await dispatcher.tick()
    [row] = deliveries(runtime)
    assert (row.state, row.attempts) == ("delivered", 2)


async def test_unreachable_receiver_is_retried(
    open_runtime: OpenRuntime, receiver: Receiver, clock: Clock
) -> None:
    from tests.ports import free_port

    section = webhook_section(receiver)
    section["webhooks"]["ops"]["url"] = f"http://127.0.0.1:{free_port()}/nobody-listens"
    runtime = open_runtime(**section)
    dispatcher = Dispatcher(runtime, clock=clock)
    await dispatcher.tick()
    raise_overdue_alarm(runtime)
    await dispatcher.tick()
    [row] = deliveries(runtime)
    assert (row.state, row.attempts) == ("pending", 1)
    [attempt] = attempts_of(runtime, row)
    assert attempt.status_code is None and "Connect" in (attempt.error or "")


async def test_an_event_type_without_a_route_sends_nothing(
    open_runtime: OpenRuntime, receiver: Receiver, smtp: SmtpServer, clock: Clock
) -> None:
    section = webhook_section(receiver, events=["alarm.*", "report.generated"])
    section["smtp"] = {"host": smtp.host, "port": smtp.port, "security": "none",
                       "from_address": "kiosk@tower.example"}
    section["routes"].append({"events": ["count.*"], "email": ["sup@tower.example"]})
    runtime = open_runtime(**section)
    dispatcher = Dispatcher(runtime, clock=clock)
    await dispatcher.tick()
    for kind in ("key.drawn", "key.returned", "alarm_like.raised", "daemon.started"):
        runtime.audit.append(NewEvent(type=kind, key_number="U1201"))
    queued, attempted = await dispatcher.tick()
    assert (queued, attempted) == (0, 0)
    assert deliveries(runtime) == []
    assert receiver.requests == [] and smtp.messages == []


async def test_history_is_not_flooded_and_a_restart_sends_nothing_twice_and_skips_nothing(
    open_runtime: OpenRuntime, receiver: Receiver, clock: Clock
) -> None:
    first = open_runtime(**webhook_section(receiver))
    for n in range(3):  # the log's history before notifications were turned on
        first.audit.append(NewEvent(type="alarm.door_forced", payload={"n": f"old-{n}"}))
    dispatcher = Dispatcher(first, clock=clock)
    await dispatcher.tick()
    assert deliveries(first) == [] and receiver.requests == []

    a = first.audit.append(NewEvent(type="alarm.door_forced", payload={"n": "a"})).seq
    await dispatcher.tick()
    b = first.audit.append(NewEvent(type="alarm.door_held_open", payload={"n": "b"})).seq
    dispatcher.route()  # routed (in the outbox) but the daemon stops before sending it
    first.close()

    # While the daemon is down the cabinet (another process) keeps logging.
    offline = open_runtime()
    c = offline.audit.append(NewEvent(type="alarm.slot_left_open", payload={"n": "c"})).seq
    offline.audit.append(NewEvent(type="key.drawn", payload={"n": "unrouted"}))
    d = offline.audit.append(NewEvent(type="alarm.door_forced", payload={"n": "d"})).seq
    offline.close()

    second = open_runtime(**webhook_section(receiver))
    again = Dispatcher(second, clock=clock)
    await again.tick()
    await again.tick()

    sent = [json.loads(r.body)["event"]["seq"] for r in receiver.requests]
    assert sorted(sent) == [a, b, c, d]  # each exactly once, none of the old history
    rows = deliveries(second)
    assert [r.event_seq for r in rows] == [a, b, c, d]
    assert all(r.state == "delivered" and r.attempts == 1 for r in rows)


async def test_the_daemon_task_wakes_on_a_routed_event_and_stops(
    open_runtime: OpenRuntime, receiver: Receiver
) -> None:
    runtime = open_runtime(**webhook_section(receiver, poll_s=600))
    Dispatcher(runtime).route()  # the cursor exists: the task routes what comes next
    listeners = list(runtime.audit.listeners)
    stop = asyncio.Event()
    task = asyncio.create_task(run_notifications(runtime, stop=stop))
    await asyncio.sleep(0.05)
    runtime.audit.append(NewEvent(type="alarm.door_forced", payload={"message": "门被打开"}))
    for _ in range(500):  # far less than poll_s: the listener woke the task
        if receiver.requests:
            break
        await asyncio.sleep(0.01)
    assert len(receiver.requests) == 1
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert runtime.audit.listeners == listeners  # its wake-up listener is gone


async def test_without_routes_the_task_only_waits_for_stop(open_runtime: OpenRuntime) -> None:
    runtime = open_runtime()
    stop = asyncio.Event()
    task = asyncio.create_task(run_notifications(runtime, stop=stop))
    await asyncio.sleep(0.02)
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert deliveries(runtime) == []
