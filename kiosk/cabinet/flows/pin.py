"""The PIN flow: a second factor after the badge, and the duress PIN (README "PIN and duress").

When a draw is chosen, the draw flow asks this flow whether it needs a PIN
(``policy.pin_causes``: a key group, a role, after hours, from ``[pin]``). If so the chosen
draw waits here, the screen shows its PIN pad, and the draw goes on (to the co-sign or the
slot) once the PIN is right. The badge stays the first factor of K3's borrower
confirmation; refusals are ``access.denied`` events citing K3 with their cause.

The **duress PIN** opens exactly as the PIN does: same session steps, same screen, same
answers to the page, same beep. The only difference is a silent ``duress`` alarm raised at
once through the alarm service (owned as ``[alarms]`` says, the supervisor by default, and
carried by the notification routes like any ``alarm.*`` event), never shown at the cabinet
(``alarms.AT_THE_CABINET`` leaves it out) and raised without touching the screen's version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from kiosk import policy
from kiosk import session as flow
from kiosk.cabinet.contract import Core
from kiosk.cabinet.options import CabinetError
from kiosk.services import alarms as alarm_service
from kiosk.services import pins
from kiosk.store.models import KeyGroup

RIGHT = ("pin", "duress")
"""What a PIN pad accepts: the PIN, and the duress PIN (which opens exactly the same)."""


class PinFlow:
    name = "pin"

    def __init__(self, core: Core) -> None:
        self.core = core
        core.register_flow(self.name, self)

    # ------------------------------------------------------------------ the rule
    def rule(self) -> policy.PinRule:
        """``[pin]`` as the pure policy reads it (key group codes become their ids)."""
        cfg = self.core.runtime.settings.pin
        groups: frozenset = frozenset()
        if cfg.key_groups:
            with DbSession(self.core.engine) as s:
                groups = frozenset(s.scalars(
                    select(KeyGroup.id).where(KeyGroup.code.in_(cfg.key_groups))))
        return policy.PinRule(
            key_groups=groups, roles=frozenset(cfg.roles), after_hours=cfg.after_hours,
            max_tries=cfg.max_tries, lockout=dt.timedelta(minutes=cfg.lockout_min))

    def causes(self, now: dt.datetime, keys: list[policy.KeyFacts]) -> tuple[str, ...]:
        """Why the person at the screen must give a PIN for these keys now (none: no PIN).
        Asked at the choice and again, past it, when the draw is decided afresh."""
        person = self.core.visit.person
        if person is None:
            return ()
        return tuple(policy.pin_causes(self.rule(), person, keys,
                                       business_time=self.core.calendar.is_business_time(now)))

    def _who(self) -> tuple[policy.PersonFacts, str]:
        v = self.core.visit
        if self.core.session.state != flow.State.CHOOSING or v.person is None or v.card is None:
            raise self.core.busy("PIN can be entered")
        return v.person, v.card.uid

    def _locked_text(self, until: dt.datetime) -> str:
        local = until.astimezone(self.core.calendar.zone)
        return f"锁定至 {local:%H:%M} · locked until {local:%H:%M}"

    # ------------------------------------------------------------- at a draw
    def ask(self, now: dt.datetime, causes: tuple[str, ...], event: flow.DrawChosen) -> bool:
        """Called by the draw flow with the chosen draw and why it needs a PIN (``causes``,
        already weighed for its keys): True if it now waits for a PIN (the screen shows the
        pad); refuses (``CabinetError``) a locked card or a person who has no PIN yet."""
        core, v = self.core, self.core.visit
        person, uid = self._who()
        if not causes:
            return False
        with DbSession(core.engine) as s:
            until = pins.locked_until(s, card_uid=uid, now=now)
            has_pin = pins.status(s, person_id=person.id, now=now).has_pin
        if until is not None:
            v.draws = {}
            core.deny(policy.Decision.deny("pin_locked", "card locked after wrong PINs", "K3"),
                      uid=uid, person=person, cause="card_locked", locked_until=until.isoformat(),
                      pin_for=list(causes))
            raise CabinetError("pin_locked", self._locked_text(until))
        if not has_pin:
            v.draws = {}
            core.deny(policy.Decision.deny("pin_not_set", "a PIN is needed and none is set", "K3"),
                      uid=uid, person=person, cause="no_pin", pin_for=list(causes))
            raise CabinetError("pin_not_set")
        v.pin_pending, v.pin_causes = event, causes
        return True

    async def enter(self, pin: str) -> None:
        """The PIN typed on the pad for the waiting draw: right (or duress) → the draw goes
        on; wrong → refused, counted; the ``max_tries``-th wrong one locks the card."""
        core, v = self.core, self.core.visit
        person, uid = self._who()
        if v.pin_pending is None:
            raise CabinetError("pin_not_asked")
        now = core.clock()
        rule = self.rule()

        def attempt(s: DbSession) -> tuple[dt.datetime | None, pins.Check, policy.PinTry | None]:
            """The writer thread checks the PIN and counts the try (one transaction)."""
            until = pins.locked_until(s, card_uid=uid, now=now)
            result = pins.check(s, person_id=person.id, pin=pin)
            tried = None
            if until is None:
                tried = pins.record_try(s, core.audit, rule=rule, card_uid=uid,
                                        person_id=person.id, correct=result in RIGHT, now=now,
                                        where="draw")
            return until, result, tried

        until, result, tried = await core.writer.run(attempt, "pin.try")
        if result == "duress":
            self._duress(now, opened=until is None, during="draw")
        lock_end = until or (tried.locked_until if tried is not None else None)
        if lock_end is not None:
            v.pin_pending, v.draws = None, {}
            core.deny(policy.Decision.deny("pin_locked", "card locked after wrong PINs", "K3"),
                      uid=uid, person=person, cause="too_many_wrong_pins" if until is None
                      else "card_locked", locked_until=lock_end.isoformat())
            raise CabinetError("pin_locked", self._locked_text(lock_end))
        if result not in RIGHT:
            assert tried is not None
            left = policy.pin_tries_left(rule, tried.failures)
            core.deny(policy.Decision.deny("pin_wrong", f"wrong PIN, {left} tries left", "K3"),
                      uid=uid, person=person, cause="pin_wrong", tries_left=left)
            raise CabinetError("pin_wrong", f"还可尝试 {left} 次 · {left} tries left")
        event, v.pin_pending, v.pin_checked = v.pin_pending, None, True
        await core.apply(core.session.handle(dataclasses.replace(event, now=now)))

    # --------------------------------------------------------- set and change
    async def change(self, old: str | None, new: str, duress: str | None) -> None:
        """Set or change the PIN at the cabinet: badge + the current PIN; with no PIN, only
        within a reset's window (``pins`` says why)."""
        core = self.core
        person, uid = self._who()
        problem = policy.pin_problem(new, duress)
        if problem is not None:
            raise CabinetError(problem)
        now = core.clock()
        rule = self.rule()

        def attempt(s: DbSession) -> tuple[dt.datetime | None, pins.Check,
                                           policy.PinTry | None, str | None]:
            """The writer thread checks the current PIN, counts the try and sets the new one
            (one transaction)."""
            until = pins.locked_until(s, card_uid=uid, now=now)
            state = pins.status(s, person_id=person.id, now=now)
            result: pins.Check = "none"
            tried, done = None, None
            if until is None and state.has_pin:
                result = pins.check(s, person_id=person.id, pin=old or "")
                tried = pins.record_try(s, core.audit, rule=rule, card_uid=uid,
                                        person_id=person.id, correct=result in RIGHT, now=now,
                                        where="change")
                if result in RIGHT:
                    pins.set_pin(s, core.audit, person_id=person.id, card_uid=uid, pin=new,
                                 duress=duress, now=now, changed=True)
                    done = "pin_changed"
            elif until is None and state.may_set:
                pins.set_pin(s, core.audit, person_id=person.id, card_uid=uid, pin=new,
                             duress=duress, now=now, changed=False)
                done = "pin_set"
            return until, result, tried, done

        until, result, tried, done = await core.writer.run(attempt, "pin.change")
        if result == "duress":
            self._duress(now, opened=False, during="change")
        if done is not None:
            core.say(done, "ok")
            return
        lock_end = until or (tried.locked_until if tried is not None else None)
        if lock_end is not None:
            core.deny(policy.Decision.deny("pin_locked", "card locked after wrong PINs", "K3"),
                      uid=uid, person=person, cause="too_many_wrong_pins" if until is None
                      else "card_locked", locked_until=lock_end.isoformat())
            raise CabinetError("pin_locked", self._locked_text(lock_end))
        if tried is not None:
            left = policy.pin_tries_left(rule, tried.failures)
            core.deny(policy.Decision.deny("pin_old_wrong", "wrong current PIN", "K3"),
                      uid=uid, person=person, cause="pin_wrong", tries_left=left)
            raise CabinetError("pin_old_wrong", f"还可尝试 {left} 次 · {left} tries left")
        raise CabinetError("pin_not_set")

    # ------------------------------------------------------------------ duress
    def _duress(self, now: dt.datetime, *, opened: bool, during: str) -> None:
        """The silent alarm: straight to the alarm service (no beep, no screen change),
        queued for the writer thread like the cabinet's other alarms: retried while the
        database is busy, so a duress PIN typed during an outage is never lost."""
        core, v = self.core, self.core.visit
        person = v.person
        assert person is not None
        keys = [plan.key for plan in v.draws.values()]
        payload: dict[str, object] = {
            "person": str(person.id), "person_name": person.name,
            "card": v.card.uid if v.card else None, "during": during, "opened": opened,
            "keys": [k.key_number for k in keys],
            "duty_manager": v.manager.name if v.manager else None}
        key_id = keys[0].id if keys else None
        message = f"{person.name} entered the duress PIN at cabinet {core.code}"
        core.write(lambda s: alarm_service.raise_alarm(
            s, core.audit, kind="duress", message=message, actors=[str(person.id)],
            cabinet_id=core.cabinet_id, key_id=key_id, at=now, owners=core.alarm_owners,
            payload=payload), "alarm duress")
