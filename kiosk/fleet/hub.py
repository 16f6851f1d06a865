"""Hub services: sites, one-time enrolment codes, enrolment, authenticating a cabinet's
signed request, and hub alarms. Called by the thin routes in ``api/hub``.

Every refusal of a cabinet (unknown, revoked, bad signature, stale time, replayed nonce)
is an event in the hub's own chained log and, for the ones that mean trouble, a hub alarm.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.audit.chain import GENESIS_HASH
from kiosk.audit.device_key import key_id_of, public_from_hex, verify_signature
from kiosk.errors import Conflict, InvalidRequest, NotAuthenticated, NotFound, PermissionDenied
from kiosk.fleet import protocol
from kiosk.store.db import write_session
from kiosk.store.models import Cabinet
from kiosk.store.models_fleet import HubAlarm, HubCabinet, HubEnrolmentCode, HubNonce, HubSite
from kiosk.store.types import utcnow

log = logging.getLogger("kiosk.fleet.hub")
CODE_VALID = dt.timedelta(hours=24)


# ------------------------------------------------------------------------------ sites
def create_site(session: Session, audit: AuditLog, *, code: str, name: str,
                actors: list[str]) -> HubSite:
    if session.scalar(select(HubSite.id).where(HubSite.code == code)):
        raise Conflict(f"site {code} already exists")
    site = HubSite(code=code, name=name)
    session.add(site)
    session.flush()
    audit.append_in(session, NewEvent(type="fleet.site_created", actors=actors,
                                      payload={"site": code, "name": name}))
    return site


def site_by_code(session: Session, code: str) -> HubSite:
    site = session.scalars(select(HubSite).where(HubSite.code == code)).one_or_none()
    if site is None:
        raise NotFound(f"no site {code}")
    return site


def create_enrolment_code(session: Session, audit: AuditLog, *, site_code: str,
                          actors: list[str]) -> tuple[str, dt.datetime]:
    """A fresh one-time code for a cabinet of ``site_code``; shown once, stored hashed."""
    site = site_by_code(session, site_code)
    code = protocol.new_code()
    expires = utcnow() + CODE_VALID
    session.add(HubEnrolmentCode(code_hash=protocol.code_hash(code), site_id=site.id,
                                 expires_at=expires))
    audit.append_in(session, NewEvent(type="fleet.enrolment_code_created", actors=actors,
                                      payload={"site": site.code, "expires_at":
                                               expires.isoformat()}))
    return code, expires


@dataclass(frozen=True)
class Enrolled:
    cabinet_id: str
    site: str
    hub_public_key: str


def enrol(session: Session, audit: AuditLog, *, code: str, cabinet_id: str,
          public_key_hex: str) -> Enrolled:
    """Pin ``public_key_hex`` for ``cabinet_id``; the code works once, within its day."""
    public = public_from_hex(public_key_hex)  # a malformed key is a clear 400
    row = session.get(HubEnrolmentCode, protocol.code_hash(code), with_for_update=True)
    now = utcnow()
    if row is None or row.used_at is not None or row.expires_at <= now:
        audit.append_in(session, NewEvent(type="fleet.enrolment_refused",
                                          payload={"cabinet_id": cabinet_id,
                                                   "why": "unknown, used or expired code"}))
        raise NotAuthenticated("the enrolment code is unknown, used or expired")
    existing = session.scalars(
        select(HubCabinet).where(HubCabinet.cabinet_id == cabinet_id)).one_or_none()
    if existing is not None:
        raise Conflict(f"cabinet {cabinet_id} is already enrolled (revoke it to replace it "
                       "is not supported: give the new device a new cabinet id)")
    row.used_at, row.used_by = now, cabinet_id
    site = session.get(HubSite, row.site_id)
    assert site is not None
    session.add(HubCabinet(cabinet_id=cabinet_id, site_id=site.id, public_key=public_key_hex,
                           key_id=key_id_of(public), head_hash=GENESIS_HASH, acked_seq=0,
                           checkpoint_seq=0, status="active"))
    if session.scalar(select(Cabinet.id).where(Cabinet.code == cabinet_id)) is None:
        # The hub's record of the cabinet's slots: a key homed in one goes to this cabinet.
        session.add(Cabinet(code=cabinet_id, name=cabinet_id, location=site.name))
    audit.append_in(session, NewEvent(type="fleet.cabinet_enrolled", payload={
        "cabinet_id": cabinet_id, "site": site.code, "key_id": key_id_of(public)}))
    return Enrolled(cabinet_id, site.code, audit.device_key.public_hex)


def revoke_cabinet(session: Session, audit: AuditLog, *, cabinet_id: str,
                   actors: list[str]) -> HubCabinet:
    cabinet = session.scalars(
        select(HubCabinet).where(HubCabinet.cabinet_id == cabinet_id)).one_or_none()
    if cabinet is None:
        raise NotFound(f"no enrolled cabinet {cabinet_id}")
    cabinet.status, cabinet.revoked_at = "revoked", utcnow()
    audit.append_in(session, NewEvent(type="fleet.cabinet_revoked", actors=actors,
                                      payload={"cabinet_id": cabinet_id}))
    return cabinet


# ------------------------------------------------------------------- authentication
@dataclass(frozen=True)
class Caller:
    """A cabinet whose request verified."""

    cabinet_id: str
    nonce: str


@dataclass(frozen=True)
class SignedRequest:
    """What a cabinet's signature covers, as the route received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    now: float
    window_s: int = protocol.CLOCK_WINDOW_S


