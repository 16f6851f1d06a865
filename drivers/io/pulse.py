"""A coil output that can only ever be energised for a bounded, capped time.

Solenoid slot locks and door strikes are rated for short duty: held on for seconds they
overheat, and a coil left on means a slot left open. So the only way to energise this
output is :meth:`PulsedOutput.pulse`, which blocks for the pulse and de-energises in a
``finally`` block, whatever happens while it waits.

Blocking (rather than a background timer) is deliberate: the caller, a worker thread of
the cabinet, learns only after the coil is off again, so "unlock returned" always means
"the coil is no longer driven", and no timer thread can outlive a closed device.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gpiozero import OutputDevice
from gpiozero.pins import Factory

from drivers.io.pins import PinSpec
from drivers.locks.base import HARD_MAX_PULSE_MS, cap_pulse

Sleep = Callable[[float], None]


def check_max_pulse(max_pulse_ms: int) -> int:
    """Refuse a configured cap outside 1..HARD_MAX_PULSE_MS at start-up, not at first use."""
    if not 1 <= max_pulse_ms <= HARD_MAX_PULSE_MS:
        raise ValueError(f"max_pulse_ms must be 1..{HARD_MAX_PULSE_MS}, got {max_pulse_ms}")
    return max_pulse_ms


class PulsedOutput:
    """One GPIO driving one coil through a driver stage (MOSFET or ULN2803), never held on."""

    def __init__(
        self,
        pin: PinSpec,
        *,
        pin_factory: Factory,
        active_high: bool = True,
        max_pulse_ms: int = 1000,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.max_pulse_ms = check_max_pulse(max_pulse_ms)
        self.active_high = active_high
        self._sleep = sleep
        self._busy = threading.Lock()
        # initial_value=False: the coil is off from the moment the pin becomes an output.
        self._device = OutputDevice(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )

    @property
    def pin(self) -> object:
        """The gpiozero pin object (a ``MockPin`` in tests)."""
        return self._device.pin

    @property
    def energised(self) -> bool:
        """True while the coil is driven."""
        return bool(self._device.value)

    def pulse(self, pulse_ms: int | None = None) -> int:
        """Energise for ``pulse_ms`` (capped), then de-energise; return the ms actually used.

        Two pulses on the same output never overlap: the second waits for the first, so one
        pulse's ``finally`` cannot cut another short or extend it.
        """
        ms = cap_pulse(pulse_ms, configured_max_ms=self.max_pulse_ms)
        with self._busy:
            try:
                self._device.on()
                self._sleep(ms / 1000)
            finally:
                # close() from another thread (shutdown) may already have switched it off
                # and released the pin; off() on a released pin would raise here instead.
                if not self._device.closed:
                    self._device.off()
        return ms

    def off(self) -> None:
        """De-energise now (safe to call at any time, from any thread)."""
        self._device.off()

    def close(self) -> None:
        """De-energise, release the pin, and leave it pulled to its *off* level.

        A released GPIO becomes an input; left floating, an active-low stage (a PNP high-side
        switch, an opto wired to 3V3) reads it as "on" and energises its coil. So the pin
        keeps the SoC's pull resistor toward off: down for active-high, up for active-low
        (issue 13). The external 10 kΩ at the gate holds it once the process is gone.
        """
        pin = self._device.pin
        try:
            self._device.off()
        finally:
            self._device.close()
            if pin is not None:
                try:
                    pin.function = "input"
                    pin.pull = "down" if self.active_high else "up"
                except Exception:  # a pin with a fixed pull, or already reclaimed
                    logging.getLogger(__name__).warning("could not pull %r to off", pin)

    @property
    def closed(self) -> bool:
        return bool(self._device.closed)
