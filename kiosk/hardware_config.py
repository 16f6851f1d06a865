"""The ``[hardware]`` section: which driver drives the locks, the reader, the door, the LEDs.

Each section is strict (unknown keys are errors) and bounded; cross-field rules that a
wiring mistake would break (one slot on two lock channels, one GPIO pin used twice) are
start-up errors naming the slot or pin. ``docs/hardware.md`` documents every key.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Pin = Annotated[int, Field(ge=0, le=27, description="BCM GPIO number on the 40-pin header")]
PulseMs = Annotated[int, Field(ge=10, le=2000, description="coil on-time cap, ms")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KerongLocks(_Strict):
    driver: Literal["kerong"] = "kerong"
    url: str = Field(min_length=1, description="/dev/ttyUSB0, socket://HOST:PORT, loop://")
    baud: int = Field(default=19200, ge=1200, le=115200)
    max_pulse_ms: PulseMs = 500
    boards: int = Field(default=1, ge=1, le=16, description="used when no slot map is given")
    slots: dict[int, tuple[Annotated[int, Field(ge=0, le=15)], Annotated[int, Field(ge=1, le=16)]]] = (
        Field(default_factory=dict, description="slot -> [board 0-15, channel 1-16]")
    )
    bit_set_means_locked: bool = True
    board_answers_unlock: bool = False

    @model_validator(mode="after")
    def _one_slot_per_channel(self) -> KerongLocks:
        seen: dict[tuple[int, int], int] = {}
        for slot, where in self.slots.items():
            if slot < 1:
                raise ValueError(f"slot {slot}: slot numbers start at 1")
            if where in seen:
                raise ValueError(f"slots {seen[where]} and {slot} are both on board {where[0]} "
                                 f"channel {where[1]}")
            seen[where] = slot
        return self

    def slot_map(self) -> dict[int, tuple[int, int]]:
        if self.slots:
            return dict(self.slots)
        return {n: ((n - 1) // 16, (n - 1) % 16 + 1) for n in range(1, 16 * self.boards + 1)}


class ModbusLocks(_Strict):
    driver: Literal["modbus"] = "modbus"
    url: str = Field(min_length=1, description="serial port, tcp://HOST:PORT or rtu+tcp://")
    baud: int = Field(default=9600, ge=1200, le=115200)
    unit: int = Field(default=1, ge=1, le=247)
    channels: int = Field(default=16, ge=1, le=32)
    pulse_mode: Literal["write-on-then-off", "flash"] = "write-on-then-off"
    key_input_base: int | None = Field(default=None, ge=0, le=65535)
    max_pulse_ms: PulseMs = 500


class GpioSlot(_Strict):
    lock: Pin
    key: Pin | None = None
    feedback: Pin | None = None


class GpioLocks(_Strict):
    driver: Literal["gpio"] = "gpio"
    lock_active_high: bool = True
    max_pulse_ms: PulseMs = 500
    slots: dict[int, GpioSlot] = Field(min_length=1)


LockSettings = Annotated[KerongLocks | ModbusLocks | GpioLocks, Field(discriminator="driver")]


class ReaderSettings(_Strict):
    driver: Literal["mfrc522", "nfcpy"] = "mfrc522"
    spi_bus: int = Field(default=0, ge=0, le=1)
    spi_device: int = Field(default=0, ge=0, le=1)
    irq_pin: Pin | None = 24
    rst_pin: Pin | None = 25
    path: str = Field(default="usb", min_length=1, description="nfcpy device path")


class DoorSettings(_Strict):
    reed_pin: Pin | None = None
    closed_when_active: bool = True


class IndicatorSettings(_Strict):
    buzzer_pin: Pin | None = None
    led_pins: dict[int, Pin] = Field(default_factory=dict)


class HardwareSettings(_Strict):
    """Used when ``simulate = false``; in simulate mode the simulated cabinet is built."""

    locks: LockSettings | None = None
    reader: ReaderSettings | None = None
    door: DoorSettings = Field(default_factory=DoorSettings)
    indicators: IndicatorSettings = Field(default_factory=IndicatorSettings)

    @model_validator(mode="after")
    def _pins_used_once(self) -> HardwareSettings:
        used: dict[int, str] = {}

        def claim(pin: int | None, what: str) -> None:
            if pin is None:
                return
            if pin in used:
                raise ValueError(f"GPIO{pin} is wired twice: {used[pin]} and {what}")
            used[pin] = what

        if isinstance(self.locks, GpioLocks):
            for slot, pins in self.locks.slots.items():
                claim(pins.lock, f"slot {slot} lock")
                claim(pins.key, f"slot {slot} key sensor")
                claim(pins.feedback, f"slot {slot} lock feedback")
        if self.reader is not None and self.reader.driver == "mfrc522":
            claim(self.reader.irq_pin, "reader IRQ")
            claim(self.reader.rst_pin, "reader reset")
            for spi in (8, 9, 10, 11):
                claim(spi, "SPI0")
        claim(self.door.reed_pin, "door reed")
        claim(self.indicators.buzzer_pin, "buzzer")
        for slot, pin in self.indicators.led_pins.items():
            claim(pin, f"slot {slot} LED")
        return self
