"""``/hub/v1``: thin routes over ``kiosk.fleet``.

Two kinds of caller. Cabinets sign every request with their device key (``/cursor``,
``/ingest``, ``/changes``) and get every answer, refusals included, signed by the hub's
key. Administrators use the same bearer tokens and permissions as the admin API
(``/sites``, enrolment codes, ``/cabinets``, ``/alarms``, ``/events``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
import weakref
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from api.deps import AuditDep, PrincipalDep, RuntimeDep, needs
from kiosk.audit import AuditLog
from kiosk.errors import (
    Conflict,
    InvalidRequest,
    KioskError,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)
from kiosk.fleet import changes as config_changes
from kiosk.fleet import held_records, hub, protocol, report_files, site_settings_hub
from kiosk.fleet import scope as scopes
from kiosk.fleet.ingest import Ingested, ingest_signed, parse_json
from kiosk.services.authz import Permission as P
from kiosk.store.db import write_session
from kiosk.store.models_fleet import HubCabinet, HubEvent, HubSite

router = APIRouter(tags=["hub"])
Name = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[\w.-]+$")]
LONG_POLL_STEP_S = 0.5
MAX_WAIT_S = 30.0


# ------------------------------------------------------------------- signed answers
def _status_of(exc: KioskError) -> int:
    for cls, status in ((NotAuthenticated, 401), (PermissionDenied, 403), (NotFound, 404),
                        (Conflict, 409), (InvalidRequest, 422)):
        if isinstance(exc, cls):
            return status
    return 500


def _signed(audit: AuditLog, request: Request, status: int, data: Any) -> Response:
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    nonce = request.headers.get(protocol.H_NONCE.lower(), "")
    signature = audit.device_key.sign(protocol.response_message(nonce=nonce, status=status,
                                                                body=body))
    return Response(body, status_code=status, media_type="application/json",
                    headers={protocol.H_HUB_SIGNATURE: signature})


async def _signed_request(request: Request, window_s: int) -> hub.SignedRequest:
    body = await request.body()
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return hub.SignedRequest(method=request.method, path=path,
                             headers={k.lower(): v for k, v in request.headers.items()},
                             body=body, now=time.time(), window_s=window_s)


async def _caller(request: Request, audit: AuditLog, window_s: int) -> tuple[hub.Caller, bytes]:
    signed = await _signed_request(request, window_s)
    caller = await asyncio.to_thread(hub.authenticate_request, audit, signed)
    return caller, signed.body


def _window(runtime: RuntimeDep) -> int:
    return runtime.settings.fleet.clock_window_s


class _HeadWatch:
    """The configuration version, read at most once per step by one of the waiting
    long-polls of this process: a thousand cabinets waiting cost two reads a second, not
    two thousand. (Another hub process's change is seen within a step, from the database.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: weakref.WeakKeyDictionary[Engine, tuple[int, float]] = (
            weakref.WeakKeyDictionary())

    def version(self, engine: Engine) -> int:
        with self._lock:
            version, read_at = self._seen.get(engine, (0, -1e9))
            if time.monotonic() - read_at >= LONG_POLL_STEP_S:
                with Session(engine) as session:
                    version = config_changes.current_version(session)
                self._seen[engine] = (version, time.monotonic())
            return version


_HEAD = _HeadWatch()


