"""Start-up reconciliation: what the sensors say against what the records say.

Run once at every start, after every lock has been driven locked and every slot scanned:

1. An action interrupted by a crash or power cut left an intent event with no outcome.
   It is resolved from the intent and the sensors: a draw whose key is gone becomes a loan
   (the intent names the borrower, the reason and what allowed it); a draw whose key is
   still there is recorded as not taken; a return whose key is back closes its loan. Loans
   and returns are written by ``kiosk.records.record_loan``/``record_return``, the same
   write paths as the live flows, so the same facts and alarms (K5) follow either way.
2. Then every slot is compared with the records: a key expected in but absent, or present
   but not expected, raises an alarm (F1) that a person must close.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drivers.locks.base import SlotState
from kiosk import policy, records
from kiosk.audit import AuditLog, NewEvent
from kiosk.runtime import Runtime
from kiosk.services import alarms as alarm_service
from kiosk.services import tx
from kiosk.store.models import Event


class Cabinet(Protocol):
    """What reconciliation needs of the cabinet, and no more: this module is called by the
    cabinet at start-up and does not import it."""

    runtime: Runtime
    audit: AuditLog
    cabinet_id: uuid.UUID
    code: str
    calendar: policy.Calendar
    clock: Callable[[], dt.datetime]
    @property
    def alarm_owners(self) -> Mapping[str, str]: ...


INTENTS = ("draw.intent", "return.intent", "intake.intent")


def _uuid(value: Any) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def unresolved_intents(session: Session, cabinet_code: str) -> list[Event]:
    """Intent events since the last reconciliation that no outcome event points back to."""
    since = session.scalar(
        select(func.max(Event.seq)).where(
            Event.cabinet_id == cabinet_code, Event.type == "cabinet.reconciled"
        )
    ) or 0
    rows = session.scalars(
        select(Event).where(Event.cabinet_id == cabinet_code, Event.seq > since).order_by(Event.seq)
    ).all()
    resolved = set()
    intents = []
    for row in rows:
        if row.type in INTENTS:
            intents.append(row)
        else:
            seq = json.loads(row.payload).get("intent_seq")
            if isinstance(seq, int):
                resolved.add(seq)
    return [row for row in intents if row.seq not in resolved]


def reconcile(cabinet: Cabinet, status: dict[int, SlotState], *,
              identity: bool = False) -> dict[str, int]:
    """``identity``: the cabinet reads each slot's fob ROM (``SlotState.fob``), so a slot is
    compared by *which* key hangs in it, not only whether one does (issue 13): a return is
    resolved only if its own key is back, and a wrong key in a slot is a ``wrong_slot`` alarm."""
    now = cabinet.clock()
    counts = {"resolved_draws": 0, "resolved_returns": 0, "not_taken": 0, "alarms": 0}
    with tx.write(cabinet.audit) as s:
        for intent in unresolved_intents(s, cabinet.code):
            _resolve(s, cabinet, intent, status, now, counts, identity=identity)

    with Session(cabinet.runtime.engine) as s:
        expected = records.expected_presence(s, cabinet_id=cabinet.cabinet_id)
        roms = records.expected_roms(s, cabinet_id=cabinet.cabinet_id) if identity else {}
    for slot, st in sorted(status.items()):
        if st.key_present is None:
            continue
        rom = roms.get(slot, (None, None))[1]
        if identity and slot in expected and st.key_present and st.fob is not None \
                and rom is not None and st.fob != rom:
            with Session(cabinet.runtime.engine) as s:
                hung = records.key_by_rom(s, cabinet_id=cabinet.cabinet_id, rom=st.fob)
            counts["alarms"] += _alarm_once(
                cabinet, "wrong_slot", slot, "K10",
                f"slot {slot} should hold key {expected[slot]} but holds "
                f"{hung.key_number if hung else 'an unregistered key'}",
            )
        elif slot in expected and not st.key_present:
            counts["alarms"] += _alarm_once(
                cabinet, "key_missing", slot, "K10",
                f"key {expected[slot]} should be in slot {slot} but the slot is empty",
            )
        elif slot not in expected and st.key_present:
            with Session(cabinet.runtime.engine) as s:
                home_of = records.key_in_slot(s, cabinet_id=cabinet.cabinet_id, slot=slot)
            what = (f"key {home_of.key_number} is recorded as out but is in slot {slot}"
                    if home_of else f"an unregistered key is in slot {slot}")
            counts["alarms"] += _alarm_once(cabinet, "key_unexpected", slot, "K10", what)
    cabinet.audit.append(NewEvent(type="cabinet.reconciled", rules=["K10"], payload={
        **counts, "slots": len(status), "expected_in": len(expected),
        "present": sum(1 for st in status.values() if st.key_present),
    }))
    return counts


def _alarm_once(cabinet: Cabinet, kind: str, slot: int, rule: str, message: str) -> int:
    with tx.write(cabinet.audit) as s:
        slot_id = records.slot_id(s, cabinet_id=cabinet.cabinet_id, number=slot)
        if records.has_open_alarm(s, kind=kind, slot=slot_id):
            return 0
        alarm_service.raise_alarm(
            s, cabinet.audit, kind=kind, rule=rule, message=message, actors=[],
            cabinet_id=cabinet.cabinet_id, slot_id=slot_id, at=cabinet.clock(),
            owners=cabinet.alarm_owners,
        )
    return 1


def _resolve(s: Session, cabinet: Cabinet, intent: Event, status: dict[int, SlotState],
             now: dt.datetime, counts: dict[str, int], *, identity: bool = False) -> None:
    """Resolve one intent from the sensors, through the same loan and return write paths as
    the live flows (``kiosk.records``), so a resolved return by someone other than the
    borrower raises its K5 alarm exactly as a live one does."""
    payload = json.loads(intent.payload)
    slot = intent.slot
    present = status.get(slot).key_present if slot in status else None  # type: ignore[union-attr]
    key = records.key_in_slot(s, cabinet_id=cabinet.cabinet_id, slot=slot) if slot else None
    actors = json.loads(intent.actors)
    base = {"intent_seq": intent.seq, "resolved_at_start": True}

    def log(type_: str, rules: list[str], **extra: Any) -> None:
        tx.log(s, cabinet.audit, NewEvent(
            type=type_, slot=slot, key_number=intent.key_number, rules=rules,
            actors=actors, payload={**base, **extra},
        ))

    if intent.type == "draw.intent":
        if key is None or present is None or present or records.open_loan(s, key_id=key.id):
            counts["not_taken"] += 1
            log("draw.resolved", ["K3"], outcome="not_taken")
            return
        borrower = _uuid(payload.get("borrower"))
        assert borrower is not None
        terms = records.LoanTerms(
            key=key, cabinet_id=cabinet.cabinet_id, borrower_id=borrower,
            issuer_id=_uuid(payload.get("issuer")), duty_manager_id=_uuid(payload.get("duty_manager")),
            approval_id=_uuid(payload.get("approval")),
            authorization_id=_uuid(payload.get("authorization")),
            reason_code=payload.get("reason_code") or "other", reason_text=payload.get("reason_text"),
            drawn_at=intent.at, due_at=policy.due_at(key, intent.at, cabinet.calendar),
        )
        records.record_loan(
            s, cabinet.audit, terms, event_type="draw.resolved", slot=slot,
            rules=json.loads(intent.rules), actors=actors,
            payload={**base, "outcome": "taken"}, approval_may_be_used=True,
        )
        counts["resolved_draws"] += 1
        return

    if intent.type == "return.intent":
        loan = records.open_loan(s, key_id=key.id) if key else None
        if identity and present and key is not None and slot is not None:
            rom = records.fob_rom_of(s, key_id=key.id)
            # another key hung in its slot is no return of this one (issue 13)
            present = rom is None or status[slot].fob == rom
        if loan is None or key is None or not present or slot is None:
            log("return.resolved", ["K4"], outcome="not_returned")
            return
        records.record_return(
            s, cabinet.audit, loan=loan, key=key, cabinet_id=cabinet.cabinet_id, slot=slot,
            returner_id=_uuid(payload.get("returner")), at=now, event_type="return.resolved",
            actors=actors, payload={**base, "outcome": "returned"},
            alarm_owners=cabinet.alarm_owners,
        )
        counts["resolved_returns"] += 1
        return

    # An intake interrupted before its key was registered: a custodian registers it again.
    log("intake.resolved", ["K1"], outcome="needs_review", present=bool(present))
