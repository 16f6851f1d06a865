"""The running cabinet: live slot status, and remote unlocks confirmed by two admins (K2).

These endpoints talk to the ``Cabinet`` the daemon attached to the app
(``create_admin_app(runtime, cabinet=...)``); the API can run without one, and then they
answer 503. They are ``async`` so they run on the cabinet's event loop, like its screen.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from api.deps import AuditDep, PrincipalDep, needs
from api.schemas import Out, Strict
from kiosk.audit import NewEvent
from kiosk.cabinet import Cabinet, CabinetError
from kiosk.errors import Conflict, NotFound, Unavailable
from kiosk.services import dual_control, tx
from kiosk.services.authz import Permission as P
from kiosk.services.authz import Principal
from kiosk.store.types import utcnow

router = APIRouter(tags=["cabinet"])

REMOTE_UNLOCK_TTL = dt.timedelta(seconds=120)


@dataclass
class PendingUnlock:
    id: uuid.UUID
    key_number: str
    person_id: uuid.UUID
    reason_code: str
    reason_text: str | None
    requested_by: uuid.UUID
    """The requesting admin's account id."""
    requested_actor: str
    requested_person: uuid.UUID
    """The person behind the requesting account (K2: the confirmer must be someone else)."""
    department_id: uuid.UUID | None
    """The borrower's department: a department-scoped admin sees only its own."""
    requested_at: dt.datetime
    expires_at: dt.datetime
    used: bool = False


@dataclass
class RemoteUnlocks:
    """Remote unlock requests waiting for a second admin, kept in memory on ``app.state``.

    Like a night opening's 60-second window, a request is ephemeral: it lives 120 s, is
    used at most once, and does not survive a restart (nothing is lost: the request and
    its confirmation are audit events, and an unconfirmed request simply lapses).
    """

    ttl: dt.timedelta = REMOTE_UNLOCK_TTL
    clock: Callable[[], dt.datetime] = utcnow
    pending: dict[uuid.UUID, PendingUnlock] = field(default_factory=dict)

    def add(self, **values: Any) -> PendingUnlock:
        now = self.clock()
        for stale in [k for k, p in self.pending.items() if p.expires_at <= now - self.ttl]:
            del self.pending[stale]  # keep the table small; long-expired ones only
        request = PendingUnlock(id=uuid.uuid4(), requested_at=now, expires_at=now + self.ttl,
                                **values)
        self.pending[request.id] = request
        return request

    def claim(
        self,
        request_id: uuid.UUID,
        by: Principal,
        check: Callable[[PendingUnlock], object] | None = None,
    ) -> PendingUnlock:
        """The request, marked used, if ``by`` may confirm it now; ``Conflict`` if not.

        ``check`` runs the record-based checks (who the two people are) before the request
        is used up, so a refused confirmation leaves it for the right second admin."""
        request = self.pending.get(request_id)
        if request is None or not by.sees_department(request.department_id):
            raise NotFound("remote unlock request does not exist")
        if request.used:
            raise Conflict("this remote unlock request was already used")
        if request.requested_by == by.account_id:
            raise Conflict("a remote unlock needs two different admins: "
                           "the requester cannot confirm it")
        if self.clock() >= request.expires_at:
            raise Conflict("this remote unlock request has expired")
        if check is not None:
            check(request)
        request.used = True
        return request


def get_cabinet(request: Request) -> Cabinet:
    cabinet: Cabinet | None = getattr(request.app.state, "cabinet", None)
    if cabinet is None:
        raise Unavailable("no cabinet is attached to this API")
    return cabinet


def _store(request: Request) -> RemoteUnlocks:
    store: RemoteUnlocks = request.app.state.remote_unlocks
    return store


class SlotLive(Out):
    number: int
    key_present: bool | None = Field(description="From the last sensor scan; null: not scanned.")
    key_number: str | None = Field(description="The key whose home this slot is.")
    on_loan: bool | None
    released: bool = Field(description="Unlocked for the current session.")
    fob: str | None = Field(default=None, description=(
        "Identity cabinets: the fob ROM the slot's receptor read at the last scan."))
    check: Literal["identified", "present_only", "wrong_key"] | None = Field(
        default=None, description=(
            "How the key in the slot is known (issue 13): identified by its own fob, only "
            "present (a presence-only cabinet, an unpaired fob, an unreadable receptor), or "
            "another key's fob; null: no key seen."))


class CabinetLive(Out):
    cabinet: str
    state: str = Field(description="The session state: idle, choosing, releasing, ...")
    door_open: bool | None
    lock_bus_ok: bool
    reconcile_pending: bool
    identity: bool = Field(default=False, description=(
        "The cabinet reads each key's fob per slot ([hardware.identity]); false: presence only."))
    identity_faults: list[int] = Field(default_factory=list, description=(
        "Slots whose identity receptor could not be read."))
    slots: list[SlotLive]


