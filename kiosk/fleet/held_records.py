"""``GET /hub/v1/records``: the latest copy of the records the cabinets shipped, as held.

Why each kind needs its own permission: a record's body is the cabinet's whole row (an
intake's deliverer, a handover's signed report, an alarm's notes), the same facts the lists
by site (``site_lists``, ``site_records``) guard with the permission of their kind. One
route that returned any kind to anyone with ``loans:read`` let a department leader read
handovers and intake records it may not read anywhere else. So the caller names one kind
and must hold that kind's read permission; a department leader's loans are narrowed to its
own department's borrowers, as ``site_lists.loans`` narrows them.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.errors import InvalidRequest, PermissionDenied
from kiosk.fleet import scope as scopes
from kiosk.fleet.site_lists import _department_people
from kiosk.services.authz import Permission, Principal
from kiosk.store.models_fleet import HubCabinet, HubRecord, HubSite

READ_PERMISSION: dict[str, Permission] = {
    "loan": Permission.LOANS_READ,
    "alarm": Permission.ALARMS_READ,
    "alarm_note": Permission.ALARMS_READ,
    "report": Permission.REPORTS_READ,
    "intake": Permission.KEYS_READ,
    "handover": Permission.HANDOVERS_READ,
}
"""The permission each record kind is read under: the one its list by site needs."""


def require_kind(principal: Principal, kind: str | None) -> str:
    """The kind asked for, once the caller may read it; a request without a kind is
    refused (it would mix kinds the caller may not read)."""
    if kind is None:
        raise PermissionDenied("name the kind of record to read (kind=loan, alarm, "
                               "alarm_note, report, intake or handover): each needs its "
                               "own permission")
    permission = READ_PERMISSION.get(kind)
    if permission is None:
        raise InvalidRequest(f"unknown record kind {kind!r}")
    principal.require(permission)
    return kind


def latest(session: Session, principal: Principal, *, kind: str | None,
           cabinet_id: str | None = None, site: str | None = None,
           limit: int = 100) -> list[dict[str, Any]]:
    """One cabinet's records of ``kind``, or every cabinet's of a site, or (unscoped) the
    fleet's, in order of arrival; only the caller's site's cabinets for a scoped account."""
    kind = require_kind(principal, kind)
    scope = scopes.scope_of(session, principal.account_id)
    query = select(HubRecord).where(HubRecord.kind == kind)
    if cabinet_id is not None:
        scopes.require_cabinet(session, scope, cabinet_id)
        query = query.where(HubRecord.cabinet_id == cabinet_id)
    if scope.site_id is not None or site is not None:
        at_site = select(HubCabinet.cabinet_id).join(HubSite, HubCabinet.site_id == HubSite.id)
        if scope.site_id is not None:
            at_site = at_site.where(HubCabinet.site_id == scope.site_id)
        if site is not None:
            at_site = at_site.where(HubSite.code == site)
        query = query.where(HubRecord.cabinet_id.in_(at_site))
    if kind == "loan" and principal.department_id is not None:
        query = query.where(HubRecord.borrower_id.in_(  # the loan's typed borrower (0027)
            _department_people(session, principal.department_id)))
    rows = session.scalars(query.order_by(HubRecord.received_at).limit(limit)).all()
    return [{"kind": r.kind, "id": str(r.record_id), "cabinet_id": r.cabinet_id,
             "body": json.loads(r.body), "received_at": r.received_at.isoformat()}
            for r in rows]
