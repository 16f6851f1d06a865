"""The hub's lists by site of the intake records (K1) and the shift handovers (H1) the
cabinets made (issue 12), beside the keys out, alarms and reports of
``kiosk.fleet.site_lists``, with the same shape, filters and scoping.

Both arrive as ``hub_records`` (``kind`` ``intake`` and ``handover``, the cabinet's columns
as JSON) and are read through ``site_lists``' own query, so the one scoping rule holds: only
records of the caller's site's cabinets are read; a filter naming another site or cabinet
finds nothing, and one record by id outside the scope is ``NotFound`` like an id that never
existed. They are ordered, newest first, by their time in the body (``received_at``,
``started_at``), as the other lists are by theirs.

Names (the key number, the custodian, the outgoing and incoming staff) come from the hub's
configuration, since the cabinet's rows carry the hub's ids. A cabinet's slot ids are its
own and mean nothing at the hub, so the slot a key went to is not shown here.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from kiosk.fleet.scope import Scope
from kiosk.fleet.site_lists import Page, _names, _one, _records, _uuid
from kiosk.store.models import HandoverState


def _person(people: dict[uuid.UUID, str], value: Any) -> tuple[str | None, str | None]:
    person_id = _uuid(value)
    return (str(person_id) if person_id else None,
            people.get(person_id) if person_id else None)


# ---------------------------------------------------------------------------- intake
def _intake_out(r: Any, site: str, body: dict[str, Any], keys: dict[uuid.UUID, str],
                people: dict[uuid.UUID, str]) -> dict[str, Any]:
    key_id = _uuid(body.get("key_id"))
    custodian_id, custodian = _person(people, body.get("custodian_id"))
    return {"id": str(r.record_id), "site": site, "cabinet_id": r.cabinet_id,
            "key_id": str(key_id) if key_id else None,
            "key_number": keys.get(key_id) if key_id else None,
            "delivered_by_name": body.get("delivered_by_name"),
            "delivered_by_department": body.get("delivered_by_department"),
            "room_number": body.get("room_number"), "key_count": body.get("key_count"),
            "deliverer_confirmed": body.get("deliverer_confirmed"),
            "custodian_id": custodian_id, "custodian": custodian,
            "received_at": body.get("received_at"), "note": body.get("note"),
            "event_seq": body.get("event_seq")}


def _custodians(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``_names`` reads people from ``borrower_id``/``owner_id``; an intake's person is its
    custodian, so each body is handed over under that name."""
    return [{"key_id": b.get("key_id"), "borrower_id": b.get("custodian_id")} for b in bodies]


def intakes(session: Session, scope: Scope, *, site: str | None = None,
            cabinet_id: str | None = None, limit: int = 50, offset: int = 0) -> Page:
    """The keys the cabinets received (K1: who delivered them, how many, for which room,
    the receiving custodian), newest first."""
    rows, total = _records(session, scope, "intake", site=site, cabinet_id=cabinet_id,
                           where=[], order="received_at", limit=limit, offset=offset)
    bodies = [json.loads(r.body) for r, _ in rows]
    keys, people = _names(session, _custodians(bodies))
    return Page([_intake_out(r, code, body, keys, people)
                 for (r, code), body in zip(rows, bodies, strict=True)], total)


def intake(session: Session, scope: Scope, record_id: uuid.UUID) -> dict[str, Any]:
    r, site = _one(session, scope, "intake", record_id)
    body = json.loads(r.body)
    keys, people = _names(session, _custodians([body]))
    return _intake_out(r, site, body, keys, people)


# -------------------------------------------------------------------------- handovers
def _staff(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outgoing and incoming staff of each handover, as people ``_names`` resolves."""
    return [{"borrower_id": b.get(f)} for b in bodies for f in ("outgoing_id", "incoming_id")]


def _handover_out(r: Any, site: str, body: dict[str, Any],
                  people: dict[uuid.UUID, str]) -> dict[str, Any]:
    outgoing_id, outgoing = _person(people, body.get("outgoing_id"))
    incoming_id, incoming = _person(people, body.get("incoming_id"))
    return {"id": str(r.record_id), "site": site, "cabinet_id": r.cabinet_id,
            "state": body.get("state"), "outgoing_id": outgoing_id, "outgoing": outgoing,
            "incoming_id": incoming_id, "incoming": incoming,
            "started_at": body.get("started_at"), "accepted_at": body.get("accepted_at"),
            "expires_at": body.get("expires_at"), "closed_at": body.get("closed_at"),
            "close_reason": body.get("close_reason"), "notes": body.get("notes"),
            "report_id": body.get("report_id")}


def handovers(session: Session, scope: Scope, *, site: str | None = None,
              cabinet_id: str | None = None, state: HandoverState | None = None,
              limit: int = 50, offset: int = 0) -> Page:
    """The shift handovers at the cabinets (H1: both staff, started and accepted when),
    newest first; ``state`` (started, accepted, cancelled) narrows."""
    rows, total = _records(session, scope, "handover", site=site, cabinet_id=cabinet_id,
                           where=[], order="started_at", limit=limit, offset=offset,
                           facets=[state.value] if state else None)
    bodies = [json.loads(r.body) for r, _ in rows]
    _, people = _names(session, _staff(bodies))
    return Page([_handover_out(r, code, body, people)
                 for (r, code), body in zip(rows, bodies, strict=True)], total)


def handover(session: Session, scope: Scope, record_id: uuid.UUID) -> dict[str, Any]:
    """One handover with the report both signed (H1: "三清 / 三明": what happened, what is
    handed over, the counts), as frozen at its start."""
    r, site = _one(session, scope, "handover", record_id)
    body = json.loads(r.body)
    _, people = _names(session, _staff([body]))
    out = _handover_out(r, site, body, people)
    try:
        out["content"] = json.loads(body.get("report") or "{}")
    except (TypeError, ValueError):
        out["content"] = None  # a cabinet's frozen report is canonical JSON; never seen
    return out
