"""A site's merged log at the hub (issue 12): the events of every cabinet of a site, or of
the whole fleet for an account that sees it, in one list, newest first.

Each cabinet's log stays its own hash chain, numbered by its own ``seq``; the hub holds it
as shipped (``hub_events``) and this list only reads it. Cabinets have no common clock, so
there is no true order across them: the list orders by the time each cabinet wrote on its
event, then by cabinet and ``seq``. The time is what a reader expects ("what happened at
the tower this morning"); the ``(cabinet, seq)`` tie-break makes the order total, so a
page boundary is one exact event and paging is stable. Every row names its cabinet and
seq: within one cabinet the seq is the truth (a cabinet whose clock was set back shows a
later seq below an earlier one, and its own log, ``GET /hub/v1/events``, reads in chain
order).

Paging is by position, not by offset: ``before`` is the last row shown (its time, cabinet
and seq), and the next page is the rows strictly after it in the list's order. Events that
arrive meanwhile (a cabinet back online ships its backlog) never shift a page that was
already shown, and counting a site's whole log for a total is never needed. The order is
served by ``ix_hub_events_at`` (``at, cabinet_id, seq``; migration 0025): the newest page
of the fleet walks that index from its end; a site's or a cabinet's page walks it too,
checking the cabinet inside the index (``docs/fleet.md``, "Lists by site").

``event_type`` narrows the list to one type of event, across every cabinet in view. The
common types (``COMMON_EVENT_TYPES``: a refused tap, a draw, a return) are a match every few
rows of ``ix_hub_events_at``; any other type is read from ``ix_hub_events_rare_type``
(migration 0027), which holds only the events that are not of a common type, in the list's
order after the type: an alarm or a report is found without walking the taps and draws
around it, and ingest does not write every event to a fourth index.

Scoping is ``kiosk.fleet.site_lists``'s one rule: only events of the caller's site's
cabinets are read, whatever filter is asked for; a filter naming another site or cabinet
finds nothing (an empty list, the answer a site that does not exist gets).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, literal, literal_column, select, tuple_
from sqlalchemy.orm import Session

from kiosk.errors import InvalidRequest
from kiosk.fleet.scope import Scope
from kiosk.fleet.site_lists import cabinets_seen
from kiosk.store.models_fleet import HubEvent
from kiosk.store.types import UTCDateTime

EVENT_TYPE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*")
"""An event type as cabinets write them (``key.drawn``, ``alarm.door_forced``)."""
EVENT_TYPE_MAX = 64

SEPARATOR = "~"
"""Between the parts of a position (cabinet ids are letters, digits, ``-``, ``_``, ``.``;
a time has no ``~``); unreserved in a URL, so a position is a query value as it is."""


@dataclass(frozen=True)
class Position:
    """One event's place in the merged order: the cursor a page ends at."""

    at: dt.datetime
    cabinet_id: str
    seq: int

    def token(self) -> str:
        at = self.at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")  # no "+" to encode
        return SEPARATOR.join((at, self.cabinet_id, str(self.seq)))

    @classmethod
    def parse(cls, token: str) -> Position:
        """A position a page handed out; anything else is a clear 422."""
        parts = token.split(SEPARATOR)
        try:
            if len(parts) != 3 or not parts[1]:
                raise ValueError("three parts: time~cabinet~seq")
            at = dt.datetime.fromisoformat(parts[0])
            if at.tzinfo is None:
                raise ValueError("the time needs its UTC offset")
            seq = int(parts[2])
            if seq < 1:
                raise ValueError("seq counts from 1")
        except ValueError as exc:
            raise InvalidRequest(f"before: not a position of the log ({exc})") from None
        return cls(at.astimezone(dt.UTC), parts[1], seq)


@dataclass(frozen=True)
class LogPage:
    items: list[dict[str, Any]]
    next: str | None
    """The position to ask ``before`` for the next (older) page; None at the end."""


def _event_out(e: HubEvent, site: str) -> dict[str, Any]:
    return {"site": site, "cabinet_id": e.cabinet_id, "seq": e.seq, "at": e.at.isoformat(),
            "type": e.type, "key_number": e.key_number, "slot": e.slot,
            "decision": e.decision, "actors": json.loads(e.actors),
            "payload": json.loads(e.payload), "hash": e.hash}


def check_event_type(event_type: str) -> str:
    """An event type to filter by, or a clear 422: it is written into the SQL (below)."""
    if len(event_type) > EVENT_TYPE_MAX or not EVENT_TYPE.fullmatch(event_type):
        raise InvalidRequest(
            f"type: not an event type ({event_type[:EVENT_TYPE_MAX]!r}); an event type is "
            "lower-case words joined by dots, such as key.drawn or alarm.door_forced")
    return event_type


def merged_log(session: Session, scope: Scope, *, site: str | None = None,
               cabinet_id: str | None = None, event_type: str | None = None,
               before: Position | None = None, limit: int = 50) -> LogPage:
    """The events of the cabinets ``scope`` sees (narrowed by ``site``, ``cabinet_id`` and
    ``event_type``), newest first by their time, then cabinet and seq; ``before``: the rows
    after it."""
    if event_type is not None:
        check_event_type(event_type)
    seen = {str(cab): str(code) for cab, code in session.execute(
        cabinets_seen(scope, site=site, cabinet_id=cabinet_id))}
    if not seen:
        return LogPage([], None)
    query = select(HubEvent)
    if not (scope.whole_fleet and site is None and cabinet_id is None):
        # The ids as literals, not a subquery: PostgreSQL prunes the hash partitions of
        # hub_events to those cabinets' and checks the id inside ix_hub_events_at.
        query = query.where(HubEvent.cabinet_id.in_(sorted(seen)))
    if event_type is not None:
        # The type written into the SQL, not bound: a prepared statement's generic plan
        # then still sees that a rare type matches ix_hub_events_rare_type's predicate.
        query = query.where(HubEvent.type == literal_column(f"'{event_type}'", String))
    if before is not None:
        query = query.where(tuple_(HubEvent.at, HubEvent.cabinet_id, HubEvent.seq) < tuple_(
            literal(before.at, UTCDateTime()), literal(before.cabinet_id),
            literal(before.seq)))
    rows = list(session.scalars(query.order_by(
        HubEvent.at.desc(), HubEvent.cabinet_id.desc(), HubEvent.seq.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    # An event of a cabinet the hub no longer lists is nobody's: never shown.
    items = [_event_out(e, seen[e.cabinet_id]) for e in rows if e.cabinet_id in seen]
    last = rows[-1] if rows else None
    return LogPage(items, Position(last.at, last.cabinet_id, last.seq).token()
                   if more and last is not None else None)
