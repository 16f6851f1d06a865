"""The delivery log over the admin API: list with filters, detail with attempts, retry."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid

from sqlalchemy import select

from kiosk.audit import NewEvent
from kiosk.notify.dispatcher import Dispatcher
from kiosk.notify.settings import NotificationSettings
from kiosk.services import tx
from kiosk.store.models import Event
from kiosk.store.models_auth import AccountRole
from kiosk.store.types import utcnow
from tests.api.conftest import World
from tests.notify.conftest import Clock, Receiver, webhook_section

V1 = "/api/v1"


def dispatcher_for(world: World, receiver: Receiver, clock: Clock) -> Dispatcher:
    """A dispatcher on the API's own database, routing alarms to ``receiver``."""
    section = NotificationSettings.model_validate(webhook_section(receiver))
    settings = world.runtime.settings.model_copy(update={"notifications": section})
    return Dispatcher(dataclasses.replace(world.runtime, settings=settings), clock=clock)


async def test_list_detail_and_retry(world: World, receiver: Receiver, clock: Clock) -> None:
    dispatcher = dispatcher_for(world, receiver, clock)
    await dispatcher.tick()
    receiver.script(400)
    world.audit.append(NewEvent(type="alarm.door_forced", payload={"message": "门被打开"}))
    await dispatcher.tick()
    receiver.script(200)
    world.audit.append(NewEvent(type="alarm.slot_left_open", slot=3))
    await dispatcher.tick()

    admin = world.token(AccountRole.ADMIN)
    supervisor = world.token(AccountRole.SUPERVISOR)
    auditor = world.token(AccountRole.AUDITOR)
    custodian = world.token(AccountRole.CUSTODIAN)
    c = world.client

    page = c.get(f"{V1}/notifications", headers=auditor).json()
    assert page["total"] == 2 and (page["limit"], page["offset"]) == (50, 0)
    states = {i["event_type"]: i["state"] for i in page["items"]}
    assert states == {"alarm.door_forced": "failed", "alarm.slot_left_open": "delivered"}
    failed = c.get(f"{V1}/notifications", params={"state": "failed"}, headers=supervisor).json()
    [item] = failed["items"]
    assert (item["channel"], item["target"], item["attempts"]) == ("webhook", "ops", 1)
    assert "HTTP 400" in item["last_error"]
    assert c.get(f"{V1}/notifications", params={"channel": "email"},
                 headers=admin).json()["total"] == 0
    assert c.get(f"{V1}/notifications", params={"event_type": "alarm.slot_left_open"},
                 headers=admin).json()["items"][0]["state"] == "delivered"
    paged = c.get(f"{V1}/notifications", params={"limit": 1, "offset": 1}, headers=admin).json()
    assert paged["total"] == 2 and len(paged["items"]) == 1
    bad = c.get(f"{V1}/notifications", params={"state": "lost"}, headers=admin)
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(
        "application/problem+json")
    assert c.get(f"{V1}/notifications", headers=custodian).status_code == 403

    detail = c.get(f"{V1}/notifications/{item['id']}", headers=auditor).json()
    assert [(a["attempt"], a["ok"], a["status_code"]) for a in detail["attempt_log"]] == [
        (1, False, 400)]
    missing = c.get(f"{V1}/notifications/{uuid.uuid4()}", headers=admin)
    assert missing.status_code == 404 and missing.json()["type"].endswith(":not-found")

    url = f"{V1}/notifications/{item['id']}/retry"
    assert c.post(url, headers=auditor).status_code == 403
    assert c.post(url, headers=supervisor).status_code == 403
    retried = c.post(url, headers=admin)
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert (body["state"], body["attempts"], body["retries"]) == ("pending", 1, 1)
    again = c.post(url, headers=admin)
    assert again.status_code == 409 and again.json()["type"].endswith(":conflict")
    delivered = next(i for i in page["items"] if i["state"] == "delivered")
    assert c.post(f"{V1}/notifications/{delivered['id']}/retry",
                  headers=admin).status_code == 409
    assert c.post(f"{V1}/notifications/{uuid.uuid4()}/retry", headers=admin).status_code == 404

    with tx.read(world.audit) as session:
        [event] = session.scalars(select(Event).where(Event.type == "notification.retried"))
    assert json.loads(event.payload)["delivery"] == item["id"]
    assert json.loads(event.actors)[0].startswith("account:admin-")

    # the retry is due "now" by the wall clock, some time after the test clock's start (how
    # long depends on the machine's load): the dispatcher's clock moves past it
    clock.now = max(clock.now, utcnow()) + dt.timedelta(seconds=5)
    await dispatcher.tick()  # the receiver is fixed: the retry goes out
    detail = c.get(f"{V1}/notifications/{item['id']}", headers=admin).json()
    assert detail["state"] == "delivered" and detail["attempts"] == 2
    assert [(a["attempt"], a["ok"]) for a in detail["attempt_log"]] == [(1, False), (2, True)]


def test_operations_publish_their_permissions(world: World) -> None:
    doc = world.client.get(f"{V1}/openapi.json").json()
    paths = doc["paths"]
    assert paths[f"{V1}/notifications"]["get"]["x-permission"] == "notifications:read"
    assert paths[f"{V1}/notifications/{{delivery_id}}"]["get"]["x-permission"] == (
        "notifications:read")
    assert paths[f"{V1}/notifications/{{delivery_id}}/retry"]["post"]["x-permission"] == (
        "notifications:retry")
