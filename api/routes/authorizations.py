"""K6 owner authorizations (委托书) and phone confirmations with the owner."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Body
from pydantic import Field, StrictBool

from api.deps import AuditDep, PrincipalDep, ReadSession, needs
from api.schemas import Code, Instant, Limit, Note, Offset, Out, Page, Strict
from kiosk.services import authorizations, tx
from kiosk.services.authz import Permission as P
from kiosk.store.models import OwnerAuthorization, PhoneOutcome

router = APIRouter(tags=["owner authorizations (K6)"])


class AuthorizationIn(Strict):
    owner_id: uuid.UUID
    proxy_id: uuid.UUID
    letter_ref: Code = Field(description="Reference of the written letter of authorization.")
    unit_ids: list[uuid.UUID] = Field(min_length=1, max_length=50)
    valid_from: Instant
    valid_to: Instant
    requires_phone_confirmation: StrictBool = True


class AuthorizationOut(Out):
    id: uuid.UUID
    owner_id: uuid.UUID
    proxy_id: uuid.UUID
    letter_ref: str
    unit_ids: list[uuid.UUID]
    valid_from: dt.datetime
    valid_to: dt.datetime
    requires_phone_confirmation: bool
    revoked: bool
    ready_for_draw: bool = Field(description="K6: the proxy could draw now.")
    not_ready_because: list[str]
    updated_at: dt.datetime

    @classmethod
    def of(cls, auth: OwnerAuthorization) -> AuthorizationOut:
        ready = authorizations.readiness(auth)
        return cls(
            id=auth.id,
            owner_id=auth.owner_id,
            proxy_id=auth.proxy_id,
            letter_ref=auth.letter_ref,
            unit_ids=[u.unit_id for u in auth.units],
            valid_from=auth.valid_from,
            valid_to=auth.valid_to,
            requires_phone_confirmation=auth.requires_phone_confirmation,
            revoked=auth.revoked,
            ready_for_draw=ready.ready,
            not_ready_because=ready.reasons,
            updated_at=auth.updated_at,
        )


class PhoneConfirmationIn(Strict):
    outcome: PhoneOutcome
    called_by_id: uuid.UUID | None = Field(
        default=None, description="Who called; default: the caller's person."
    )
    called_at: Instant | None = Field(default=None, description="Default: now.")
    note: Note | None = None


class PhoneConfirmationOut(Out):
    id: uuid.UUID
    authorization_id: uuid.UUID
    called_by_id: uuid.UUID
    called_at: dt.datetime
    outcome: PhoneOutcome
    note: str | None


class RevokeIn(Strict):
    note: Note | None = None


@router.get(
    "/owner-authorizations",
    response_model=Page[AuthorizationOut],
    dependencies=[needs(P.AUTHORIZATIONS_READ)],
)
def list_authorizations(
    session: ReadSession,
    owner_id: uuid.UUID | None = None,
    proxy_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    valid_at: Instant | None = None,
    include_revoked: bool = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[AuthorizationOut]:
    rows, total = authorizations.list_authorizations(
        session,
        owner_id=owner_id,
        proxy_id=proxy_id,
        unit_id=unit_id,
        valid_at=valid_at,
        include_revoked=include_revoked,
        limit=limit,
        offset=offset,
    )
    items = [AuthorizationOut.of(a) for a in rows]
    return Page[AuthorizationOut](items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/owner-authorizations",
    response_model=AuthorizationOut,
    status_code=201,
    dependencies=[needs(P.AUTHORIZATIONS_WRITE)],
    summary="K6: register an owner's letter of authorization for a proxy",
)
def register(body: AuthorizationIn, by: PrincipalDep, audit: AuditDep) -> AuthorizationOut:
    with tx.write(audit) as session:
        return AuthorizationOut.of(
            authorizations.register(session, audit, by=by, **body.model_dump())
        )


@router.get(
    "/owner-authorizations/{authorization_id:uuid}",
    response_model=AuthorizationOut,
    dependencies=[needs(P.AUTHORIZATIONS_READ)],
)
def get_authorization(authorization_id: uuid.UUID, session: ReadSession) -> AuthorizationOut:
    return AuthorizationOut.of(
        authorizations.get_authorization(session, authorization_id=authorization_id)
    )


@router.post(
    "/owner-authorizations/{authorization_id:uuid}/revoke",
    response_model=AuthorizationOut,
    dependencies=[needs(P.AUTHORIZATIONS_WRITE)],
)
def revoke(
    authorization_id: uuid.UUID,
    by: PrincipalDep,
    audit: AuditDep,
    body: Annotated[RevokeIn | None, Body()] = None,
) -> AuthorizationOut:
    with tx.write(audit) as session:
        auth = authorizations.revoke(
            session,
            audit,
            by=by,
            authorization_id=authorization_id,
            note=body.note if body else None,
        )
        return AuthorizationOut.of(auth)


@router.get(
    "/owner-authorizations/{authorization_id:uuid}/phone-confirmations",
    response_model=list[PhoneConfirmationOut],
    dependencies=[needs(P.AUTHORIZATIONS_READ)],
)
def list_phone_confirmations(
    authorization_id: uuid.UUID, session: ReadSession
) -> list[PhoneConfirmationOut]:
    rows = authorizations.list_phone_confirmations(session, authorization_id=authorization_id)
    return [PhoneConfirmationOut.model_validate(r) for r in rows]


@router.post(
    "/owner-authorizations/{authorization_id:uuid}/phone-confirmations",
    response_model=PhoneConfirmationOut,
    status_code=201,
    dependencies=[needs(P.AUTHORIZATIONS_CONFIRM_PHONE)],
    summary="K6: record the call to the owner before the proxy's first draw",
)
def record_phone_confirmation(
    authorization_id: uuid.UUID, body: PhoneConfirmationIn, by: PrincipalDep, audit: AuditDep
) -> PhoneConfirmationOut:
    with tx.write(audit) as session:
        call = authorizations.record_phone_confirmation(
            session, audit, by=by, authorization_id=authorization_id, **body.model_dump()
        )
        return PhoneConfirmationOut.model_validate(call)
