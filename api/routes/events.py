"""The event log: filtered pages by sequence cursor, CSV export, and the live SSE feed."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import Field
from sqlalchemy.orm import Session

from api.deps import BearerDep, OptionsDep, ReadSession, RuntimeDep, needs, recheck
from api.schemas import MAX_SEQ, Instant, KeyNumber, Out, RuleId, Search
from api.schemas import EventType as EventTypeName
from api.stream import EventFeed
from kiosk.services import events
from kiosk.services.authz import Permission as P
from kiosk.services.events import EventFilter
from kiosk.store.models import Event

router = APIRouter(tags=["events"])

EVENTS_MAX_PAGE = 500
STREAM_BATCH = 200
Seq = Annotated[int, Query(ge=0, le=MAX_SEQ)]


class EventOut(Out):
    cabinet_id: str
    seq: int
    at: dt.datetime
    type: str
    actors: list[str]
    slot: int | None
    key_number: str | None
    decision: str | None
    rules: list[str]
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, row: Event) -> EventOut:
        return cls(
            cabinet_id=row.cabinet_id,
            seq=row.seq,
            at=row.at,
            type=row.type,
            actors=json.loads(row.actors),
            slot=row.slot,
            key_number=row.key_number,
            decision=row.decision,
            rules=json.loads(row.rules),
            payload=json.loads(row.payload),
            prev_hash=row.prev_hash,
            hash=row.hash,
        )


class EventPage(Out):
    items: list[EventOut]
    next_after: int | None = Field(
        description="Pass as ?after= for the next page; null when this was the last one."
    )


def _filter(
    type: EventTypeName | None = None,
    type_prefix: EventTypeName | None = None,
    key_number: KeyNumber | None = None,
    actor: Annotated[Search | None, Query(description="e.g. account:admin or a person id")] = None,
    rule: RuleId | None = None,
    decision: Literal["allow", "deny"] | None = None,
    since: Instant | None = None,
    until: Instant | None = None,
    after: Seq = 0,
    before: Annotated[int | None, Query(ge=1, le=MAX_SEQ)] = None,
) -> EventFilter:
    return EventFilter(
        type=type,
        type_prefix=type_prefix,
        key_number=key_number,
        actor=actor,
        rule=rule,
        decision=decision,
        since=since,
        until=until,
        after=after,
        before=before,
    )


Filter = Annotated[EventFilter, Depends(_filter)]


@router.get(
    "/events",
    response_model=EventPage,
    dependencies=[needs(P.EVENTS_READ)],
    summary="Events in sequence order after a cursor, filtered",
)
def list_events(
    runtime: RuntimeDep,
    session: ReadSession,
    where: Filter,
    limit: Annotated[int, Query(ge=1, le=EVENTS_MAX_PAGE)] = 100,
) -> EventPage:
    rows, next_after = events.page(
        session, cabinet_id=runtime.settings.cabinet_id, where=where, limit=limit
    )
    return EventPage(items=[EventOut.of(r) for r in rows], next_after=next_after)


@router.get(
    "/events/export.csv",
    response_class=StreamingResponse,
    dependencies=[needs(P.EVENTS_READ)],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    summary="Every matching event as CSV, hashes included (for offline review)",
)
def export_csv(runtime: RuntimeDep, where: Filter) -> StreamingResponse:
    chunks = events.csv_rows(runtime.engine, cabinet_id=runtime.settings.cabinet_id, where=where)
    name = f"events-{runtime.settings.cabinet_id}.csv"
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


SSE_EVENT_SCHEMA: dict[str, Any] = {
    "description": "One Server-Sent Event; `data` is the event as JSON.",
    "type": "object",
    "required": ["data", "event", "id"],
    "properties": {
        "event": {"const": "audit"},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "retry": {"type": "integer"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/EventOut"},
        },
    },
}


def _sse(event: EventOut) -> str:
    return f"id: {event.seq}\nevent: {_SSE_EVENT}\ndata: {event.model_dump_json()}\n\n"


_SSE_EVENT = "audit"


@router.get(
    "/events/stream",
    response_class=StreamingResponse,
    dependencies=[needs(P.EVENTS_READ)],
    responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}}}},
    summary="Live feed (Server-Sent Events), resumable with Last-Event-ID or ?after=",
    description=(
        "Each event is sent as `event: audit` with `id:` its sequence number and `data:` the "
        "same JSON as GET /events. Without Last-Event-ID or ?after= the feed starts at the "
        "current head (new events only). The server ends a stream after a while; EventSource "
        "clients reconnect on their own and resume from the last id they saw."
    ),
)
async def stream(
    request: Request,
    runtime: RuntimeDep,
    options: OptionsDep,
    credentials: BearerDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=18, pattern=r"^[0-9]{1,18}$")
    ] = None,
) -> StreamingResponse:
    feed: EventFeed = request.app.state.feed
    secret = credentials.credentials if credentials else ""
    if last_event_id is not None:
        start = int(last_event_id)
    elif after is not None:
        start = after
    else:
        start, _ = await anyio.to_thread.run_sync(runtime.audit.head)
    cabinet_id = runtime.settings.cabinet_id

    def read(cursor: int) -> list[EventOut]:
        with Session(runtime.engine) as session:
            rows = events.after(session, cabinet_id=cabinet_id, seq=cursor, limit=STREAM_BATCH)
            return [EventOut.of(r) for r in rows]

    async def still_allowed() -> dt.datetime | Literal[False] | None:
        """The token's end, or False once it no longer authorizes this stream."""
        caller = await anyio.to_thread.run_sync(recheck, runtime.audit, options.auth_policy,
                                                secret)
        if caller is None or not caller.can(P.EVENTS_READ):
            return False
        return caller.expires_at

    async def body() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + options.stream_max_seconds
        next_heartbeat = loop.time() + options.stream_heartbeat_seconds
        with feed.subscribe() as sub:
            yield "retry: 3000\n\n"
            cursor = start
            while True:
                sub.wake.clear()
                batch = await anyio.to_thread.run_sync(read, cursor)
                # Before every delivery and heartbeat: a revoked or expired token, or a
                # changed password, ends the stream now, not at stream_max_seconds. Checked
                # after the read, so every event in the batch was committed while the token
                # still held: checked before, a revocation committing in between delivered
                # its own event to the token it revoked.
                expires = await still_allowed()
                if expires is False:
                    return
                for item in batch:
                    yield _sse(item)
                    cursor = item.seq
                if len(batch) >= STREAM_BATCH:
                    continue
                if loop.time() >= next_heartbeat:
                    yield ": keep-alive\n\n"
                    next_heartbeat = loop.time() + options.stream_heartbeat_seconds
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                wait = min(next_heartbeat - loop.time(), remaining)
                if expires is not None:
                    # Wake just after the token's end (timers may fire a little early).
                    left = (expires - dt.datetime.now(dt.UTC)).total_seconds()
                    wait = min(wait, max(0.0, left) + 0.05)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub.wake.wait(), timeout=max(0.0, wait))

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/events/{seq:int}", response_model=EventOut, dependencies=[needs(P.EVENTS_READ)])
def get_event(
    seq: Annotated[int, Path(ge=1, le=MAX_SEQ)], runtime: RuntimeDep, session: ReadSession
) -> EventOut:
    return EventOut.of(events.get(session, cabinet_id=runtime.settings.cabinet_id, seq=seq))
