"""Part of the composition root: builds the hardware the cabinet drives from ``Settings``.

Simulated mode builds the real drivers against the simulators at their lowest layer: the
Kerong driver talks real protocol bytes over a TCP socket to the lock-board simulator, the
MFRC522 driver reads registers of the chip simulator, the door reed is a gpiozero mock pin
driven by the physical cabinet model. Only this module, ``kiosk.cli`` and ``kiosk.daemon``
import ``simulators``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from gpiozero.pins.mock import MockFactory
from sqlalchemy import select
from sqlalchemy.orm import Session

from drivers.errors import DriverError, ReaderError
from drivers.identity import (
    IdentifiedLockBank,
    SlotIdentityReader,
    default_receptors,
    open_smbus,
)
from drivers.identity.ds2482 import Receptor
from drivers.io.buzzer import CabinetBuzzer
from drivers.io.door import DoorSensor
from drivers.io.leds import SlotLeds
from drivers.io.pins import InputWiring, make_pin_factory
from drivers.locks.base import LockBank
from drivers.locks.duty import DutyLimit
from drivers.locks.gpio_bank import GpioBankConfig, GpioLockBank, GpioSlotPins
from drivers.locks.kerong import KerongLockBank
from drivers.rfid import CardReader, Mfrc522Reader, NfcpyReader
from drivers.rfid.mfrc522 import Mfrc522Config, open_spidev
from drivers.rfid.nfcpy_reader import NfcpyConfig
from kiosk import records
from kiosk.audit import AuditLog, NewEvent
from kiosk.config import Settings
from kiosk.errors import ConfigError, SimulationError
from kiosk.hardware_config import (
    DutySettings,
    GpioLocks,
    IdentitySettings,
    KerongLocks,
    ModbusLocks,
    WiringSettings,
)
from kiosk.runtime import Runtime
from kiosk.store.models import Key, Slot
from simulators.cabinet import CabinetModel, PhysicalError
from simulators.ds2482 import I2cBusSim, bus_for_receptors
from simulators.gpio_cabinet import GpioCabinet
from simulators.kerong_board import KerongBoardServer, KerongBoardSim
from simulators.mfrc522_chip import Mfrc522ChipSim
from simulators.tags import card_from_uid_hex

log = logging.getLogger("kiosk.wiring")

CHANNELS = 16
DOOR_PIN = "GPIO5"
IRQ_PIN = "GPIO24"
SIM_STATE_FILE = "sim-cabinet.json"
SIM_READER_LOG_LENGTH = 256
"""What the daemon's simulated MFRC522 remembers of its traffic (commands, frames on air,
IRQ level changes): nothing in the daemon reads it, and polled 20 times a second a short
log is full within seconds, so the daemon's memory stops moving at once rather than after
the 4,096 entries a test rig keeps (about 0.7 MB, reached after an hour of draws)."""
"""The simulated cabinet's physical state in the data dir: a real cabinet does not reset
when the Pi reboots, so neither does the simulated one (a pulled key stays pulled)."""
MUX_ADDRESS = 0x70
DOOR_SWING_S = 0.3
"""The least time a simulated person needs between a compartment door springing open and
pushing it shut again (``CabinetModel.door_swing_s``; a real hand takes longer). Without
it ``/sim/insert`` could put a key in and latch the door within the ~25 ms between the
unlock pulse and the driver's read-back, which then reads the slot locked and reports a
working unlock as a lock fault: no person is that fast, so the simulator must not be."""
DOOR_SWING_ENV = "KIOSK_SIM_DOOR_SWING_S"
"""Overrides :data:`DOOR_SWING_S` for the simulated cabinet only: a bench that runs thousands
of draws (bench/bench_memory.py) plays a quicker person. Never below
:data:`MIN_DOOR_SWING_S`: the unlock-to-read-back time above is ~25 ms on a quiet machine,
but at 0.05 s a loaded one read back a latch already pushed shut again and recorded the
return's unlock as failed (bench/bench_memory.py caught it), so the floor keeps a margin."""
MIN_DOOR_SWING_S = 0.2


