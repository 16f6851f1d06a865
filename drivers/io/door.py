"""The cabinet door: a reed switch that says open or shut, and a strike that can release it.

Two classes, one job each. The sensor only reports; the lock only pulses. Whether the door
may be released is the cabinet's decision, not theirs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gpiozero import DigitalInputDevice
from gpiozero.pins import Factory

from drivers.io import safety
from drivers.io.pins import SWITCH_TO_GND, InputWiring, PinSpec
from drivers.io.pulse import PulsedOutput, Sleep

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class DoorSensor:
    """A reed switch on the door frame, with callbacks on open and close.

    The usual part is a normally-open reed held closed by the magnet on the door, wired to
    GND with the internal pull-up: door shut -> switch closed -> pin low -> *active*. So by
    default ``closed_when_active=True``. A cut wire then reads as "open", which is the safe
    way round for an alarm. ``bounce_s`` filters the chatter a reed makes as the door
    swings.
    """

    def __init__(
        self,
        pin: PinSpec,
        *,
        pin_factory: Factory,
        wiring: InputWiring = SWITCH_TO_GND,
        closed_when_active: bool = True,
        bounce_s: float | None = 0.05,
    ) -> None:
        self._closed_when_active = closed_when_active
        self.on_open: Callback | None = None
        """Called (from gpiozero's event thread) when the door opens."""
        self.on_close: Callback | None = None
        """Called (from gpiozero's event thread) when the door closes."""
        self._device = DigitalInputDevice(
            pin,
            pull_up=wiring.pull_up,
            active_state=wiring.active_state,
            bounce_time=bounce_s,
            pin_factory=pin_factory,
        )
        self._device.when_activated = self._activated
        self._device.when_deactivated = self._deactivated

    @property
    def is_open(self) -> bool:
        return bool(self._device.is_active) != self._closed_when_active

    def _activated(self) -> None:
        self._fire(self.on_close if self._closed_when_active else self.on_open)

    def _deactivated(self) -> None:
        self._fire(self.on_open if self._closed_when_active else self.on_close)

    @staticmethod
    def _fire(callback: Callback | None) -> None:
        # A broken handler must not kill gpiozero's event thread and silence the sensor.
        if callback is None:
            return
        try:
            callback()
        except Exception:
            log.exception("door callback failed")

    def close(self) -> None:
        self._device.close()


class DoorLock:
    """The door strike or solenoid bolt: pulsed like a slot lock, with the same cap.

    Registered for exit so the strike is de-energised even if the daemon dies mid-pulse.
    """

    def __init__(
        self,
        pin: PinSpec,
        *,
        pin_factory: Factory,
        active_high: bool = True,
        max_pulse_ms: int = 1000,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._output = PulsedOutput(
            pin,
            pin_factory=pin_factory,
            active_high=active_high,
            max_pulse_ms=max_pulse_ms,
            sleep=sleep,
        )
        safety.lock_on_exit(self)

    @property
    def pin(self) -> object:
        return self._output.pin

    @property
    def energised(self) -> bool:
        return self._output.energised

    def unlock(self, pulse_ms: int | None = None) -> int:
        """Release the door for ``pulse_ms`` (capped); blocks for the pulse; returns ms used."""
        return self._output.pulse(pulse_ms)

    def lock_all(self) -> None:
        """De-energise the strike; never raises (used at exit)."""
        try:
            self._output.off()
        except Exception:
            log.exception("could not de-energise the door lock")

    def close(self) -> None:
        """Lock and release the pin; safe to call twice."""
        safety.release(self)
        if not self._output.closed:
            self._output.close()
