"""One indicator LED per slot ("take this one", "put it back here"), or none at all.

Cabinets without slot LEDs get an empty map: every call is then a no-op, so the cabinet
layer drives LEDs the same way whether or not they are fitted.
"""

from __future__ import annotations

from collections.abc import Mapping

from gpiozero import LED
from gpiozero.pins import Factory

from drivers.io.pins import PinSpec


class SlotLeds:
    """LEDs keyed by cabinet slot number. Slots without an LED are silently skipped."""

    def __init__(
        self,
        pins: Mapping[int, PinSpec],
        *,
        pin_factory: Factory,
        active_high: bool = True,
    ) -> None:
        self._leds: dict[int, LED] = {}
        try:
            for slot, pin in pins.items():
                self._leds[slot] = LED(
                    pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
                )
        except Exception:
            self.close()
            raise

    @property
    def slots(self) -> tuple[int, ...]:
        """The slots that have an LED."""
        return tuple(sorted(self._leds))

    def is_lit(self, slot: int) -> bool:
        led = self._leds.get(slot)
        return bool(led.is_lit) if led is not None else False

    def set(self, slot: int, on: bool) -> None:
        """Light or darken one slot's LED (stops any blinking on it)."""
        led = self._leds.get(slot)
        if led is None:
            return
        if on:
            led.on()
        else:
            led.off()

    def blink(self, slot: int, *, on_s: float = 0.25, off_s: float = 0.25) -> None:
        """Blink one slot's LED in the background until :meth:`set` or :meth:`all_off`."""
        led = self._leds.get(slot)
        if led is not None:
            led.blink(on_time=on_s, off_time=off_s, background=True)

    def all_off(self) -> None:
        for led in self._leds.values():
            led.off()

    def close(self) -> None:
        for led in self._leds.values():
            led.close()
        self._leds.clear()