# ----------------------------------------------------------------- cabinet protocol
class EnrolIn(BaseModel):
    code: str = Field(min_length=4, max_length=40)
    cabinet_id: str = Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    public_key: str = Field(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")


@router.post("/enrol", summary="Enrol a cabinet with a one-time code (pins its device key)")
def enrol(body: EnrolIn, audit: AuditDep) -> dict[str, Any]:
    with write_session(audit.engine) as session:
        done = hub.enrol(session, audit, code=body.code, cabinet_id=body.cabinet_id,
                         public_key_hex=body.public_key)
    answer = {"cabinet_id": done.cabinet_id, "site": done.site,
              "hub_public_key": done.hub_public_key, "protocol": protocol.PROTOCOL}
    return {"answer": answer, "mac": protocol.enrolment_mac(body.code, answer)}


@router.get("/cursor", summary="(signed) How far the hub holds this cabinet's log")
async def cursor(request: Request, audit: AuditDep, runtime: RuntimeDep) -> Response:
    try:
        caller, _ = await _caller(request, audit, _window(runtime))

        def read() -> dict[str, Any]:
            with Session(audit.engine) as session:
                cab = session.scalars(select(HubCabinet).where(
                    HubCabinet.cabinet_id == caller.cabinet_id)).one()
                return {"acked_seq": cab.acked_seq, "head_hash": cab.head_hash,
                        "checkpoint_seq": cab.checkpoint_seq}

        return _signed(audit, request, 200, await asyncio.to_thread(read))
    except KioskError as exc:
        return _signed(audit, request, _status_of(exc), {"detail": str(exc)})


@router.post("/ingest", summary="(signed) Ship a batch of events, checkpoints and records")
async def ingest_batch(request: Request, audit: AuditDep, runtime: RuntimeDep) -> Response:
    try:
        signed = await _signed_request(request, _window(runtime))
        # The check and the batch in one transaction; a busy batch is ~0.5 MB of JSON, so
        # off the event loop. NaN/Infinity: 422 like other bad JSON.
        done: Ingested = await asyncio.to_thread(ingest_signed, audit, signed)
        return _signed(audit, request, 200, {"acked_seq": done.acked_seq,
                                             "head_hash": done.head_hash,
                                             "new_events": done.new_events})
    except KioskError as exc:
        return _signed(audit, request, _status_of(exc), {"detail": str(exc)})


@router.post("/ingest/report-file",
             summary="(signed) Ship one rendered file of an issued report (base64); taken "
                     "only if its SHA-256 is the one its report.generated event names")
async def ingest_report_file(request: Request, audit: AuditDep, runtime: RuntimeDep) -> Response:
    try:
        caller, body = await _caller(request, audit, _window(runtime))

        def parse_and_receive() -> report_files.Received:
            return report_files.receive(audit, cabinet_id=caller.cabinet_id,
                                        doc=parse_json(body))

        done = await asyncio.to_thread(parse_and_receive)
        return _signed(audit, request, 200, {"report": str(done.report_id), "name": done.name,
                                             "sha256": done.sha256, "stored": done.stored})
    except KioskError as exc:
        return _signed(audit, request, _status_of(exc), {"detail": str(exc)})


@router.get("/changes", summary="(signed) Configuration changed since version N (long-poll)")
async def changes(request: Request, audit: AuditDep, runtime: RuntimeDep,
                  since: Annotated[int, Query(ge=0)] = 0,
                  wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 0) -> Response:
    try:
        caller, _ = await _caller(request, audit, _window(runtime))

        def read() -> tuple[int, list[dict[str, Any]]]:
            with Session(audit.engine) as session:
                return config_changes.changes_since(session, since, caller.cabinet_id)

        deadline = time.monotonic() + wait
        version, found = await asyncio.to_thread(read)
        # A version past ``since`` with nothing for this cabinet still moves its cursor.
        while not found and version <= since and time.monotonic() < deadline:
            await asyncio.sleep(LONG_POLL_STEP_S)
            if await asyncio.to_thread(_HEAD.version, audit.engine) > since:
                version, found = await asyncio.to_thread(read)
        return _signed(audit, request, 200, {"version": version, "changes": found})
    except KioskError as exc:
        return _signed(audit, request, _status_of(exc), {"detail": str(exc)})


# ----------------------------------------------------------------------- fleet admin
class SiteIn(BaseModel):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    name: str = Field(min_length=1, max_length=200)


@router.post("/sites", status_code=201, dependencies=[needs(P.CABINETS_WRITE)],
             summary="Add a site (building)")
def create_site(body: SiteIn, audit: AuditDep, principal: PrincipalDep) -> dict[str, Any]:
    with write_session(audit.engine) as session:
        scopes.require_whole_fleet(scopes.scope_of(session, principal.account_id),
                                   "adding a site")
        site = hub.create_site(session, audit, code=body.code, name=body.name,
                               actors=principal.actors())
        return {"id": str(site.id), "code": site.code, "name": site.name}


@router.get("/sites", dependencies=[needs(P.CABINETS_READ)], summary="Sites and cabinets")
def list_sites(audit: AuditDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    with Session(audit.engine) as session:
        scope = scopes.scope_of(session, principal.account_id)
        sites = [s for s in session.scalars(select(HubSite).order_by(HubSite.code))
                 if scope.sees_site(s.id)]
        cabinets = session.scalars(select(HubCabinet).order_by(HubCabinet.cabinet_id)).all()
        return [{"code": s.code, "name": s.name,
                 "cabinets": [c.cabinet_id for c in cabinets if c.site_id == s.id]}
                for s in sites]


@router.post("/sites/{site_code}/enrolment-codes", status_code=201,
             dependencies=[needs(P.CABINETS_WRITE)],
             summary="A one-time code to enrol one cabinet of this site (valid 24 h)")
def create_code(site_code: str, audit: AuditDep, principal: PrincipalDep) -> dict[str, Any]:
    with write_session(audit.engine) as session:
        scope = scopes.scope_of(session, principal.account_id)
        if not scope.sees_site(hub.site_by_code(session, site_code).id):
            raise NotFound(f"no site {site_code}")
        code, expires = hub.create_enrolment_code(session, audit, site_code=site_code,
                                                  actors=principal.actors())
    return {"code": code, "site": site_code, "expires_at": expires.isoformat()}


@router.get("/sites/{site_code}/settings", dependencies=[needs(P.CABINETS_READ)],
            summary="The settings this site's cabinets take from the hub")
def get_site_settings(site_code: str, audit: AuditDep,
                      principal: PrincipalDep) -> dict[str, Any]:
    with Session(audit.engine) as session:
        site = _site_seen(session, principal, site_code)
        return {"site": site.code, "settings": site_settings_hub.for_site(session, site.id)}


@router.put("/sites/{site_code}/settings", dependencies=[needs(P.CABINETS_WRITE)],
            summary="Replace the settings this site's cabinets take from the hub "
                    "(business_hours, pin, alarms, site); they flow down by the cursor")
def put_site_settings(site_code: str, body: dict[str, Any], audit: AuditDep,
                      principal: PrincipalDep) -> dict[str, Any]:
    with write_session(audit.engine) as session:
        site = _site_seen(session, principal, site_code)
        done = site_settings_hub.set_for_site(session, audit, site=site, doc=body,
                                          actors=principal.actors())
        return {"site": site.code, "settings": done}


def _site_seen(session: Session, principal: Any, site_code: str) -> HubSite:
    """The site, or 404 for one outside the caller's scope (as if it did not exist)."""
    site = hub.site_by_code(session, site_code)
    if not scopes.scope_of(session, principal.account_id).sees_site(site.id):
        raise NotFound(f"no site {site_code}")
    return site


def _cabinet_out(c: HubCabinet, site: str) -> dict[str, Any]:
    return {"cabinet_id": c.cabinet_id, "site": site, "status": c.status, "key_id": c.key_id,
            "acked_seq": c.acked_seq, "checkpoint_seq": c.checkpoint_seq,
            "enrolled_at": c.enrolled_at.isoformat(),
            "last_seen_at": c.last_seen_at.isoformat() if c.last_seen_at else None}


@router.get("/cabinets", dependencies=[needs(P.CABINETS_READ)],
            summary="Enrolled cabinets, by id; page on with after=<the last cabinet_id>")
def list_cabinets(audit: AuditDep, principal: PrincipalDep, site: Name = None,
                  after: Name = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    with Session(audit.engine) as session:
        scope = scopes.scope_of(session, principal.account_id)
        query = select(HubCabinet, HubSite.code).join(HubSite, HubCabinet.site_id == HubSite.id)
        if scope.site_id is not None:
            query = query.where(HubCabinet.site_id == scope.site_id)
        if site is not None:
            query = query.where(HubSite.code == site)
        if after is not None:
            query = query.where(HubCabinet.cabinet_id > after)
        rows = session.execute(query.order_by(HubCabinet.cabinet_id).limit(limit)).all()
        return [_cabinet_out(c, code) for c, code in rows]


def _fleet_key_out(row: tuple[Any, str, str, int]) -> dict[str, Any]:
    key, site, cabinet_id, slot = row
    return {"id": str(key.id), "key_number": key.key_number, "label": key.label,
            "status": key.status.value, "site": site, "cabinet_id": cabinet_id, "slot": slot}


@router.get("/keys", dependencies=[needs(P.KEYS_READ)],
            summary="The fleet's keys by home cabinet, by key number; page on with "
                    "after=<the last key_number>")
def list_fleet_keys(audit: AuditDep, principal: PrincipalDep, site: Name = None,
                    cabinet_id: Name = None,
                    after: Annotated[str | None, Query(max_length=32)] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    with Session(audit.engine) as session:
        scope = scopes.scope_of(session, principal.account_id)
        return [_fleet_key_out(row) for row in scopes.fleet_keys(
            session, scope, site=site, cabinet_id=cabinet_id, after=after, limit=limit)]


@router.get("/keys/{key_id}", dependencies=[needs(P.KEYS_READ)],
            summary="One key of the fleet (404 outside the caller's site)")
def get_fleet_key(key_id: uuid.UUID, audit: AuditDep,
                  principal: PrincipalDep) -> dict[str, Any]:
    with Session(audit.engine) as session:
        return _fleet_key_out(scopes.fleet_key(
            session, scopes.scope_of(session, principal.account_id), key_id))


@router.post("/cabinets/{cabinet_id}/revoke", dependencies=[needs(P.CABINETS_WRITE)],
             summary="Revoke a cabinet: its requests are refused (403) from now on")
def revoke_cabinet(cabinet_id: str, audit: AuditDep, principal: PrincipalDep) -> dict[str, Any]:
    with write_session(audit.engine) as session:
        scopes.require_cabinet(session, scopes.scope_of(session, principal.account_id),
                               cabinet_id)
        cab = hub.revoke_cabinet(session, audit, cabinet_id=cabinet_id,
                                 actors=principal.actors())
        site = session.get(HubSite, cab.site_id)
        return _cabinet_out(cab, site.code if site else "")


@router.get("/alarms", dependencies=[needs(P.ALARMS_READ)], summary="Hub alarms")
def list_alarms(audit: AuditDep, principal: PrincipalDep,
                cabinet_id: str | None = None) -> list[dict[str, Any]]:
    with Session(audit.engine) as session:
        seen = scopes.visible_cabinets(session, scopes.scope_of(session, principal.account_id))
        return [{"id": str(a.id), "cabinet_id": a.cabinet_id, "kind": a.kind,
                 "message": a.message, "seq": a.seq, "state": a.state, "count": a.count,
                 "raised_at": a.raised_at.isoformat(), "last_at": a.last_at.isoformat()}
                for a in hub.list_alarms(session, cabinet_id=cabinet_id)
                if seen is None or a.cabinet_id in seen]


@router.get("/events", dependencies=[needs(P.EVENTS_READ)],
            summary="A cabinet's events as the hub holds them: after after_seq, oldest "
                    "first; or with before_seq, the newest ones before it, newest first")
def list_events(audit: AuditDep, principal: PrincipalDep, cabinet_id: str,
                after_seq: Annotated[int, Query(ge=0)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                type: str | None = None,
                before_seq: Annotated[int | None, Query(ge=1)] = None) -> list[dict[str, Any]]:
    with Session(audit.engine) as session:
        scopes.require_cabinet(session, scopes.scope_of(session, principal.account_id),
                               cabinet_id)
        query = select(HubEvent).where(HubEvent.cabinet_id == cabinet_id,
                                       HubEvent.seq > after_seq)
        if type is not None:
            query = query.where(HubEvent.type == type)
        if before_seq is not None:  # paging back from the newest (the console's log page)
            query = query.where(HubEvent.seq < before_seq).order_by(HubEvent.seq.desc())
        else:
            query = query.order_by(HubEvent.seq)
        rows = session.scalars(query.limit(limit)).all()
        return [{"cabinet_id": e.cabinet_id, "seq": e.seq, "at": e.at.isoformat(),
                 "type": e.type, "key_number": e.key_number, "slot": e.slot,
                 "decision": e.decision, "actors": json.loads(e.actors),
                 "payload": json.loads(e.payload), "hash": e.hash} for e in rows]


@router.get("/records",
            summary="The latest copy of one kind of the records the cabinets own (kind= loan, "
                    "alarm, alarm_note, report, intake or handover); each kind needs its own "
                    "read permission, as its list by site does")
def list_records(audit: AuditDep, principal: PrincipalDep, cabinet_id: Name = None,
                 site: Name = None, kind: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """One cabinet's records, or every cabinet's of a site, or (unscoped) the fleet's."""
    held_records.require_kind(principal, kind)  # before any read: 403 without a session
    with Session(audit.engine) as session:
        return held_records.latest(session, principal, kind=kind, cabinet_id=cabinet_id,
                                   site=site, limit=limit)


class ScopeIn(BaseModel):
    site: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[\w.-]+$")


@router.put("/accounts/{username}/site", dependencies=[needs(P.ACCOUNTS_WRITE)],
            summary="Scope an account to one site (null: the whole fleet again)")
def scope_account(username: str, body: ScopeIn, audit: AuditDep,
                  principal: PrincipalDep) -> dict[str, Any]:
    with write_session(audit.engine) as session:
        done = scopes.set_scope(session, audit,
                                by=scopes.scope_of(session, principal.account_id),
                                username=username, site_code=body.site,
                                actors=principal.actors())
        return {"account": username, "site": done.site_code}
