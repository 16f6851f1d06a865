"""The register map and timed-pulse codec of a Modbus relay board, apart from the driver.

Shared by the driver (``drivers.locks.modbus_relay``) and the board simulator, so both
sides agree on coil, input and flash-register addresses; validated when built, so a wrong
map is a start-up error and not a coil pulsed on the wrong channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from drivers.io.pulse import check_max_pulse
from drivers.locks.base import HARD_MAX_PULSE_MS

PulseMode = Literal["write-on-then-off", "flash"]
PULSE_MODES: tuple[str, ...] = ("write-on-then-off", "flash")


# -- codec ---------------------------------------------------------------------------------
def encode_flash(pulse_ms: int, *, command: int, unit_ms: int) -> int:
    """The register value for a timed pulse: command byte high, time in units low.

    At least one unit (a pulse is never zero); with a command byte the low byte caps the
    count at 255 units. ``command=0`` means the whole register is the unit count.
    """
    if pulse_ms <= 0:
        raise ValueError(f"pulse must be positive, got {pulse_ms} ms")
    units = max(1, pulse_ms // unit_ms)
    if command:
        return (command << 8) | min(units, 0xFF)
    return min(units, 0xFFFF)


def decode_flash(value: int, *, command: int, unit_ms: int) -> int | None:
    """The pulse in ms a register write asks for, or ``None`` if it is not a flash command."""
    if command:
        if value >> 8 != command:
            return None
        units = value & 0xFF
    else:
        units = value
    return units * unit_ms if units else None


# -- config --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModbusRelayConfig:
    """How one relay board is addressed and wired; validated when built.

    ``slots`` maps cabinet slot -> relay channel (0-based); default slot n -> channel n-1.
    """

    unit: int = 1
    channels: int = 16
    slots: Mapping[int, int] | None = None
    coil_base: int = 0
    coil_on_unlocks: bool = True
    key_input_base: int | None = None
    key_present_when: bool = True
    pulse_mode: PulseMode = "write-on-then-off"
    flash_register_base: int = 1
    flash_command: int = 0x06
    flash_unit_ms: int = 100
    max_pulse_ms: int = 1000
    settle_ms: int = 300
    verify_readback: bool = True
    retries: int = 2
    backoff_ms: int = 50
    off_margin_ms: int = 200
    """write-on-then-off only: the pulse is shortened so that one lost "off" (one client
    timeout) still drops the coil within ``max_pulse_ms``; set it to the transport timeout."""

    def __post_init__(self) -> None:
        _bounded("unit", self.unit, 1, 247)
        _bounded("channels", self.channels, 1, 32)
        _bounded("coil_base", self.coil_base, 0, 0xFFFF - self.channels)
        if self.key_input_base is not None:
            _bounded("key_input_base", self.key_input_base, 0, 0xFFFF - self.channels)
        if self.pulse_mode not in PULSE_MODES:
            raise ValueError(f"pulse_mode must be one of {PULSE_MODES}, got {self.pulse_mode!r}")
        _bounded("flash_register_base", self.flash_register_base, 0, 0xFFFF - self.channels)
        _bounded("flash_command", self.flash_command, 0, 0xFF)
        check_max_pulse(self.max_pulse_ms)
        _bounded("flash_unit_ms", self.flash_unit_ms, 10, min(1000, self.max_pulse_ms))
        _bounded("settle_ms", self.settle_ms, 0, HARD_MAX_PULSE_MS)
        _bounded("retries", self.retries, 0, 5)
        _bounded("backoff_ms", self.backoff_ms, 0, 1000)
        _bounded("off_margin_ms", self.off_margin_ms, 0, self.max_pulse_ms - 10)
        if self.pulse_mode == "flash" and not self.coil_on_unlocks:
            raise ValueError("flash pulses energise the coil: needs coil_on_unlocks=true")
        slots = (
            dict(self.slots)
            if self.slots is not None
            else {n: n - 1 for n in range(1, self.channels + 1)}
        )
        if not slots:
            raise ValueError("a relay bank needs at least one slot")
        owner: dict[int, int] = {}
        for slot, channel in slots.items():
            if slot < 1:
                raise ValueError(f"slot numbers start at 1, got {slot}")
            _bounded(f"channel of slot {slot}", channel, 0, self.channels - 1)
            if channel in owner:
                raise ValueError(f"channel {channel} drives slots {owner[channel]} and {slot}")
            owner[channel] = slot
        object.__setattr__(self, "slots", MappingProxyType(slots))

    @property
    def slot_map(self) -> Mapping[int, int]:
        """The validated slot -> channel map (never ``None`` after construction)."""
        assert self.slots is not None
        return self.slots


def _bounded(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be {low}..{high}, got {value}")
