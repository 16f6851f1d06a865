"""A cabinet's link state, kept in its own database (``fleet_state``, name → JSON value):
the enrolment (hub URL, pinned hub key, site), the configuration cursor, and since when
the hub has been unreachable. ``/health`` and the kiosk screen read it from here."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kiosk.store.db import write_session
from kiosk.store.models_link import FleetState

ENROLMENT = "enrolment"
CONFIG_VERSION = "config_version"
LINK = "link"


def read(session: Session, name: str) -> Any:
    row = session.get(FleetState, name)
    return None if row is None else json.loads(row.value)


def write(session: Session, name: str, value: Any) -> None:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    row = session.get(FleetState, name)
    if row is None:
        session.add(FleetState(name=name, value=text))
    else:
        row.value = text


@dataclass(frozen=True)
class Enrolment:
    hub_url: str
    hub_public_key: str
    site: str
    cabinet_id: str


def enrolment(engine: Engine) -> Enrolment | None:
    with Session(engine) as session:
        doc = read(session, ENROLMENT)
    return None if doc is None else Enrolment(**doc)


def save_enrolment(engine: Engine, value: Enrolment) -> None:
    with write_session(engine) as session:
        write(session, ENROLMENT, value.__dict__)


@dataclass(frozen=True)
class LinkStatus:
    """What /health and the screen show: enrolled, online, offline since when."""

    enrolled: bool
    hub_url: str | None
    online: bool
    offline_since: dt.datetime | None
    last_contact: dt.datetime | None
    config_version: int
    shipped_seq: int

    def as_dict(self) -> dict[str, Any]:
        return {"enrolled": self.enrolled, "hub_url": self.hub_url, "online": self.online,
                "offline_since": self.offline_since.isoformat() if self.offline_since else None,
                "last_contact": self.last_contact.isoformat() if self.last_contact else None,
                "config_version": self.config_version, "shipped_seq": self.shipped_seq}


def link_status(engine: Engine) -> LinkStatus | None:
    """None on a cabinet that never enrolled (today's single-cabinet product)."""
    with Session(engine) as session:
        rows = {r.name: json.loads(r.value) for r in session.scalars(select(FleetState))}
    enrol = rows.get(ENROLMENT)
    if enrol is None:
        return None
    link = rows.get(LINK) or {}

    def when(key: str) -> dt.datetime | None:
        value = link.get(key)
        return dt.datetime.fromisoformat(value) if value else None

    return LinkStatus(enrolled=True, hub_url=enrol.get("hub_url"),
                      online=bool(link.get("online")), offline_since=when("offline_since"),
                      last_contact=when("last_contact"),
                      config_version=int(rows.get(CONFIG_VERSION) or 0),
                      shipped_seq=int(link.get("shipped_seq") or 0))


def save_link(engine: Engine, *, online: bool, offline_since: dt.datetime | None,
              last_contact: dt.datetime | None, shipped_seq: int) -> None:
    with write_session(engine) as session:
        write(session, LINK, {
            "online": online,
            "offline_since": offline_since.isoformat() if offline_since else None,
            "last_contact": last_contact.isoformat() if last_contact else None,
            "shipped_seq": shipped_seq})


def offline_since_local(link: LinkStatus, zone: dt.tzinfo) -> str | None:
    """"14:02": since when the hub has not answered, on the cabinet's wall clock."""
    return link.offline_since.astimezone(zone).strftime("%H:%M") if link.offline_since else None


def screen_link(engine: Engine, zone: dt.tzinfo) -> dict[str, Any] | None:
    """What the kiosk screen shows keepers ("离线 自 14:02"); None on a cabinet on its own."""
    link = link_status(engine)
    if link is None:
        return None
    return {"online": link.online, "offline_since_local": offline_since_local(link, zone)}
