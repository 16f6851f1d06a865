"""The cabinet's piezo buzzer: a few named beep patterns so feedback sounds the same everywhere.

An active buzzer (built-in oscillator) on a transistor stage; gpiozero's ``Buzzer`` does the
on/off timing, either blocking or on its own background thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpiozero import Buzzer
from gpiozero.pins import Factory

from drivers.io.pins import PinSpec


@dataclass(frozen=True, slots=True)
class BeepPattern:
    """``count`` beeps of ``on_s`` seconds separated by ``off_s`` seconds of silence."""

    on_s: float
    off_s: float
    count: int

    def __post_init__(self) -> None:
        if self.on_s <= 0 or self.off_s < 0 or self.count < 1:
            raise ValueError(f"not a beep pattern: {self}")


PATTERNS: dict[str, BeepPattern] = {
    "ok": BeepPattern(0.08, 0.0, 1),  # card accepted
    "deny": BeepPattern(0.15, 0.1, 3),  # access refused
    "reminder": BeepPattern(0.05, 0.2, 2),  # door still open, key not back yet
}


class CabinetBuzzer:
    """One buzzer: short named patterns, and a continuous alarm until silenced."""

    def __init__(self, pin: PinSpec, *, pin_factory: Factory, active_high: bool = True) -> None:
        self._buzzer = Buzzer(
            pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )

    @property
    def pin(self) -> object:
        return self._buzzer.pin

    @property
    def sounding(self) -> bool:
        return bool(self._buzzer.is_active)

    def beep(self, pattern: str | BeepPattern = "ok", *, background: bool = True) -> None:
        """Play a named pattern (see ``PATTERNS``) or a custom one; ``KeyError`` if unknown."""
        p = PATTERNS[pattern] if isinstance(pattern, str) else pattern
        self._buzzer.beep(on_time=p.on_s, off_time=p.off_s, n=p.count, background=background)

    def alarm(self, *, on_s: float = 0.5, off_s: float = 0.5) -> None:
        """Beep until :meth:`silence` (forced door, key removed without a session)."""
        self._buzzer.beep(on_time=on_s, off_time=off_s, n=None, background=True)

    def silence(self) -> None:
        self._buzzer.off()

    def close(self) -> None:
        self._buzzer.close()