@dataclass(frozen=True)
class Checked:
    """The outcome of ``check_request``: ``why`` is None when the request verified."""

    cabinet_id: str
    nonce: str
    path: str
    cabinet: HubCabinet | None
    why: str | None = None
    forbidden: bool = False

    def caller(self) -> Caller:
        """The verified caller; the refusal (401/403) otherwise, already logged."""
        if self.why is not None:
            log.warning("refused %s from %r: %s", self.path, self.cabinet_id, self.why)
            if self.forbidden:
                raise PermissionDenied(f"cabinet {self.cabinet_id} is revoked at the hub")
            raise NotAuthenticated(f"request refused: {self.why}")
        return Caller(self.cabinet_id, self.nonce)


def check_request(session: Session, audit: AuditLog, request: SignedRequest, *,
                  lock: bool = False) -> Checked:
    """Check a cabinet's signed request in ``session``'s transaction: the pinned key's
    signature, the cabinet's status, the time window, and the nonce, which is taken in the
    same transaction (a replay finds it). A refusal is logged in the hub's chain (and
    alarmed) in that transaction and returned, not raised, so the caller commits it first.

    ``lock`` takes the cabinet's row lock as the check reads it: ingest runs its batch in
    the same transaction (one transaction per batch instead of two)."""
    headers = request.headers
    cabinet_id = headers.get(protocol.H_CABINET.lower(), "")
    nonce = headers.get(protocol.H_NONCE.lower(), "")
    signature = headers.get(protocol.H_SIGNATURE.lower(), "")
    try:
        timestamp = int(headers.get(protocol.H_TIME.lower(), ""))
    except ValueError:
        timestamp = 0
    query = select(HubCabinet).where(HubCabinet.cabinet_id == cabinet_id)
    cabinet = session.scalars(query.with_for_update() if lock else query).one_or_none()
    why: str | None = None
    forbidden = False
    if not cabinet_id or not nonce or not signature or not timestamp:
        why = "unsigned request"
    elif cabinet is None:
        why = "cabinet not enrolled"
    elif not verify_signature(public_from_hex(cabinet.public_key), signature,
                              protocol.request_message(
                                  method=request.method, path=request.path,
                                  cabinet_id=cabinet_id, timestamp=timestamp, nonce=nonce,
                                  body=request.body)):
        why = "signature does not verify with the pinned device key"
    elif cabinet.status != "active":
        why, forbidden = "cabinet revoked", True
    elif not protocol.within_window(timestamp, request.now, request.window_s):
        why = (f"request time {timestamp} is {int(request.now - timestamp)} s from the hub's "
               f"clock (window {request.window_s} s)")
    elif not take_nonce(session, cabinet_id, nonce):
        why = "replayed request (nonce seen before)"
    if why is not None:
        audit.append_in(session, NewEvent(type="fleet.request_refused", decision="deny",
                                          payload={"cabinet_id": cabinet_id or None,
                                                   "path": request.path, "why": why}))
        if cabinet is not None or forbidden:
            raise_alarm(session, cabinet_id=cabinet_id or None, kind="refused_request",
                        message=why)
    else:
        assert cabinet is not None
        cabinet.last_seen_at = utcnow()
    return Checked(cabinet_id, nonce, request.path, cabinet, why, forbidden)


