"""An overdue key is an alarm at the cabinet too (issue 14 item 4, K9, F1).

The scheduler, not a cabinet flow, raises ``key_overdue``; before, the cabinet's buzzer stayed
silent and the idle banner only learnt of it at the next visit. The buzzer here is the real
driver on gpiozero's mock pins, as in the driver tests.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory
from rig import close_rig, make_rig

from drivers.io.buzzer import CabinetBuzzer
from kiosk.scheduler import Scheduler
from kiosk.wiring import RealIndicators

BUZZER_PIN = 22


def _rises(factory: MockFactory) -> int:
    states = [bool(s.state) for s in factory.pin(BUZZER_PIN).states]
    return sum(1 for a, b in itertools.pairwise(states) if not a and b)


def _wait_for_rises(factory: MockFactory, want: int) -> int:
    """The buzzer plays in gpiozero's background thread: wait (bounded) until it has."""
    deadline = time.monotonic() + 5
    while _rises(factory) < want and time.monotonic() < deadline:
        time.sleep(0.02)
    return _rises(factory)


async def test_K9_an_overdue_key_sounds_the_buzzer_once_and_reaches_the_idle_banner(
    tmp_path: Path,
) -> None:
    rig = await make_rig(tmp_path)
    factory = MockFactory()
    buzzer = CabinetBuzzer(BUZZER_PIN, pin_factory=factory)
    rig.cabinet.indicators = RealIndicators(None, buzzer)
    try:
        uid, _ = rig.card_of(dept="ENG")
        await rig.drawn(uid, "U1203")
        sounded: list[str] = []

        def sound(kind: str) -> None:
            sounded.append(kind)
            rig.cabinet.sound_alarm(kind)

        scheduler = Scheduler(rig.runtime, clock=rig.clock, on_alarm=sound)
        assert scheduler.escalate() == 0 and sounded == []  # not due yet: silence
        before = rig.cabinet.screen()["version"]
        rig.clock.advance(dt.timedelta(days=2).total_seconds())
        assert scheduler.escalate() >= 1
        assert sounded == ["key_overdue"]
        assert _wait_for_rises(factory, 3) == 3  # the cabinet's alarm pattern: three beeps
        screen = rig.cabinet.screen()
        assert screen["version"] > before  # the page's long poll wakes for the banner
        assert "key_overdue" in [a["kind"] for a in screen["alarms"]]
        scheduler.escalate()  # the same overdue loan again: escalated, not sounded twice
        assert sounded == ["key_overdue"]
    finally:
        buzzer.close()
        await close_rig(rig)
