"""Night pairing (K8): outside business hours the cabinet opens only when the rostered duty
manager taps within the window after the employee, and is another person.

Every refusal is an ``access.denied`` event with K8 and its cause, including the two that
end no tap: the window running out with no manager (``manager_timeout``), and a manager
who taps just after it closed (``second_tap_too_late``), who would otherwise silently
start a visit of their own."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session as DbSession

from kiosk import policy, records
from kiosk import session as flow
from kiosk.audit import NewEvent
from kiosk.cabinet.contract import Core


@dataclass(frozen=True)
class LapsedWait:
    """A night visit whose window ran out: whom it was for, and when it closed."""

    employee: policy.PersonFacts
    closed_at: dt.datetime


class NightPairing:
    name = "night"

    def __init__(self, core: Core) -> None:
        self.core = core
        self.lapsed: LapsedWait | None = None
        core.register_flow(self.name, self)
        core.on_tap(flow.State.AWAIT_MANAGER, self.manager_tap)
        core.on_timeout(flow.State.AWAIT_MANAGER, self.window_ran_out)
        core.on_idle_tap(self.late_manager)

    async def manager_tap(self, uid: str, card: policy.CardFacts | None,
                          person: policy.PersonFacts | None, now: dt.datetime) -> None:
        core = self.core
        employee = core.visit.person
        assert employee is not None and core.visit.first_tap_at is not None
        with DbSession(core.engine) as s:
            roster = records.roster_at(s, at=now)
        decision = policy.decide_night_pair(
            employee=employee,
            manager=person or policy.PersonFacts(uuid.uuid4(), uid, frozenset()),
            manager_identified=policy.identify(card, person, now),
            first_tap_at=core.visit.first_tap_at,
            second_tap_at=now,
            window=core.options.night_window,
            roster=roster,
        )
        if not decision.allowed:
            core.deny(decision, uid=uid, person=person, employee=employee)
            await core.apply(core.session.handle(flow.Cancelled(now, decision.code)))
            core.say(decision.code, "error")
            return
        assert person is not None
        core.visit.manager = person
        core.log(NewEvent(type="night.pair", actors=[str(employee.id), str(person.id)],
                          decision="allow", rules=list(decision.rules),
                          payload={"employee": employee.name, "duty_manager": person.name,
                                   "seconds": (now - core.visit.first_tap_at).total_seconds()}))
        core.load_choices(now)
        await core.apply(core.session.handle(flow.ManagerConfirmed(now, person.id)))

    def window_ran_out(self, now: dt.datetime) -> None:
        """K8: no duty manager tapped in time; the refusal is logged before the visit ends."""
        core = self.core
        employee = core.visit.person
        window = int(core.options.night_window.total_seconds())
        core.deny(
            policy.Decision.deny("manager_timeout",
                                 f"no duty manager tapped within the {window} s window", "K8"),
            uid=core.visit.card.uid if core.visit.card else None, person=employee,
            cause="window_ran_out",
        )
        if employee is not None:
            self.lapsed = LapsedWait(employee, now)

    def late_manager(self, uid: str, card: policy.CardFacts | None,
                     person: policy.PersonFacts | None, now: dt.datetime) -> bool:
        """A duty manager tapping at the idle screen just after a night wait ran out meant to
        co-sign it: refuse that (K8) rather than start the manager's own visit."""
        lapsed, self.lapsed = self.lapsed, None
        if lapsed is None or person is None or person.id == lapsed.employee.id:
            return False
        if now - lapsed.closed_at > self.core.options.night_window:
            return False
        with DbSession(self.core.engine) as s:
            rostered = any(shift.person_id == person.id for shift in records.roster_at(s, at=now))
        if "duty_manager" not in person.roles and not rostered:
            return False
        window = int(self.core.options.night_window.total_seconds())
        self.core.deny(
            policy.Decision.deny(
                "second_tap_too_late",
                f"the duty manager tapped after {lapsed.employee.name}'s {window} s window "
                f"had closed", "K8"),
            uid=uid, person=person, employee=lapsed.employee, state="await_manager",
            cause="window_closed",
            seconds_late=round((now - lapsed.closed_at).total_seconds(), 1),
        )
        return True