class RemoteUnlockIn(Strict):
    key_number: str = Field(min_length=1, max_length=64)
    person_id: uuid.UUID = Field(description="Who will take the key (the borrower).")
    reason_code: str = Field(min_length=1, max_length=32)
    reason_text: str | None = Field(default=None, max_length=200)


class RemoteUnlockOut(Out):
    id: uuid.UUID
    expires_at: dt.datetime


class RemoteUnlockDone(Out):
    id: uuid.UUID
    slot: int
    key_number: str
    person_id: uuid.UUID
    admins: list[str]


def _refused(exc: CabinetError) -> Conflict:
    return Conflict(f"{exc.code}: {exc}" if str(exc) != exc.code else exc.code)


@router.get("/cabinet/live", response_model=CabinetLive, dependencies=[needs(P.CABINETS_READ)],
            summary="The running cabinet: session state, door, lock bus, every slot")
async def live_status(request: Request) -> CabinetLive:
    return CabinetLive.model_validate(get_cabinet(request).live_status())


@router.post(
    "/cabinet/remote-unlocks",
    response_model=RemoteUnlockOut,
    status_code=202,
    dependencies=[needs(P.CABINETS_REMOTE_UNLOCK)],
    summary="Ask for a remote unlock (K2); a second admin confirms it within 120 s",
    description=(
        "The caller's account must be linked to a person who holds the admin role. The "
        "confirmer must be a different such person, whose account existed before the "
        "request or was not made by the requester."
    ),
)
async def request_remote_unlock(
    body: RemoteUnlockIn, request: Request, by: PrincipalDep, audit: AuditDep
) -> RemoteUnlockOut:
    cabinet = get_cabinet(request)
    try:
        key, person = cabinet.check_remote_draw(
            body.key_number, body.person_id, body.reason_code, body.reason_text
        )
    except CabinetError as exc:
        if exc.code in ("key_unknown", "person_unknown"):
            raise NotFound(str(exc)) from None
        raise _refused(exc) from None
    by.check_department(person.department_id, "person")
    with tx.read(audit) as session:
        requester = dual_control.entitled_admin(session, by)  # K2: an administrator in person
    pending = _store(request).add(
        key_number=key.key_number, person_id=person.id, reason_code=body.reason_code,
        reason_text=body.reason_text, requested_by=by.account_id, requested_actor=by.actor,
        requested_person=requester.id, department_id=person.department_id,
    )
    with tx.write(audit) as session:
        tx.log(session, audit, NewEvent(
            type="remote_unlock.requested", actors=[by.actor], slot=key.home_slot,
            key_number=key.key_number, rules=["K2"],
            payload={"request": str(pending.id), "borrower": str(person.id),
                     "borrower_name": person.name, "reason_code": body.reason_code,
                     "reason_text": body.reason_text, "expires_at": pending.expires_at.isoformat()},
        ))
    return RemoteUnlockOut(id=pending.id, expires_at=pending.expires_at)


@router.post(
    "/cabinet/remote-unlocks/{request_id:uuid}/confirm",
    response_model=RemoteUnlockDone,
    dependencies=[needs(P.CABINETS_REMOTE_UNLOCK)],
    summary="Confirm another admin's remote unlock: the key's slot opens for the borrower",
)
async def confirm_remote_unlock(
    request_id: uuid.UUID, request: Request, by: PrincipalDep, audit: AuditDep
) -> RemoteUnlockDone:
    cabinet = get_cabinet(request)

    def second_person(pending: PendingUnlock) -> None:
        with tx.read(audit) as session:
            dual_control.check_second_admin(
                session, by=by, requester_account=pending.requested_by,
                requester_person=pending.requested_person,
                requested_at=pending.requested_at,
            )

    pending = _store(request).claim(request_id, by, check=second_person)
    admins = (pending.requested_actor, by.actor)
    with tx.write(audit) as session:
        tx.log(session, audit, NewEvent(
            type="remote_unlock.confirmed", actors=list(admins), key_number=pending.key_number,
            decision="allow", rules=["K2", "K8"],
            payload={"request": str(pending.id), "borrower": str(pending.person_id),
                     "requested_by": admins[0], "confirmed_by": admins[1]},
        ))
    try:
        slot = await cabinet.remote_draw(pending.key_number, pending.person_id,
                                         pending.reason_code, pending.reason_text, admins)
    except CabinetError as exc:
        with tx.write(audit) as session:
            tx.log(session, audit, NewEvent(
                type="remote_unlock.refused", actors=list(admins), key_number=pending.key_number,
                decision="deny", rules=["K2"],
                payload={"request": str(pending.id), "code": exc.code, "detail": str(exc)},
            ))
        raise _refused(exc) from None
    return RemoteUnlockDone(id=pending.id, slot=slot, key_number=pending.key_number,
                            person_id=pending.person_id, admins=list(admins))
