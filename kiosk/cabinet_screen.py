"""What the kiosk page shows: one JSON-able snapshot of the visit, read only.

This is the contract with the page (``api/kiosk/static/``): the fields it draws, in one
place, apart from the cabinet's orchestration. Nothing here changes the visit, moves a lock
or writes the log; the cabinet hands over what it holds and gets a dict back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session as DbSession

from kiosk import policy, records
from kiosk import session as flow
from kiosk.alarm_kinds import alarm_kind_text
from kiosk.fleet import state as fleet_state
from kiosk.messages import REASONS, WHY, text
from kiosk.services import alarms as alarm_service
from kiosk.services import handovers, pins
from kiosk.store.models import Person, Slot
from kiosk.visit import Message, Visit


def snapshot(*, visit: Visit, session: flow.Session, message: Message | None, now: dt.datetime,
             version: int, engine: Engine, cabinet_id: uuid.UUID,
             calendar: policy.Calendar | None = None, identity: bool = False,
             present: dict[int, bool] | None = None) -> dict[str, Any]:
    """Everything the kiosk page shows; ``version`` lets the page long-poll for changes.

    ``identity``: the cabinet reads each key's fob (issue 13), so a key of a group that may
    go back anywhere is offered the free slots (``free_slots``, those the last scan saw
    empty, ``present``) as well as its own."""
    v, s = visit, session
    msg = None
    if message is not None and now < message.until:
        t = text(message.code)
        msg = {"code": message.code, "level": message.level, "zh": t.zh, "en": t.en,
               "detail_zh": message.detail[0] if message.detail else None,
               "detail_en": message.detail[1] if message.detail else None}
    zone = calendar.zone if calendar is not None else dt.UTC
    keys = [key_entry(view, zone) for view in v.choices]
    mine: list[dict[str, Any]] = []
    free: list[int] = []
    if v.person is not None and s.state == flow.State.CHOOSING:
        with DbSession(engine) as db:
            for loan in records.loans_out(db, cabinet_id=cabinet_id):
                if loan.borrower_id == v.person.id:
                    anywhere = identity and records.returns_anywhere(db, key_id=loan.key.id)
                    mine.append({"key_number": loan.key.key_number, "label": loan.key.label,
                                 "due_at": loan.due_at.isoformat(),
                                 "overdue": loan.due_at <= now,
                                 "home_slot": loan.key.home_slot.number
                                 if loan.key.home_slot is not None else None,
                                 "anywhere": anywhere})
            if any(m["anywhere"] for m in mine):
                free = [n for n in records.free_slots(db, cabinet_id=cabinet_id)
                        if not (present or {}).get(n, False)]
    open_slots = list(s.open_slots or s.pending_slots)
    keeper = bool(v.person and v.person.roles & policy.KEEPER_ROLES)
    return {
        "version": version,
        "state": s.state.value,
        "person": v.person.name if v.person else None,
        "custodian": bool(v.person and "custodian" in v.person.roles),
        "manager": v.manager.name if v.manager else None,
        "night": v.night,
        "deadline": s.deadline.isoformat() if s.deadline else None,
        "seconds_left": max(0, int((s.deadline - now).total_seconds())) if s.deadline else None,
        "open_slots": open_slots,
        "slot_keys": slot_names(v, open_slots),
        "keys": keys,
        "my_loans": mine,
        "free_slots": free,
        "reasons": [{"code": c, "zh": t.zh, "en": t.en} for c, t in REASONS.items()],
        "message": msg,
        "alarms": cabinet_alarms(engine, cabinet_id, zone),
        "keeper": keeper,
        # Issue 12: a keeper sees since when the hub has not answered (decisions stay local)
        "hub": fleet_state.screen_link(engine, zone) if keeper else None,
        "handover": handover_panel(v, s.state, engine=engine, cabinet_id=cabinet_id, now=now),
        "pin": pin_panel(v, s.state, engine=engine, now=now),
        **after_hours(calendar, s.state, engine=engine, now=now),
    }


def cabinet_alarms(engine: Engine, cabinet_id: uuid.UUID, zone: dt.tzinfo) -> list[dict[str, Any]]:
    """F1 at the cabinet: its open alarms, for the idle screen's banner until a keeper taps
    their badge and acknowledges them (kiosk/services/alarms.py; never the silent duress)."""
    with DbSession(engine) as db:
        rows = alarm_service.open_at_cabinet(db, cabinet_id=cabinet_id)
        slots = {a.id: records_slot_number(db, a.slot_id) for a in rows}
        return [{"id": str(a.id), "kind": a.kind, "zh": alarm_kind_text(a.kind, "zh"),
                 "en": alarm_kind_text(a.kind, "en"), "slot": slots[a.id],
                 "at": a.raised_at.astimezone(zone).strftime("%H:%M")} for a in rows]


def records_slot_number(db: DbSession, slot_id: uuid.UUID | None) -> int | None:
    slot = db.get(Slot, slot_id) if slot_id is not None else None
    return slot.number if slot is not None else None


def key_entry(view: policy.KeyView, zone: dt.tzinfo) -> dict[str, Any]:
    """One key on the screen, with why it cannot be drawn now in both languages (the screen
    never hides why): "需业主电话确认", "需部门领导审批", to a keeper "已借出 · 张伟 · 至 17:30"."""
    key, decision = view.key, view.decision
    status = "ok" if decision.allowed else ("out" if decision.code == "key_out" else decision.code)
    why = None
    if not decision.allowed:
        t = WHY.get(decision.code) or text(decision.code)
        why = {"zh": t.zh, "en": t.en}
        if view.holder is not None:
            due = view.holder.due_at.astimezone(zone)
            why = {"zh": f"{t.zh} · {view.holder.name} · 至 {due:%H:%M}",
                   "en": f"{t.en}, due {due:%H:%M}"}
    return {
        "key_number": key.key_number, "label": key.label, "slot": key.home_slot,
        "status": status, "why": why, "listed": view.listed, "mine": view.mine,
        "cosign": policy.Need.COSIGN in decision.needs, "special": key.special,
        "floor": key.floor,
    }


def after_hours(calendar: policy.Calendar | None, state: flow.State, *, engine: Engine,
                now: dt.datetime) -> dict[str, Any]:
    """K8 on the screen: whether it is after hours now and, on the idle and duty-manager
    screens, the duty manager on the roster (with their phone, if recorded) so the person
    knows whom to call before they stand at the cabinet waiting."""
    closed = calendar is not None and not calendar.is_business_time(now)
    manager = None
    if closed and state in (flow.State.IDLE, flow.State.AWAIT_MANAGER):
        with DbSession(engine) as db:
            shifts = records.roster_at(db, at=now)
            person = db.get(Person, shifts[0].person_id) if shifts else None
            if person is not None:
                manager = {"name": person.name, "phone": person.phone or None}
    return {"after_hours": closed, "duty_manager": manager}


def slot_names(visit: Visit, open_slots: list[int]) -> dict[str, dict[str, str]]:
    """Which key each open (or co-sign-pending) slot is for, so the screen can name it."""
    v = visit
    named: dict[int, dict[str, str]] = {
        slot: {"key_number": plan.key.key_number, "label": plan.key.label}
        for slot, plan in v.draws.items()
    }
    if v.returning is not None and v.returning.home_slot is not None:
        named[v.returning.home_slot] = {
            "key_number": v.returning.key_number, "label": v.returning.label,
        }
    for slot in open_slots:
        if v.returning is not None and not v.intake and slot not in named:
            # a key returned to a free slot (issue 13, return anywhere): the lit slot is its
            named[slot] = {"key_number": v.returning.key_number, "label": v.returning.label}
        if v.intake and slot not in named:
            named[slot] = {"key_number": str(v.intake.get("key_number") or ""),
                           "label": str(v.intake.get("label") or "")}
    return {str(slot): named[slot] for slot in open_slots if slot in named}


def pin_panel(visit: Visit, state: flow.State, *, engine: Engine,
              now: dt.datetime) -> dict[str, Any] | None:
    """The PIN pad's part of the screen (README "PIN and duress"): whether a chosen draw waits
    for the PIN, and for the set/change screen whether the person has a PIN or may set one
    now. Nothing here can tell a duress opening from a normal one: both clear ``asked``."""
    person = visit.person
    if person is None or state != flow.State.CHOOSING:
        return None
    with DbSession(engine) as db:
        status = pins.status(db, person_id=person.id, now=now)
    return {"asked": visit.pin_pending is not None, "has_pin": status.has_pin,
            "may_set": status.may_set}


def handover_panel(visit: Visit, state: flow.State, *, engine: Engine, cabinet_id: uuid.UUID,
                   now: dt.datetime) -> dict[str, Any] | None:
    """What the screen shows of a handover (H1): the one waiting, and whether this person may
    start one or accept the waiting one. None for anyone who keeps no register."""
    person = visit.person
    if person is None or state not in (flow.State.AWAIT_INCOMING, *flow.SIGNED_IN):
        return None
    keeper = bool(person.roles & policy.HANDOVER_ROLES) and person.active
    if not keeper:
        return None
    with DbSession(engine) as s:
        waiting = handovers.pending(s, cabinet_id=cabinet_id, now=now)
        if waiting is None:
            return {"can_start": True, "waiting": None}
        data = handovers.content_of(waiting)
        mine = waiting.outgoing_id == person.id
        return {
            "can_start": False,
            "waiting": {
                "id": str(waiting.id), "outgoing": data["outgoing"]["name"],
                "started_at": data["period_end"], "mine": mine,
                "can_accept": not mine and state in flow.SIGNED_IN,
                "keys_out": len(data["keys_out"]), "open_alarms": len(data["open_alarms"]),
                "overdue": data["overdue"], "mismatches": len(data["count"]["mismatches"]),
                "keys_total": data["count"]["keys_total"],
                "expected_in": data["count"]["expected_in"],
                "sensed_in": data["count"]["sensed_in"],
                # issue 13: how the count knew the keys were in (the keeper signs for it)
                "compared": ("identity" if data["count"].get("identity_checked") else "presence")
                if data["count"]["sensors_available"] else None,
                "identified": sum(1 for x in data["count"].get("slots", [])
                                  if x["check"] == "identified"),
                "present_only": sum(1 for x in data["count"].get("slots", [])
                                    if x["check"] == "present_only"),
                "drawn": data["drawn"], "returned": data["returned"],
                "key_list": [k["key_number"] for k in data["keys_out"]][:12],
            },
        }