def door_swing_s(environ: dict[str, str] | None = None) -> float:
    """The simulated person's least door swing: :data:`DOOR_SWING_S` unless
    ``KIOSK_SIM_DOOR_SWING_S`` says otherwise (a value below :data:`MIN_DOOR_SWING_S` or not
    a number is refused)."""
    raw = (os.environ if environ is None else environ).get(DOOR_SWING_ENV)
    if raw is None or raw == "":
        return DOOR_SWING_S
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{DOOR_SWING_ENV}={raw!r} is not a number of seconds") from None
    if not MIN_DOOR_SWING_S <= value <= 10:
        raise ConfigError(f"{DOOR_SWING_ENV}={raw!r}: between {MIN_DOOR_SWING_S} and 10 seconds")
    return value


SIM_BAUD_ENV = "KIOSK_SIM_BAUD"
"""The simulated Kerong bus's speed, for the simulated cabinet only. A real Kerong bus runs
at 19200 baud and the simulator times its answers as that wire would: a scan of the demo
tower's 13 boards takes about 86 ms, and a bench that plays 10,000 draws waits for three
scans a draw (bench/bench_memory.py measures memory, not the wire, so it may run the bus
at one of the faster rates the boards offer)."""
SIM_BAUDS = (9600, 19200, 38400, 57600, 115200)


def sim_baud(environ: dict[str, str] | None = None) -> int:
    """The simulated bus's baud rate: 19200 unless ``KIOSK_SIM_BAUD`` names another of
    :data:`SIM_BAUDS` (anything else is refused)."""
    raw = (os.environ if environ is None else environ).get(SIM_BAUD_ENV)
    if raw is None or raw == "":
        return 19200
    if not raw.isdigit() or int(raw) not in SIM_BAUDS:
        raise ConfigError(f"{SIM_BAUD_ENV}={raw!r}: one of {', '.join(map(str, SIM_BAUDS))}")
    return int(raw)


