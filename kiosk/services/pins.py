"""PINs at the cabinet: argon2id hashes, the per-card lock after wrong PINs, set, change and
reset (README "PIN and duress").

Why it is built this way:
- Only argon2id hashes are stored (the PIN and, apart, the duress PIN). A try is checked
  against both hashes every time, in the same order, so the time a check takes does not
  tell a duress PIN from a wrong one.
- Wrong PINs are counted per card in a table (``pin_lockouts``): the lock survives a
  restart of the daemon, and changing a PIN at the cabinet counts toward it too (otherwise
  the change screen would be an unlimited guessing oracle).
- The first PIN, and the one after a reset, is set at the cabinet with the badge only
  within ``[pin] set_window_min`` of a reset by a custodian or an administrator (console
  or API). The PIN guards against a found or stolen badge, so the badge alone must never
  be enough to create it: a custodian's word opens the window, the person sets it there.
- Like a login, a refused try must keep its count and its event, so these functions report
  the outcome instead of raising (raising would roll the record of the failure back).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from kiosk import policy
from kiosk.audit import AuditLog, NewEvent
from kiosk.services import tx
from kiosk.services.authz import Principal
from kiosk.services.people import visible_person
from kiosk.store.models import Card
from kiosk.store.models_pin import PinCredential, PinLockout
from kiosk.store.types import utcnow

HASHER = PasswordHasher()
"""argon2id with the library's defaults (RFC 9106's low-memory profile)."""

Check = Literal["pin", "duress", "wrong", "none"]


@dataclass(frozen=True)
class PinStatus:
    """What the screen needs to know about a person's PIN."""

    has_pin: bool
    may_set: bool
    """No PIN now, and a reset's window to set one at the cabinet is open."""


def _matches(hashed: str | None, pin: str) -> bool:
    if hashed is None:
        return False
    try:
        return HASHER.verify(hashed, pin)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def status(session: Session, *, person_id: uuid.UUID, now: dt.datetime) -> PinStatus:
    row = session.get(PinCredential, person_id)
    if row is None:
        return PinStatus(False, False)
    has = row.pin_hash is not None
    return PinStatus(has, not has and row.may_set_until is not None and now < row.may_set_until)


def check(session: Session, *, person_id: uuid.UUID, pin: str) -> Check:
    """Which of the person's PINs ``pin`` is: both hashes are always verified."""
    row = session.get(PinCredential, person_id)
    if row is None or row.pin_hash is None:
        return "none"
    normal = _matches(row.pin_hash, pin)
    duress = _matches(row.duress_hash, pin) if row.duress_hash is not None else False
    if normal:
        return "pin"
    return "duress" if duress else "wrong"


def locked_until(session: Session, *, card_uid: str, now: dt.datetime) -> dt.datetime | None:
    """When the card's lock ends, if it is locked now."""
    row = session.get(PinLockout, card_uid)
    if row is None or not policy.pin_locked(row.locked_until, now):
        return None
    return row.locked_until


def failures(session: Session, *, card_uid: str) -> int:
    row = session.get(PinLockout, card_uid)
    return row.failures if row is not None else 0


def record_try(
    session: Session, audit: AuditLog, *, rule: policy.PinRule, card_uid: str,
    person_id: uuid.UUID, correct: bool, now: dt.datetime, where: str,
) -> policy.PinTry:
    """Count one PIN try on the card; the try that reaches ``max_tries`` locks it and logs
    ``pin.locked`` naming the rule (K3: the borrower's confirmation) and the cause."""
    row = session.get(PinLockout, card_uid)
    if row is None:
        row = PinLockout(card_uid=card_uid, failures=0)
        session.add(row)
    tried = policy.after_pin_try(rule, failures=row.failures, correct=correct, now=now)
    row.failures = tried.failures
    if tried.locked_until is not None:
        row.locked_until = tried.locked_until
        tx.log(session, audit, NewEvent(
            type="pin.locked", actors=[str(person_id)], decision="deny", rules=["K3"],
            payload={"card": card_uid, "cause": "too_many_wrong_pins",
                     "rule": f"[pin] max_tries = {rule.max_tries}",
                     "wrong_pins": rule.max_tries, "locked_until": tried.locked_until.isoformat(),
                     "lockout_min": int(rule.lockout.total_seconds() // 60), "where": where},
        ))
    elif correct:
        row.locked_until = None
    session.flush()
    return tried


def set_pin(
    session: Session, audit: AuditLog, *, person_id: uuid.UUID, card_uid: str, pin: str,
    duress: str | None, now: dt.datetime, changed: bool,
) -> None:
    """Store new hashes (a checked change or a set within a reset's window)."""
    row = session.get(PinCredential, person_id)
    if row is None:
        row = PinCredential(person_id=person_id)
        session.add(row)
    row.pin_hash = HASHER.hash(pin)
    row.duress_hash = HASHER.hash(duress) if duress else None
    row.set_at, row.may_set_until = now, None
    session.flush()
    tx.log(session, audit, NewEvent(
        type="pin.changed" if changed else "pin.set", actors=[str(person_id)], rules=["K3"],
        payload={"card": card_uid, "duress_pin": duress is not None, "at": "cabinet"},
    ))


def reset(
    session: Session, audit: AuditLog, *, by: Principal, person_id: uuid.UUID,
    window: dt.timedelta, now: dt.datetime | None = None,
) -> PinCredential:
    """Clear a person's PIN and duress PIN and the locks on their cards; they set a new PIN
    at the cabinet with their badge within ``window`` (a custodian's word opens it)."""
    person = visible_person(session, by=by, person_id=person_id)
    when = now or utcnow()
    row = session.get(PinCredential, person.id)
    if row is None:
        row = PinCredential(person_id=person.id)
        session.add(row)
    row.pin_hash = row.duress_hash = None
    row.may_set_until = when + window
    for card in session.query(Card).filter(Card.person_id == person.id):
        lock = session.get(PinLockout, card.uid)
        if lock is not None:
            lock.failures, lock.locked_until = 0, None
    session.flush()
    tx.log(session, audit, NewEvent(
        type="pin.reset", actors=by.actors(), rules=["K3"],
        payload={"person": str(person.id), "person_name": person.name,
                 "may_set_until": row.may_set_until.isoformat()},
    ))
    return row
