"""Site-scoped roles at the hub (issue 12): an account may be scoped to one site, and then
sees only that site's cabinets, their logs, records and alarms, in the API and the console
alike. Roles and permissions stay as on a cabinet (a supervisor reads, an admin writes); the
scope narrows *which* cabinets, never widens what a role may do. An account without a scope
sees the whole fleet; only such an account may scope others or add sites.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import NotFound, PermissionDenied
from kiosk.store.models import Cabinet, Key, Slot
from kiosk.store.models_auth import Account
from kiosk.store.models_fleet import HubAccountSite, HubCabinet, HubSite


@dataclass(frozen=True)
class Scope:
    """What one account may see: ``site_id`` None is the whole fleet."""

    site_id: uuid.UUID | None
    site_code: str | None

    @property
    def whole_fleet(self) -> bool:
        return self.site_id is None

    def sees_site(self, site_id: uuid.UUID) -> bool:
        return self.site_id is None or self.site_id == site_id


def scope_of(session: Session, account_id: uuid.UUID) -> Scope:
    row = session.get(HubAccountSite, account_id)
    if row is None:
        return Scope(None, None)
    site = session.get(HubSite, row.site_id)
    return Scope(row.site_id, site.code if site else None)


def visible_cabinets(session: Session, scope: Scope) -> set[str] | None:
    """The cabinet ids ``scope`` sees; None means all."""
    if scope.whole_fleet:
        return None
    return set(session.scalars(select(HubCabinet.cabinet_id).where(
        HubCabinet.site_id == scope.site_id)))


def require_cabinet(session: Session, scope: Scope, cabinet_id: str) -> None:
    """A cabinet outside the scope is answered as if it did not exist (no probing)."""
    seen = visible_cabinets(session, scope)
    if seen is not None and cabinet_id not in seen:
        raise NotFound(f"no enrolled cabinet {cabinet_id}")


def require_whole_fleet(scope: Scope, what: str) -> None:
    if not scope.whole_fleet:
        raise PermissionDenied(f"{what} needs an account that sees the whole fleet; this one "
                               f"is scoped to site {scope.site_code}")


def set_scope(session: Session, audit: AuditLog, *, by: Scope, username: str,
              site_code: str | None, actors: list[str]) -> Scope:
    """Scope ``username`` to ``site_code`` (None: the whole fleet again)."""
    require_whole_fleet(by, "scoping accounts")
    account = session.scalars(select(Account).where(Account.username == username)).one_or_none()
    if account is None:
        raise NotFound(f"no account {username}")
    row = session.get(HubAccountSite, account.id)
    if site_code is None:
        if row is not None:
            session.delete(row)
        result = Scope(None, None)
    else:
        site = session.scalars(select(HubSite).where(HubSite.code == site_code)).one_or_none()
        if site is None:
            raise NotFound(f"no site {site_code}")
        if row is None:
            session.add(HubAccountSite(account_id=account.id, site_id=site.id))
        else:
            row.site_id = site.id
        result = Scope(site.id, site.code)
    audit.append_in(session, NewEvent(type="fleet.account_scoped", actors=actors,
                                      payload={"account": username, "site": site_code}))
    return result


def fleet_keys(session: Session, scope: Scope, *, site: str | None = None,
               cabinet_id: str | None = None, after: str | None = None,
               limit: int = 100) -> list[tuple[Key, str, str, int]]:
    """The fleet's keys as ``(key, site code, cabinet id, slot number)``, by key number.

    A key belongs to the site of the enrolled cabinet whose slot is its home at the hub
    (``kiosk.fleet.config_keys``); keys homed nowhere or at the hub's own cabinet are no
    site's and are listed to no one here. ``scope`` narrows to its site whatever ``site``
    or ``cabinet_id`` ask for, so a scoped caller naming another site gets an empty list.
    """
    query = (select(Key, HubSite.code, HubCabinet.cabinet_id, Slot.number)
             .join(Slot, Key.home_slot_id == Slot.id)
             .join(Cabinet, Slot.cabinet_id == Cabinet.id)
             .join(HubCabinet, HubCabinet.cabinet_id == Cabinet.code)
             .join(HubSite, HubCabinet.site_id == HubSite.id))
    if scope.site_id is not None:
        query = query.where(HubCabinet.site_id == scope.site_id)
    if site is not None:
        query = query.where(HubSite.code == site)
    if cabinet_id is not None:
        query = query.where(HubCabinet.cabinet_id == cabinet_id)
    if after is not None:
        query = query.where(Key.key_number > after)
    rows = session.execute(query.order_by(Key.key_number).limit(limit)).all()
    return [(k, str(s), str(c), int(n)) for k, s, c, n in rows]


def fleet_key(session: Session, scope: Scope,
              key_id: uuid.UUID) -> tuple[Key, str, str, int]:
    """One key of the fleet; outside ``scope`` (or no site's) it does not exist (404)."""
    row = session.execute(
        select(Key, HubSite.code, HubCabinet.cabinet_id, Slot.number, HubCabinet.site_id)
        .join(Slot, Key.home_slot_id == Slot.id)
        .join(Cabinet, Slot.cabinet_id == Cabinet.id)
        .join(HubCabinet, HubCabinet.cabinet_id == Cabinet.code)
        .join(HubSite, HubCabinet.site_id == HubSite.id).where(Key.id == key_id)).first()
    if row is None or not scope.sees_site(row[4]):
        raise NotFound(f"no key {key_id}")
    return row[0], str(row[1]), str(row[2]), int(row[3])