def kerong_slot_map(slots: list[int]) -> dict[int, tuple[int, int]]:
    """Slot n is board (n-1)//16, channel (n-1)%16+1: the order boards are daisy-chained in."""
    return {n: ((n - 1) // CHANNELS, (n - 1) % CHANNELS + 1) for n in slots}


@dataclass
class SimulatedHardware:
    """A whole virtual cabinet and the real drivers connected to it."""

    model: CabinetModel
    board: KerongBoardServer
    locks: KerongLockBank
    reader: CardReader
    chip: Mfrc522ChipSim
    door_sensor: DoorSensor
    gpio: GpioCabinet
    pins: MockFactory
    identity: SlotIdentityReader | None = None
    """The slot identity receptors, where the cabinet has them (``[hardware.identity]``)."""
    i2c: I2cBusSim | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _bank: IdentifiedLockBank | None = None

    @property
    def bank(self) -> LockBank:
        """What the cabinet should drive: the locks, with each slot's fob identity in
        ``SlotState.fob`` where the cabinet has receptors."""
        if self.identity is None:
            return self.locks
        if self._bank is None:
            self._bank = IdentifiedLockBank(self.locks, self.identity)
        return self._bank

    def tap(self, uid_hex: str, *, hold_s: float = 0.4) -> None:
        """Hold a card (or key fob tag) with this UID to the reader, then take it away."""
        tag = card_from_uid_hex(uid_hex)
        self.model.place_tag(tag)
        # Only this tag is taken away: a later tap's tag stays until its own hold is over.
        timer = threading.Timer(hold_s, self.model.remove_tag, args=(tag,))
        timer.daemon = True
        timer.start()

    def take(self, slot: int, *, shut: bool = True, force: bool = False) -> str:
        """Pull the key out of ``slot`` and (by default) push the compartment shut."""
        fob = self._physical(self.model.take, slot, force=force)
        if shut:
            self.model.shut_slot(slot)
        return str(fob)

    def insert(self, fob: str, slot: int, *, shut: bool = True) -> None:
        self._physical(self.model.insert, fob, slot)
        if shut:
            self.model.shut_slot(slot)

    def shut(self, slot: int) -> None:
        self._physical(self.model.shut_slot, slot)

    def door(self, open_: bool) -> None:
        (self.model.open_door if open_ else self.model.close_door)()

    def power(self, on: bool) -> None:
        (self.model.power_restore if on else self.model.power_cut)()

    def state(self) -> dict[str, Any]:
        m = self.model

        def rom(n: int) -> str | None:
            found = m.fob_rom(n)
            return None if found is None else found.hex

        return {
            "powered": m.powered,
            "door_open": m.door_open,
            "identity": self.identity is not None,
            "slots": {n: {"fob": m.fob_in(n), "rom": rom(n), "open": m.is_unlocked(n)}
                      for n in sorted(m.slots)},
        }

    @staticmethod
    def _physical(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except PhysicalError as exc:
            raise SimulationError(str(exc)) from None

    def close(self) -> None:
        closers: list[Callable[[], None]] = [self.reader.close, self.locks.close, self.gpio.close,
                                             self.board.stop, self.pins.close]
        if self.identity is not None:
            closers.append(self.identity.close)
        for closer in closers:
            with contextlib.suppress(Exception):
                closer()


def stocked_slots(runtime: Runtime) -> tuple[list[int], dict[int, str]]:
    """Every slot of this cabinet, and the fob the records say hangs in each occupied one."""
    with Session(runtime.engine) as s:
        cabinet = records.cabinet_row(s, code=runtime.settings.cabinet_id)
        slots = sorted(s.scalars(select(Slot.number).where(Slot.cabinet_id == cabinet.id)))
        present = records.expected_presence(s, cabinet_id=cabinet.id)
        fob_of = {n: f for n, f in s.execute(select(Key.key_number, Key.fob_tag))}
    fobs = {n: fob_of.get(number) or number for n, number in present.items()}
    return slots or list(range(1, CHANNELS + 1)), fobs


def build_simulated(runtime: Runtime, *, pop_open: bool = True, persist: bool = True,
                    door_swing_s: float = 0.0, baud: int = 19200) -> SimulatedHardware:
    """The whole virtual cabinet. With ``persist`` its physical state lives in
    ``DATA_DIR/sim-cabinet.json`` and survives a restart of the daemon (issue 13).

    ``door_swing_s`` is ``CabinetModel.door_swing_s``: the daemon, whose ``/sim`` people
    may act as fast as a script can, passes :data:`DOOR_SWING_S`; the test rigs step
    people instantly and check the latch at once, so they keep 0. ``baud`` is the simulated
    Kerong bus's speed, the boards' and the driver's alike (:func:`sim_baud`)."""
    slots, fobs = stocked_slots(runtime)
    model = CabinetModel(slots, pop_open=pop_open, door_swing_s=door_swing_s)
    model.load(fobs)
    if persist:
        state_file = runtime.settings.data_dir / SIM_STATE_FILE
        if model.persist_to(state_file):
            log.info("simulated cabinet: physical state restored from %s", state_file)
    slot_map = kerong_slot_map(slots)
    boards = max(b for b, _ in slot_map.values()) + 1
    sim = KerongBoardSim(model, boards=boards, baudrate=baud,
                         slot_map={loc: n for n, loc in slot_map.items()}, answers_unlock=False)
    server = KerongBoardServer(sim).start()
    locks = KerongLockBank(server.url, slot_map, max_pulse_ms=500, baudrate=baud)
    _commission(locks)
    pins = MockFactory()
    gpio = GpioCabinet(model, pins, door_pin=DOOR_PIN)
    door = DoorSensor(DOOR_PIN, pin_factory=pins)
    irq = pins.pin(IRQ_PIN)
    chip = Mfrc522ChipSim(model, irq_pin=irq, log_length=SIM_READER_LOG_LENGTH)
    reader = Mfrc522Reader(chip, Mfrc522Config(reader_id="sim-mfrc522"), irq_pin=IRQ_PIN,
                           pin_factory=pins)
    identity, i2c = None, None
    if runtime.settings.hardware.identity.enabled:
        identity, i2c = simulated_identity(model, runtime.settings.hardware.identity)
    return SimulatedHardware(model, server, locks, reader, chip, door, gpio, pins,
                             identity=identity, i2c=i2c)


def simulated_identity(
    model: CabinetModel, cfg: IdentitySettings
) -> tuple[SlotIdentityReader, I2cBusSim]:
    """Receptors on simulated DS2482-800 bridges, each line showing the fob the model says
    hangs in that slot (its 1-Wire ROM: ``CabinetModel.fob_rom``)."""
    receptors = identity_receptors(cfg, sorted(model.slots))

    def fobs_in(slot: int) -> tuple[Any, ...]:
        rom = model.fob_rom(slot)
        return () if rom is None else (rom,)

    bus = bus_for_receptors(receptors, fobs_in)
    reader = SlotIdentityReader(bus, receptors, busy_timeout_s=cfg.busy_timeout_ms / 1000,
                                crc_retries=cfg.crc_retries)
    reader.start()
    return reader, bus


def identity_receptors(cfg: IdentitySettings, slots: list[int]) -> dict[int, Receptor]:
    """The configured receptor map, or the default wiring (docs/hardware.md) for ``slots``."""
    if cfg.slots:
        mapped: dict[int, Receptor] = {}
        for slot, where in cfg.slots.items():
            if len(where) == 3:
                assert cfg.mux_address is not None  # checked by IdentitySettings
                mapped[slot] = Receptor(where[1], where[2], (cfg.mux_address, where[0]))
            else:
                mapped[slot] = Receptor(where[0], where[1])
        return mapped
    mux = cfg.mux_address if cfg.mux_address is not None else (
        MUX_ADDRESS if len(slots) > 64 else None)
    return default_receptors(slots, mux_address=mux)


def _commission(locks: KerongLockBank) -> None:
    """Board scan with 0x32 variant detection and coil time read-back; a failure is logged
    (the cabinet raises its bus alarm at its first scan), never a refusal to start."""
    try:
        report = locks.commission()
    except DriverError as exc:
        log.error("Kerong commissioning failed: %s", exc)
        return
    if report.missing:
        log.error("Kerong boards not answering at start: %s", list(report.missing))


def reader_fault_logger(audit: AuditLog, reader_id: str) -> Callable[[str | None], None]:
    """Reader outages and recoveries as audit events (safe from the reader thread: appends
    are serialised by the log)."""

    def record(message: str | None) -> None:
        if message is None:
            audit.append(NewEvent(type="reader.restored", payload={"reader": reader_id}))
        else:
            audit.append(NewEvent(type="reader.fault", rules=["K3"],
                                  payload={"reader": reader_id, "error": message}))

    return record


class ReaderPump:
    """Runs a blocking reader in its own thread and hands each read to the asyncio loop."""

    def __init__(self, reader: CardReader, on_card: Callable[[str], Coroutine[Any, Any, Any]],
                 loop: asyncio.AbstractEventLoop,
                 on_fault: Callable[[str | None], None] | None = None) -> None:
        """``on_fault(message)`` is called (from the reader thread) when the reader fails, and
        ``on_fault(None)`` when it reads again: once per outage, not once per poll."""
        self.reader, self.on_card, self.loop = reader, on_card, loop
        self.on_fault = on_fault
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reader", daemon=True)

    def start(self) -> ReaderPump:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                read = self.reader.wait_for_card(0.5)
            except ReaderError as exc:
                if self._stop.is_set():
                    return
                if not self._failing:
                    self._failing = True
                    log.warning("reader error: %s", exc)
                    if self.on_fault is not None:
                        self.on_fault(str(exc))
                self._stop.wait(1.0)
                self._reinitialise()
                continue
            if self._failing:
                self._failing = False
                log.warning("reader answering again")
                if self.on_fault is not None:
                    self.on_fault(None)
            if read is not None:
                asyncio.run_coroutine_threadsafe(self.on_card(read.uid_hex), self.loop)

    def _reinitialise(self) -> None:
        """A reader that lost power lost its configuration too (an MFRC522 forgets every
        register): set it up again before the next read, where the driver can."""
        reset = getattr(self.reader, "reset", None)
        if reset is None:
            return
        with contextlib.suppress(ReaderError):  # still unplugged: again after the next wait
            reset()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


# ------------------------------------------------------------------------ real hardware
@dataclass
class RealIndicators:
    """Slot LEDs and buzzer behind the cabinet's ``Indicators`` interface."""

    leds: Any = None
    buzzer: Any = None

    def slot_light(self, slot: int, on: bool) -> None:
        if self.leds is not None:
            self.leds.set(slot, on)

    def beep(self, pattern: str) -> None:
        if self.buzzer is not None:
            self.buzzer.beep("deny" if pattern == "alarm" else pattern)


@dataclass
class RealHardware:
    """Drivers opened from ``[hardware]``: what ``kiosk run`` drives when simulate = false."""

    locks: LockBank
    reader: CardReader | None
    door_sensor: DoorSensor | None
    indicators: RealIndicators
    identity: SlotIdentityReader | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def bank(self) -> LockBank:
        """The locks, with fob identity per slot where ``[hardware.identity]`` is enabled
        (``build_real`` wraps them already)."""
        return self.locks

    def close(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer()


def build_real(settings: Settings) -> RealHardware:
    """Open every configured driver. The pin factory (lgpio, Pi only) is made only when some
    part is wired to GPIO, so a cabinet of serial lock boards and a USB reader runs anywhere."""
    hw = settings.hardware
    uses_gpio = (isinstance(hw.locks, GpioLocks) or hw.door.reed_pin is not None
                 or hw.indicators.buzzer_pin is not None or bool(hw.indicators.led_pins)
                 or (hw.reader is not None and hw.reader.driver == "mfrc522"))
    factory = make_pin_factory("real") if uses_gpio else None
    closers: list[Callable[[], None]] = []
    locks = _open_locks(hw.locks, factory)
    closers.append(locks.close)
    identity: SlotIdentityReader | None = None
    if hw.identity.enabled:
        identity = SlotIdentityReader(
            open_smbus(hw.identity.i2c_bus),
            identity_receptors(hw.identity, list(locks.slots)),
            busy_timeout_s=hw.identity.busy_timeout_ms / 1000, crc_retries=hw.identity.crc_retries,
        )
        identity.start()
        closers.append(identity.close)
        locks = IdentifiedLockBank(locks, identity)
    reader: CardReader | None = None
    if hw.reader is not None and hw.reader.driver == "nfcpy":
        reader = NfcpyReader(NfcpyConfig(path=hw.reader.path, reader_id="nfc"))
    elif hw.reader is not None:
        reader = Mfrc522Reader(
            open_spidev(hw.reader.spi_bus, hw.reader.spi_device), Mfrc522Config(),
            irq_pin=hw.reader.irq_pin, rst_pin=hw.reader.rst_pin, pin_factory=factory,
        )
    if reader is not None:
        closers.append(reader.close)
    door = None
    if hw.door.reed_pin is not None:
        door = DoorSensor(hw.door.reed_pin, pin_factory=factory,
                          closed_when_active=hw.door.closed_when_active)
        closers.append(door.close)
    indicators = RealIndicators(
        SlotLeds(hw.indicators.led_pins, pin_factory=factory) if hw.indicators.led_pins else None,
        CabinetBuzzer(hw.indicators.buzzer_pin, pin_factory=factory)
        if hw.indicators.buzzer_pin is not None else None,
    )
    return RealHardware(locks, reader, door, indicators, identity, closers)


def _duty(cfg: DutySettings | None) -> DutyLimit | None:
    return None if cfg is None else DutyLimit(cfg.pulses_per_minute, cfg.cooldown_ms)


def _wiring(cfg: WiringSettings) -> InputWiring:
    if cfg.pull_up == "none":
        return InputWiring(pull_up=None, active_state=cfg.active_state)
    return InputWiring(pull_up=cfg.pull_up)


def _open_locks(cfg: KerongLocks | ModbusLocks | GpioLocks | None, factory: Any) -> LockBank:
    if isinstance(cfg, KerongLocks):
        bank = KerongLockBank(
            cfg.url, cfg.slot_map(), max_pulse_ms=cfg.max_pulse_ms, pulse_ms=cfg.pulse_ms,
            baudrate=cfg.baud, bit_set_means_locked=cfg.bit_set_means_locked,
            board_answers_unlock=cfg.board_answers_unlock, reply_timeout_s=cfg.reply_timeout_s,
            retries=cfg.retries, turnaround_s=cfg.turnaround_s,
            quarantine_after=cfg.quarantine_after, reprobe_s=cfg.reprobe_s,
            reopen_backoff_s=cfg.reopen_backoff_s,
            reopen_backoff_max_s=max(cfg.reopen_backoff_max_s, cfg.reopen_backoff_s),
            duty=_duty(cfg.duty),
        )
        _commission(bank)
        if cfg.status_variant != "detect":
            bank.status_variant = cfg.status_variant
        return bank
    if isinstance(cfg, ModbusLocks):
        # imported here: pymodbus costs 2 MB that a Kerong or GPIO cabinet never needs
        from drivers.locks.modbus_relay import ModbusRelayBank, ModbusRelayConfig

        return ModbusRelayBank.from_url(
            cfg.url,
            ModbusRelayConfig(
                unit=cfg.unit, channels=cfg.channels, slots=cfg.slots or None,
                coil_base=cfg.coil_base, coil_on_unlocks=cfg.coil_on_unlocks,
                key_input_base=cfg.key_input_base, key_present_when=cfg.key_present_when,
                pulse_mode=cfg.pulse_mode, flash_register_base=cfg.flash_register_base,
                flash_command=cfg.flash_command, flash_unit_ms=cfg.flash_unit_ms,
                max_pulse_ms=cfg.max_pulse_ms, off_margin_ms=cfg.off_margin_ms,
                settle_ms=cfg.settle_ms, verify_readback=cfg.verify_readback,
                retries=cfg.retries, backoff_ms=cfg.backoff_ms,
            ),
            baud=cfg.baud, parity=cfg.parity, timeout_s=cfg.timeout_s, duty=_duty(cfg.duty),
        )
    if isinstance(cfg, GpioLocks):
        return GpioLockBank(
            GpioBankConfig(
                slots={n: GpioSlotPins(p.lock, p.key, p.feedback) for n, p in cfg.slots.items()},
                lock_active_high=cfg.lock_active_high, max_pulse_ms=cfg.max_pulse_ms,
                key_wiring=_wiring(cfg.key_wiring), feedback_wiring=_wiring(cfg.feedback_wiring),
                feedback_active_is_locked=cfg.feedback_active_is_locked,
                feedback_settle_ms=cfg.feedback_settle_ms,
            ),
            pin_factory=factory, duty=_duty(cfg.duty),
        )
    raise ConfigError("simulate = false needs a [hardware.locks] section")
