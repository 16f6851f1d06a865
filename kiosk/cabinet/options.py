"""What the cabinet core and its flows share besides the core itself: the options read from
the settings, the error a screen request gets, and the indicator hardware's shape.

Kept apart from ``core.py`` so a flow module can import these without importing the core
(the core imports the flows to register them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from kiosk import policy
from kiosk import session as flow
from kiosk.config import Settings


class Indicators(Protocol):
    """Slot LEDs and the buzzer; optional hardware."""

    def slot_light(self, slot: int, on: bool) -> None: ...
    def beep(self, pattern: str) -> None: ...


@dataclass(frozen=True)
class CabinetOptions:
    night_window: dt.timedelta = dt.timedelta(seconds=60)
    timeouts: flow.Timeouts = field(default_factory=flow.Timeouts)
    door_held_open: dt.timedelta = dt.timedelta(seconds=120)
    slot_left_open: dt.timedelta = dt.timedelta(seconds=30)
    overdue_every: dt.timedelta = dt.timedelta(seconds=60)
    message_for: dt.timedelta = dt.timedelta(seconds=6)
    phone_confirmation_required: bool = True
    handover_valid_for: dt.timedelta = dt.timedelta(minutes=30)
    report_language: str = "zh"
    scan_interval: dt.timedelta = dt.timedelta(seconds=0.1)
    intent_wait: dt.timedelta = dt.timedelta(seconds=3)
    """How long an opening waits for its intent to be durable before it is refused as a
    storage fault (the writer thread may be waiting for a locked database)."""
    write_wait: dt.timedelta = dt.timedelta(seconds=2)
    """How long a turn waits for the writes it queued to land before the next input is
    taken (not at all while the database is known to be busy: they land later, in order)."""


def calendar_from(settings: Settings) -> policy.Calendar:
    hours = settings.business_hours
    return policy.Calendar(
        zone=settings.zone, start=hours.start, end=hours.end, weekdays=frozenset(hours.weekdays),
        holidays=frozenset(hours.holidays), extra_workdays=frozenset(hours.extra_workdays),
    )


def options_from(settings: Settings) -> CabinetOptions:
    c = settings.cabinet
    return CabinetOptions(
        night_window=dt.timedelta(seconds=c.night_window_s),
        timeouts=flow.Timeouts(
            choose=dt.timedelta(seconds=c.choose_timeout_s),
            manager=dt.timedelta(seconds=c.night_window_s),
            cosign=dt.timedelta(seconds=c.cosign_timeout_s),
            take=dt.timedelta(seconds=c.take_timeout_s),
            put_back=dt.timedelta(seconds=c.return_timeout_s),
            incoming=dt.timedelta(seconds=c.handover_tap_timeout_s),
            returner=dt.timedelta(seconds=c.returner_tap_timeout_s),
        ),
        door_held_open=dt.timedelta(seconds=c.door_held_open_s),
        slot_left_open=dt.timedelta(seconds=c.slot_left_open_s),
        phone_confirmation_required=c.phone_confirmation_required,
        handover_valid_for=dt.timedelta(minutes=c.handover_valid_min),
        report_language=settings.schedule.report_language,
        scan_interval=dt.timedelta(seconds=c.scan_interval_s),
    )


class CabinetError(Exception):
    """A screen request that cannot be carried out; ``code`` is a messages.py key."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code
