"""The cabinet's GPIO wiring, simulated: gpiozero ``MockFactory`` pins bound to a CabinetModel.

Drivers run unchanged on the mock pins. When a lock output goes active the model's latch is
released (and held while the coil stays driven); when it drops, the latch relocks. Key
switches, lock-feedback switches and the door reed are input pins driven from the model, so
a simulated person who takes a key changes what ``GpioLockBank.status()`` reads at once.

The simulator reuses the drivers' wiring config (``GpioBankConfig``, ``InputWiring``) so
both sides agree on which level means "active". It must be bound *before* the drivers claim
their pins: it installs its own pin class, which is how it hears an output change.
"""

from __future__ import annotations

from collections.abc import Callable

from gpiozero.pins.mock import MockFactory, MockPin

from drivers.io.pins import SWITCH_TO_GND, InputWiring, PinSpec
from drivers.locks.gpio_bank import GpioBankConfig
from simulators.cabinet import CabinetModel

HOLD_S = 24 * 3600.0
"""How long the model keeps a latch free per energise; the coil dropping relocks it sooner."""


class SimPin(MockPin):
    """A mock pin that reports output changes and can be re-driven from the model.

    ``on_output`` hears every level change while the pin is an output. ``level_source``
    gives the level an input should show; it is re-applied whenever gpiozero sets the pull
    (building a ``DigitalInputDevice`` would otherwise leave the idle level behind).
    """

    on_output: Callable[[bool], None] | None = None
    level_source: Callable[[], bool] | None = None

    def _change_state(self, value: bool) -> bool:
        changed: bool = super()._change_state(value)
        if changed and self._function == "output" and self.on_output is not None:
            self.on_output(bool(value))
        return changed

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        self.resync()

    def resync(self) -> None:
        """Drive an input pin to the level the model says it should have."""
        if self._function != "input" or self.level_source is None:
            return
        if self.level_source():
            self.drive_high()
        else:
            self.drive_low()


def _level(wiring: InputWiring, active: bool) -> bool:
    return wiring.active_level if active else not wiring.active_level


class GpioCabinet:
    """Binds one CabinetModel to the mock pins a GPIO-wired cabinet would use."""

    def __init__(
        self,
        model: CabinetModel,
        pin_factory: MockFactory,
        bank: GpioBankConfig | None = None,
        *,
        door_pin: PinSpec | None = None,
        door_wiring: InputWiring = SWITCH_TO_GND,
        door_closed_when_active: bool = True,
        door_lock_pin: PinSpec | None = None,
        door_lock_active_high: bool = True,
    ) -> None:
        self.model = model
        self._factory = pin_factory
        self._inputs: list[SimPin] = []
        self._outputs: list[SimPin] = []
        self._bound = True
        if bank is not None:
            for slot, pins in bank.slots.items():
                if slot not in model.slots:
                    raise ValueError(f"the GPIO bank drives slot {slot}, the model has none")
                self._bind_slot(slot, pins.lock, pins.key, pins.feedback, bank)
        if door_pin is not None:
            wiring, when_active = door_wiring, door_closed_when_active
            self._bind_input(door_pin, lambda: _level(wiring, (not model.door_open) == when_active))
        if door_lock_pin is not None:
            self._bind_output(door_lock_pin, self._door_lock_hook(door_lock_active_high))
        model.subscribe(self._on_model_change)

    # -- binding ----------------------------------------------------------------------------
    def _bind_slot(
        self,
        slot: int,
        lock: PinSpec,
        key: PinSpec | None,
        feedback: PinSpec | None,
        bank: GpioBankConfig,
    ) -> None:
        model = self.model
        active_high = bank.lock_active_high

        def coil(level: bool) -> None:
            if not self._bound:
                return
            if level == active_high:
                model.unlock(slot, HOLD_S)
            else:
                model.relock(slot)

        self._bind_output(lock, coil)
        if key is not None:
            kw = bank.key_wiring
            self._bind_input(key, lambda: _level(kw, model.key_present(slot)))
        if feedback is not None:
            fw, active_locked = bank.feedback_wiring, bank.feedback_active_is_locked
            self._bind_input(
                feedback,
                lambda: _level(fw, (not model.is_unlocked(slot)) == active_locked),
            )

    def _door_lock_hook(self, active_high: bool) -> Callable[[bool], None]:
        def hook(level: bool) -> None:
            if self._bound:
                self.model.door_locked = level != active_high

        return hook

    def _claim(self, name: PinSpec) -> SimPin:
        pin = self._factory.pin(name, pin_class=SimPin)
        if not isinstance(pin, SimPin):
            raise ValueError(f"pin {name} already exists: bind GpioCabinet before the drivers")
        return pin

    def _bind_output(self, name: PinSpec, hook: Callable[[bool], None]) -> None:
        pin = self._claim(name)
        pin.on_output = hook
        self._outputs.append(pin)

    def _bind_input(self, name: PinSpec, source: Callable[[], bool]) -> None:
        pin = self._claim(name)
        pin.level_source = source
        self._inputs.append(pin)
        pin.resync()

    # -- model -> pins ----------------------------------------------------------------------
    def _on_model_change(self, what: str, slot: int | None) -> None:
        if self._bound:
            self.resync()

    def resync(self) -> None:
        """Re-drive every input pin from the model (also done on every model change)."""
        for pin in self._inputs:
            pin.resync()

    def close(self) -> None:
        """Stop mirroring: pins keep their last level, coils no longer move the model."""
        self._bound = False
        for pin in self._inputs:
            pin.level_source = None
        for pin in self._outputs:
            pin.on_output = None
