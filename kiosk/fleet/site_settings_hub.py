"""Settings per site at the hub (issue 12): one document per site in ``hub_site_settings``,
replaced whole, sent to that site's cabinets by the configuration cursor. The document's
format, and what a cabinet does with it, are in ``site_settings``."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.fleet.site_settings import ENTITY, validate
from kiosk.store.models_fleet import HubCabinet, HubSite, HubSiteSettings
from kiosk.store.types import utcnow


def set_for_site(session: Session, audit: AuditLog, *, site: HubSite, doc: dict[str, Any],
                 actors: list[str]) -> dict[str, Any]:
    """Replace ``site``'s settings; its cabinets get them at their next long-poll. The
    configuration version is taken by the hub's trigger on ``hub_site_settings`` (or the
    ORM listener where there are no triggers, ``kiosk.fleet.changes``), as for every other
    configuration table, so plain SQL on the table is sent down too."""
    clean = validate(doc)
    row = session.get(HubSiteSettings, site.id)
    body = json.dumps(clean, sort_keys=True, ensure_ascii=False)
    if row is None:
        session.add(HubSiteSettings(site_id=site.id, body=body))
    else:
        row.body, row.updated_at = body, utcnow()
    session.flush()
    audit.append_in(session, NewEvent(type="fleet.site_settings_set", actors=actors,
                                      payload={"site": site.code, "sections": sorted(clean)}))
    return clean


def for_site(session: Session, site_id: uuid.UUID) -> dict[str, Any]:
    row = session.get(HubSiteSettings, site_id)
    return {} if row is None else dict(json.loads(row.body))


def serialise(session: Session, site_id: uuid.UUID) -> dict[str, Any] | None:
    site = session.get(HubSite, site_id)
    if site is None:
        return None
    return {"site": site.code, "settings": for_site(session, site_id)}


def site_of_cabinet(session: Session, cabinet_id: str) -> uuid.UUID | None:
    return session.scalar(select(HubCabinet.site_id).where(HubCabinet.cabinet_id == cabinet_id))


def needed_by(session: Session, site_id: uuid.UUID, cabinet_id: str) -> bool:
    """A site's settings go to that site's cabinets only."""
    return site_of_cabinet(session, cabinet_id) == site_id


def snapshot_for(session: Session, cabinet_id: str | None) -> list[tuple[str, uuid.UUID]]:
    """Cursor 0: the asking cabinet's site settings (or every site's, for no cabinet)."""
    query = select(HubSiteSettings.site_id)
    if cabinet_id is not None:
        query = query.where(HubSiteSettings.site_id == site_of_cabinet(session, cabinet_id))
    return [(ENTITY, site_id) for site_id in session.scalars(query)]
