"""Small shared vocabulary for GPIO wiring: pin names and how an input is wired.

Kept apart from any device so the lock bank, the door sensor and the simulator that drives
their mock pins all agree on what "active" means electrically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from gpiozero.pins import Factory

from drivers.errors import DriverError

PinSpec: TypeAlias = int | str
"""A gpiozero pin name: ``17``, ``"GPIO17"``, ``"BCM17"`` or ``"BOARD11"``."""


@dataclass(frozen=True, slots=True)
class InputWiring:
    """How a switch input is wired, in gpiozero's own terms.

    ``pull_up=True``: internal pull-up, the switch closes to GND, closed reads as *active*.
    ``pull_up=False``: internal pull-down, the switch closes to 3V3. ``pull_up=None``: an
    external resistor sets the idle level, so ``active_state`` must say which level is
    active (gpiozero refuses the other combinations, and so do we, at start-up).
    """

    pull_up: bool | None = True
    active_state: bool | None = None

    def __post_init__(self) -> None:
        if self.pull_up is None and self.active_state is None:
            raise ValueError("an input without an internal pull needs active_state")
        if self.pull_up is not None and self.active_state is not None:
            raise ValueError("active_state is implied by pull_up; give one or the other")

    @property
    def active_level(self) -> bool:
        """The electrical level (True = high) that reads as active."""
        if self.pull_up is None:
            assert self.active_state is not None
            return self.active_state
        return not self.pull_up


def pin_key(pin: PinSpec) -> str:
    """Normalise a pin name enough to spot the same GPIO listed twice in one config."""
    if isinstance(pin, int):
        return f"GPIO{pin}"
    text = pin.strip().upper()
    if text.startswith("BCM"):
        return "GPIO" + text[3:]
    return text


SWITCH_TO_GND = InputWiring(pull_up=True)
"""The default wiring: internal pull-up, switch closes to GND, closed reads active."""


def make_pin_factory(mode: str) -> Factory:
    """The one pin factory of the process: lgpio on the Pi (``"real"``), mock pins otherwise.

    ``gpiozero.pins.lgpio`` imports ``lgpio`` at module level and ``lgpio`` exists only on a
    Pi (extra ``pi``), so it is imported here, at start-up, and nowhere else.
    """
    if mode == "simulated":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if mode != "real":
        raise ValueError(f"hardware mode must be 'real' or 'simulated', got {mode!r}")
    try:
        from gpiozero.pins.lgpio import LGPIOFactory
    except ImportError as exc:
        raise DriverError("lgpio is not installed (install keycabinet[pi] on the Pi)") from exc
    try:
        return LGPIOFactory()
    except Exception as exc:  # lgpio.error: no /dev/gpiochip*, no permission
        raise DriverError(f"cannot open the GPIO chip: {exc}") from exc
