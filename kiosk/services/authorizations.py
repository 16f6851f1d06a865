"""K6 owner authorizations (委托书) and the phone confirmation before a proxy's first draw.

An authorization names the owner, the proxy, the units (each must be the owner's), and a
validity period. Where ``requires_phone_confirmation`` is set, the proxy may draw only after
a call to the owner is recorded whose latest outcome is "confirmed"; ``readiness`` says
whether a draw could go ahead now and why not.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog, NewEvent
from kiosk.errors import Conflict, InvalidRequest
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.store.models import (
    AuthorizationUnit,
    Owner,
    OwnerAuthorization,
    Person,
    PhoneConfirmation,
    PhoneOutcome,
    Unit,
)
from kiosk.store.types import utcnow

MAX_VALIDITY = dt.timedelta(days=366)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reasons: list[str]


def readiness(auth: OwnerAuthorization, *, at: dt.datetime | None = None) -> Readiness:
    """Could the proxy draw the owner's unit key at ``at``? (K6)."""
    at = at or utcnow()
    reasons: list[str] = []
    if auth.revoked:
        reasons.append("revoked")
    if at < auth.valid_from:
        reasons.append("not yet valid")
    if at >= auth.valid_to:
        reasons.append("expired")
    if auth.requires_phone_confirmation:
        calls = sorted(auth.phone_confirmations, key=lambda c: (c.called_at, str(c.id)))
        if not calls or calls[-1].outcome != PhoneOutcome.CONFIRMED:
            reasons.append("phone confirmation with the owner missing")
    return Readiness(not reasons, reasons)


def list_authorizations(
    session: Session,
    *,
    owner_id: uuid.UUID | None,
    proxy_id: uuid.UUID | None,
    unit_id: uuid.UUID | None,
    valid_at: dt.datetime | None,
    include_revoked: bool,
    limit: int,
    offset: int,
) -> tuple[list[OwnerAuthorization], int]:
    query = select(OwnerAuthorization)
    if owner_id is not None:
        query = query.where(OwnerAuthorization.owner_id == owner_id)
    if proxy_id is not None:
        query = query.where(OwnerAuthorization.proxy_id == proxy_id)
    if unit_id is not None:
        query = query.where(OwnerAuthorization.units.any(AuthorizationUnit.unit_id == unit_id))
    if valid_at is not None:
        query = query.where(
            OwnerAuthorization.valid_from <= valid_at, OwnerAuthorization.valid_to > valid_at
        )
    if not include_revoked:
        query = query.where(OwnerAuthorization.revoked.is_(False))
    return tx.page(
        session,
        query,
        order_by=[OwnerAuthorization.valid_from.desc(), OwnerAuthorization.id],
        limit=limit,
        offset=offset,
    )


def get_authorization(session: Session, *, authorization_id: uuid.UUID) -> OwnerAuthorization:
    return tx.get(session, OwnerAuthorization, authorization_id, "owner authorization")


def register(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    owner_id: uuid.UUID,
    proxy_id: uuid.UUID,
    letter_ref: str,
    unit_ids: Sequence[uuid.UUID],
    valid_from: dt.datetime,
    valid_to: dt.datetime,
    requires_phone_confirmation: bool,
) -> OwnerAuthorization:
    """Record an owner's letter of authorization for a proxy (K6)."""
    owner = tx.get(session, Owner, owner_id, "owner")
    proxy = tx.get(session, Person, proxy_id, "person")
    if valid_to <= valid_from:
        raise InvalidRequest("K6: valid_to must be after valid_from")
    if valid_to - valid_from > MAX_VALIDITY:
        raise InvalidRequest(f"K6: an authorization lasts at most {MAX_VALIDITY.days} days")
    if valid_to <= utcnow():
        raise InvalidRequest("K6: the authorization would already have ended")
    wanted = list(dict.fromkeys(unit_ids))
    for unit_id in wanted:
        unit = tx.get(session, Unit, unit_id, "unit")
        if unit.owner_id != owner.id:
            raise InvalidRequest(f"K6: unit {unit.room_number} does not belong to this owner")
    auth = OwnerAuthorization(
        owner_id=owner.id,
        proxy_id=proxy.id,
        letter_ref=letter_ref,
        valid_from=valid_from,
        valid_to=valid_to,
        requires_phone_confirmation=requires_phone_confirmation,
    )
    auth.units = [AuthorizationUnit(unit_id=u) for u in wanted]
    session.add(auth)
    session.flush()
    tx.log(
        session,
        audit,
        NewEvent(
            type="authorization.registered",
            actors=by.actors(),
            rules=["K6"],
            payload={
                "authorization": str(auth.id),
                "owner": str(owner.id),
                "proxy": str(proxy.id),
                "letter_ref": letter_ref,
                "units": [str(u) for u in wanted],
                "valid_from": valid_from.isoformat(),
                "valid_to": valid_to.isoformat(),
                "requires_phone_confirmation": requires_phone_confirmation,
            },
        ),
    )
    return auth


def revoke(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    authorization_id: uuid.UUID,
    note: str | None,
) -> OwnerAuthorization:
    auth = tx.get(session, OwnerAuthorization, authorization_id, "owner authorization")
    if auth.revoked:
        raise Conflict("K6: the authorization is already revoked")
    auth.revoked = True
    tx.log(
        session,
        audit,
        NewEvent(
            type="authorization.revoked",
            actors=by.actors(),
            rules=["K6"],
            payload={"authorization": str(auth.id), "note": note},
        ),
    )
    return auth


def record_phone_confirmation(
    session: Session,
    audit: AuditLog,
    *,
    by: Principal,
    authorization_id: uuid.UUID,
    called_by_id: uuid.UUID | None,
    called_at: dt.datetime | None,
    outcome: PhoneOutcome,
    note: str | None,
) -> PhoneConfirmation:
    """Record the call to the owner (who called, when, outcome) before a proxy's draw (K6)."""
    auth = tx.get(session, OwnerAuthorization, authorization_id, "owner authorization")
    if auth.revoked:
        raise Conflict("K6: the authorization is revoked")
    caller_ref = called_by_id or by.person_id
    if caller_ref is None:
        raise InvalidRequest("K6: name who called (called_by_id); this account is not a person")
    caller = tx.get(session, Person, caller_ref, "person")
    now = utcnow()
    at = called_at or now
    if at > now + dt.timedelta(minutes=5):
        raise InvalidRequest("K6: called_at lies in the future")
    call = PhoneConfirmation(
        authorization_id=auth.id, called_by_id=caller.id, called_at=at, outcome=outcome, note=note
    )
    session.add(call)
    session.flush()
    session.refresh(auth)
    tx.log(
        session,
        audit,
        NewEvent(
            type="authorization.phone_confirmation",
            actors=[*by.actors(), str(caller.id)],
            rules=["K6"],
            decision="allow" if outcome == PhoneOutcome.CONFIRMED else "deny",
            payload={
                "authorization": str(auth.id),
                "confirmation": str(call.id),
                "called_by": str(caller.id),
                "called_at": at.isoformat(),
                "outcome": outcome.value,
            },
        ),
    )
    return call


def list_phone_confirmations(
    session: Session, *, authorization_id: uuid.UUID
) -> list[PhoneConfirmation]:
    tx.get(session, OwnerAuthorization, authorization_id, "owner authorization")
    return list(
        session.scalars(
            select(PhoneConfirmation)
            .where(PhoneConfirmation.authorization_id == authorization_id)
            .order_by(PhoneConfirmation.called_at, PhoneConfirmation.id)
        ).all()
    )
