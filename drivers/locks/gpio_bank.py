"""A lock bank wired straight to the Pi's GPIO header: one output per slot coil.

Each slot has a lock output (through a MOSFET or ULN2803 stage: a GPIO pin can never drive
a solenoid itself), optionally a key-present switch and optionally a lock-state feedback
switch. The feedback switch, where fitted, is what turns "I de-energised the coil" into
"the latch is shut": a latch that stays open after its pulse is a :class:`LockFault`.

Timing: :meth:`GpioLockBank.unlock` blocks for the pulse (see ``drivers.io.pulse``); the
cabinet calls it from a worker thread. Pulses are serialised across the bank so the 12 V
supply only ever sees one coil's inrush at a time.

Safety: the coil on-time is capped (``cap_pulse`` and the configured ``max_pulse_ms``); any
exception inside ``unlock``, ``close()`` and process exit all drive every output locked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gpiozero import DigitalInputDevice
from gpiozero.pins import Factory

from drivers.errors import LockBoardError, LockFault
from drivers.io import safety
from drivers.io.pins import InputWiring, PinSpec, pin_key
from drivers.io.pulse import PulsedOutput, Sleep, check_max_pulse
from drivers.locks.base import HARD_MAX_PULSE_MS, SlotState, cap_pulse
from drivers.locks.duty import DutyCycle, DutyLimit

log = logging.getLogger(__name__)

FEEDBACK_POLL_MS = 10
"""How often the feedback input is re-read while the latch settles."""


@dataclass(frozen=True, slots=True)
class GpioSlotPins:
    """The pins of one slot. ``key`` and ``feedback`` are ``None`` where no switch is fitted."""

    lock: PinSpec
    key: PinSpec | None = None
    feedback: PinSpec | None = None


@dataclass(frozen=True)
class GpioBankConfig:
    """Everything about how a GPIO lock bank is wired; validated when built.

    ``key_wiring``: *active* means a key is present. ``feedback_wiring``: *active* means
    locked when ``feedback_active_is_locked`` (a switch the bolt closes when it is home).
    ``feedback_settle_ms`` is how long a latch may take to re-engage after the coil drops.
    """

    slots: Mapping[int, GpioSlotPins]
    lock_active_high: bool = True
    key_wiring: InputWiring = field(default_factory=InputWiring)
    feedback_wiring: InputWiring = field(default_factory=InputWiring)
    feedback_active_is_locked: bool = True
    max_pulse_ms: int = 1000
    feedback_settle_ms: int = 200

    def __post_init__(self) -> None:
        if not self.slots:
            raise ValueError("a GPIO lock bank needs at least one slot")
        check_max_pulse(self.max_pulse_ms)
        if not 0 <= self.feedback_settle_ms <= HARD_MAX_PULSE_MS:
            raise ValueError(f"feedback_settle_ms must be 0..{HARD_MAX_PULSE_MS}")
        seen: dict[str, str] = {}
        for slot, pins in self.slots.items():
            if slot < 1:
                raise ValueError(f"slot numbers start at 1, got {slot}")
            for role in ("lock", "key", "feedback"):
                pin = getattr(pins, role)
                if pin is None:
                    continue
                key = pin_key(pin)
                if key in seen:
                    raise ValueError(f"{key} is used twice: {seen[key]} and slot {slot} {role}")
                seen[key] = f"slot {slot} {role}"
        # Freeze a private copy so the caller cannot re-map slots under a running bank.
        object.__setattr__(self, "slots", MappingProxyType(dict(self.slots)))


class GpioLockBank:
    """:class:`~drivers.locks.base.LockBank` over GPIO pins, every device on ``pin_factory``."""

    def __init__(
        self, config: GpioBankConfig, *, pin_factory: Factory, sleep: Sleep = time.sleep,
        duty: DutyLimit | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``duty`` limits how often one coil may pulse (see ``drivers.locks.duty``)."""
        self.config = config
        self._sleep = sleep
        self._duty = DutyCycle(duty, clock=clock) if duty is not None else None
        self._bank_lock = threading.Lock()
        self._closed = False
        self._coils: dict[int, PulsedOutput] = {}
        self._keys: dict[int, DigitalInputDevice] = {}
        self._feedback: dict[int, DigitalInputDevice] = {}
        try:
            for slot, pins in sorted(config.slots.items()):
                self._coils[slot] = PulsedOutput(
                    pins.lock,
                    pin_factory=pin_factory,
                    active_high=config.lock_active_high,
                    max_pulse_ms=config.max_pulse_ms,
                    sleep=sleep,
                )
                if pins.key is not None:
                    self._keys[slot] = _input(pins.key, config.key_wiring, pin_factory)
                if pins.feedback is not None:
                    self._feedback[slot] = _input(
                        pins.feedback, config.feedback_wiring, pin_factory
                    )
        except Exception:
            self.close()
            raise
        safety.lock_on_exit(self)

    # -- LockBank ---------------------------------------------------------------------------
    @property
    def slots(self) -> tuple[int, ...]:
        return tuple(sorted(self.config.slots))

    def unlock(self, slot: int, pulse_ms: int | None = None) -> None:
        """Pulse ``slot``'s coil (blocking), then check its feedback switch if it has one.

        Raises ``ValueError`` for a slot this bank does not drive, ``LockBoardError`` if the
        bank is closed and ``LockFault`` if the latch still reads open after settling.
        """
        if slot not in self._coils:
            raise ValueError(f"slot {slot} is not on this GPIO bank {self.slots}")
        ms = cap_pulse(pulse_ms, configured_max_ms=self.config.max_pulse_ms)
        try:
            with self._bank_lock:
                if self._closed:
                    raise LockBoardError("the GPIO lock bank is closed")
                if self._duty is not None:
                    self._duty.admit(slot, ms)  # refused before the coil is touched
                self._coils[slot].pulse(ms)
                if self._closed:
                    raise LockBoardError("the GPIO lock bank was closed during the pulse")
                if slot in self._feedback and not self._settled_locked(slot):
                    raise LockFault(slot, "latch still open after its pulse")
        except BaseException:
            self.lock_all()
            raise

    def status(self) -> dict[int, SlotState]:
        """Each slot's latch (feedback if fitted, otherwise "coil not driven") and key switch."""
        if self._closed:
            raise LockBoardError("the GPIO lock bank is closed")
        result: dict[int, SlotState] = {}
        for slot, coil in self._coils.items():
            locked = self._reads_locked(slot) if slot in self._feedback else not coil.energised
            key = self._keys.get(slot)
            present = bool(key.is_active) if key is not None else None
            result[slot] = SlotState(slot=slot, locked=locked, key_present=present)
        return result

    def lock_all(self) -> None:
        """De-energise every coil; one failing pin never stops the others, never raises."""
        for slot, coil in self._coils.items():
            if coil.closed:
                continue
            try:
                coil.off()
            except Exception:
                log.exception("could not de-energise slot %s", slot)

    def close(self) -> None:
        """Lock everything, release every pin, forget the exit hook. Idempotent."""
        self._closed = True
        self.lock_all()
        safety.release(self)
        devices: list[PulsedOutput | DigitalInputDevice] = [
            *self._coils.values(),
            *self._keys.values(),
            *self._feedback.values(),
        ]
        for device in devices:
            try:
                device.close()
            except Exception:
                log.exception("could not release %r", device)

    # -- feedback ---------------------------------------------------------------------------
    def _reads_locked(self, slot: int) -> bool:
        active = bool(self._feedback[slot].is_active)
        return active == self.config.feedback_active_is_locked

    def _settled_locked(self, slot: int) -> bool:
        """Re-read the feedback switch until it says locked or the settle time is spent."""
        polls = self.config.feedback_settle_ms // FEEDBACK_POLL_MS
        for _ in range(polls):
            if self._reads_locked(slot):
                return True
            self._sleep(FEEDBACK_POLL_MS / 1000)
        return self._reads_locked(slot)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<GpioLockBank slots={self.slots} {state}>"


def _input(pin: PinSpec, wiring: InputWiring, pin_factory: Factory) -> DigitalInputDevice:
    return DigitalInputDevice(
        pin, pull_up=wiring.pull_up, active_state=wiring.active_state, pin_factory=pin_factory
    )