def take_nonce(session: Session, cabinet_id: str, nonce: str) -> bool:
    """Record ``nonce`` as seen; False if it was seen before (a replay). One statement that
    skips a held nonce, instead of an insert inside a savepoint that fails on it (three
    round trips to the database per request)."""
    statement = _TAKE_NONCE[session.get_bind().dialect.name == "postgresql"]
    taken = session.execute(statement, {"cabinet_id": cabinet_id, "nonce": nonce,
                                        "at": utcnow()}).first()
    return taken is not None


_TAKE_NONCE = {postgres: (postgresql_insert if postgres else sqlite_insert)(HubNonce)
               .on_conflict_do_nothing(index_elements=["cabinet_id", "nonce"])
               .returning(HubNonce.nonce) for postgres in (True, False)}
"""Built once (a statement built per request costs more than sending it)."""


def authenticate(audit: AuditLog, *, method: str, path: str, headers: dict[str, str],
                 body: bytes, now: float, window_s: int = protocol.CLOCK_WINDOW_S) -> Caller:
    """Check a cabinet's signed request; refuse (401/403) and log anything else."""
    return authenticate_request(audit, SignedRequest(method, path, headers, body, now, window_s))


def authenticate_request(audit: AuditLog, request: SignedRequest) -> Caller:
    """``authenticate`` for a request the route has already gathered."""
    with write_session(audit.engine) as session:
        checked = check_request(session, audit, request)
    return checked.caller()


def prune_nonces(engine_audit: AuditLog, window_s: int = protocol.CLOCK_WINDOW_S) -> int:
    """Nonces older than twice the window can never be replayed inside it: drop them."""
    cutoff = utcnow() - dt.timedelta(seconds=2 * window_s)
    with write_session(engine_audit.engine) as session:
        result = session.execute(delete(HubNonce).where(HubNonce.at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)


# ---------------------------------------------------------------------------- alarms
def raise_alarm(session: Session, *, cabinet_id: str | None, kind: str, message: str,
                seq: int | None = None) -> HubAlarm:
    """One open alarm per (cabinet, kind): a repeat counts up instead of piling up rows."""
    alarm = session.scalars(
        select(HubAlarm).where(HubAlarm.cabinet_id == cabinet_id, HubAlarm.kind == kind,
                               HubAlarm.state == "open").with_for_update()).first()
    if alarm is None:
        alarm = HubAlarm(cabinet_id=cabinet_id, kind=kind, message=message, seq=seq,
                         state="open", count=1)
        session.add(alarm)
    else:
        alarm.count += 1
        alarm.last_at, alarm.message, alarm.seq = utcnow(), message, seq
    session.flush()
    return alarm


def list_alarms(session: Session, *, cabinet_id: str | None = None) -> list[HubAlarm]:
    query = select(HubAlarm).order_by(HubAlarm.raised_at)
    if cabinet_id is not None:
        query = query.where(HubAlarm.cabinet_id == cabinet_id)
    return list(session.scalars(query))


def validate_site_code(code: str) -> str:
    if not code or len(code) > 64 or not all(c.isalnum() or c in "-_." for c in code):
        raise InvalidRequest("a site code is 1..64 letters, digits, '-', '_' or '.'")
    return code
