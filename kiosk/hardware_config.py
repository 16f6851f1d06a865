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


class DutySettings(_Strict):
    """Duty-cycle limit per coil (``drivers.locks.duty``): solenoids are rated for a duty
    cycle, not only a maximum pulse. Applied on real hardware; omit the section for none."""

    pulses_per_minute: int = Field(default=6, ge=1, le=60)
    cooldown_ms: int = Field(default=1500, ge=0, le=60_000,
                             description="between two pulses of one coil, from the end of the first")


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
    pulse_ms: PulseMs | None = Field(
        default=None, description="coil time set at commissioning and restored on close "
                                  "(default 500 ms within max_pulse_ms)")
    reply_timeout_s: float = Field(default=0.25, ge=0.01, le=5.0,
                                   description="longer than the slowest board's answer")
    retries: int = Field(default=2, ge=0, le=10)
    turnaround_s: float = Field(default=0.004, ge=0.0, le=0.1,
                                description="gap after a frame no board answers")
    quarantine_after: int = Field(default=2, ge=1, le=100,
                                  description="missed sweeps before a board is quarantined")
    reprobe_s: float = Field(default=5.0, ge=0.1, le=600.0,
                             description="how often a quarantined board is asked again")
    reopen_backoff_s: float = Field(default=0.1, ge=0.01, le=10.0)
    reopen_backoff_max_s: float = Field(default=5.0, ge=0.01, le=60.0)
    status_variant: Literal["detect", "off", "per-board", "aggregate"] = Field(
        default="detect", description="0x32 answer format: detect at commissioning, or force")
    duty: DutySettings | None = Field(default_factory=DutySettings)

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
    parity: Literal["N", "E", "O"] = "N"
    timeout_s: float = Field(default=0.5, ge=0.01, le=10.0)
    unit: int = Field(default=1, ge=1, le=247)
    channels: int = Field(default=16, ge=1, le=32)
    slots: dict[int, Annotated[int, Field(ge=0, le=31)]] = Field(
        default_factory=dict, description="slot -> relay channel 0-based; default slot n -> n-1")
    coil_base: int = Field(default=0, ge=0, le=65535)
    coil_on_unlocks: bool = True
    key_input_base: int | None = Field(default=None, ge=0, le=65535)
    key_present_when: bool = True
    pulse_mode: Literal["write-on-then-off", "flash"] = "write-on-then-off"
    flash_register_base: int = Field(default=1, ge=0, le=65535)
    flash_command: int = Field(default=0x06, ge=0, le=255)
    flash_unit_ms: int = Field(default=100, ge=10, le=1000)
    max_pulse_ms: PulseMs = 500
    off_margin_ms: int = Field(default=200, ge=0, le=1990,
                               description="write-on-then-off: pulse shortened by this so one "
                                           "lost 'off' still ends within max_pulse_ms")
    settle_ms: int = Field(default=300, ge=0, le=2000)
    verify_readback: bool = True
    retries: int = Field(default=2, ge=0, le=5)
    backoff_ms: int = Field(default=50, ge=0, le=1000)
    duty: DutySettings | None = Field(default_factory=DutySettings)


class WiringSettings(_Strict):
    """How a switch input is wired (``drivers.io.pins.InputWiring``)."""

    pull_up: bool | Literal["none"] = True
    active_state: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> WiringSettings:
        if self.pull_up == "none" and self.active_state is None:
            raise ValueError('pull_up = "none" needs active_state (the external resistor)')
        if self.pull_up != "none" and self.active_state is not None:
            raise ValueError("active_state is implied by pull_up; give one or the other")
        return self


class GpioSlot(_Strict):
    lock: Pin
    key: Pin | None = None
    feedback: Pin | None = None


class GpioLocks(_Strict):
    driver: Literal["gpio"] = "gpio"
    lock_active_high: bool = True
    max_pulse_ms: PulseMs = 500
    key_wiring: WiringSettings = Field(default_factory=WiringSettings)
    feedback_wiring: WiringSettings = Field(default_factory=WiringSettings)
    feedback_active_is_locked: bool = True
    feedback_settle_ms: int = Field(default=200, ge=0, le=2000)
    slots: dict[int, GpioSlot] = Field(min_length=1)
    duty: DutySettings | None = Field(default_factory=DutySettings)


LockSettings = Annotated[KerongLocks | ModbusLocks | GpioLocks, Field(discriminator="driver")]


I2cAddress = Annotated[int, Field(ge=0x18, le=0x1F, description="DS2482-800 address")]
Channel8 = Annotated[int, Field(ge=0, le=7)]


class IdentitySettings(_Strict):
    """Key identity receptors: a 1-Wire ROM chip in each fob, read per slot through
    DS2482-800 bridges (``drivers.identity``). ``enabled = false`` (the default) is a
    presence-only cabinet: today's behaviour. In simulate mode ``enabled`` alone matters:
    the simulated cabinet then has receptors too."""

    enabled: bool = False
    i2c_bus: int = Field(default=1, ge=0, le=20, description="/dev/i2c-N")
    mux_address: int | None = Field(default=None, ge=0x70, le=0x77,
                                    description="TCA9548A, needed beyond 64 slots")
    slots: dict[int, tuple[I2cAddress, Channel8] | tuple[Channel8, I2cAddress, Channel8]] = (
        Field(default_factory=dict,
              description="slot -> [address, channel] or [mux channel, address, channel]; "
                          "default: slot n on 0x18 + (n-1)//8, channel (n-1)%8")
    )
    busy_timeout_ms: int = Field(default=20, ge=1, le=1000)
    crc_retries: int = Field(default=1, ge=0, le=5)

    @model_validator(mode="after")
    def _one_slot_per_receptor(self) -> IdentitySettings:
        seen: dict[tuple[int, ...], int] = {}
        for slot, where in self.slots.items():
            if slot < 1:
                raise ValueError(f"slot {slot}: slot numbers start at 1")
            if len(where) == 3 and self.mux_address is None:
                raise ValueError(f"slot {slot}: a mux channel needs mux_address")
            key = tuple(where) if len(where) == 3 else (-1, *where)
            if key in seen:
                raise ValueError(f"slots {seen[key]} and {slot} share one receptor")
            seen[key] = slot
        return self


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
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
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
