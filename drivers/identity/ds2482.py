"""Slot identity receptors on DS2482-800 I2C-to-1-Wire bridges: which fob hangs in which slot.

Layers, as for every driver here:

* transport: anything with smbus2's ``write_byte`` / ``write_byte_data`` / ``read_byte``
  (:class:`SmbusLike`): :func:`open_smbus` opens ``/dev/i2c-N`` through smbus2 on the Pi,
  tests pass the register-level simulator (``simulators.ds2482``);
* codec: :mod:`drivers.identity.onewire` (command bytes, status bits, CRC-8, ROM parsing);
* device: :class:`SlotIdentityReader`, which maps cabinet slots to (bridge, channel) and
  reads one fob per slot with Read ROM.

Why every step is checked: a receptor is a pair of contacts a person pushes a fob into, so
the line sees bounce, shorts and half-seated fobs. A short (status SD) or a ROM that fails
its CRC is an :class:`~drivers.errors.IdentityError`, never "empty slot": the cabinet must
not record a key as gone because a contact was dirty. A bridge that stays busy longer than
``busy_timeout_s`` is an error too, so one stuck line never stalls the sweep of the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from drivers.errors import IdentityError
from drivers.identity.onewire import (
    CHANNELS_PER_CHIP,
    CMD_1WIRE_READ_BYTE,
    CMD_1WIRE_RESET,
    CMD_1WIRE_WRITE_BYTE,
    CMD_CHANNEL_SELECT,
    CMD_DEVICE_RESET,
    CMD_SET_READ_POINTER,
    CMD_WRITE_CONFIG,
    FIRST_ADDRESS,
    PTR_READ_DATA,
    ROM_READ,
    ROM_SIZE,
    STATUS_1WB,
    STATUS_PPD,
    STATUS_RST,
    STATUS_SD,
    TCA9548A_ADDRESSES,
    FobId,
    channel_code,
    channel_from_readback,
    channel_readback,
    check_address,
    config_byte,
    describe_status,
    parse_rom,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_BUSY_TIMEOUT_S = 0.02
"""A 1-Wire reset takes about 1.2 ms and a byte about 0.7 ms at standard speed; 20 ms is
far beyond both and still short enough that a dead line costs a sweep little."""
MAX_BUSY_POLLS = 200
"""A second bound on 1WB polling, independent of the clock (a clock that does not move in
tests, or an I2C bus so fast that 20 ms is thousands of reads)."""


MIN_BUSY_POLLS = 10
"""Polls made even when the deadline has passed: a process descheduled for 20 ms on a busy
Pi must not call a healthy bridge stuck after one look."""


class SmbusLike(Protocol):
    """The three SMBus transactions the DS2482 needs (``smbus2.SMBus`` has them all)."""

    def write_byte(self, i2c_addr: int, value: int, /) -> None: ...
    def write_byte_data(self, i2c_addr: int, register: int, value: int, /) -> None: ...
    def read_byte(self, i2c_addr: int, /) -> int: ...
    def close(self) -> None: ...


def open_smbus(bus: int) -> SmbusLike:
    """Open ``/dev/i2c-<bus>`` with smbus2 (imported here: only a Pi with receptors needs it)."""
    try:
        from smbus2 import SMBus
    except ImportError as exc:  # pragma: no cover - smbus2 is a declared dependency
        raise IdentityError("smbus2 is not installed") from exc
    try:
        smbus: SmbusLike = SMBus(bus)
    except (OSError, FileNotFoundError) as exc:
        raise IdentityError(
            f"cannot open I2C bus {bus} (/dev/i2c-{bus}): {exc}; enable I2C with raspi-config"
        ) from exc
    return smbus


@dataclass(frozen=True, slots=True)
class Receptor:
    """Where one slot's fob contacts are wired: bridge address, bridge channel 0–7, and the
    TCA9548A (address, channel 0–7) in front of the bridge, if any."""

    address: int
    channel: int
    mux: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        check_address(self.address)
        if not 0 <= self.channel < CHANNELS_PER_CHIP:
            raise ValueError(f"DS2482-800 channel must be 0..7, got {self.channel}")
        if self.mux is not None:
            mux_address, mux_channel = self.mux
            if mux_address not in TCA9548A_ADDRESSES:
                raise ValueError(f"TCA9548A address must be 0x70..0x77, got 0x{mux_address:02X}")
            if not 0 <= mux_channel < 8:
                raise ValueError(f"TCA9548A channel must be 0..7, got {mux_channel}")

    @property
    def chip(self) -> tuple[tuple[int, int] | None, int]:
        """What names one bridge: its mux position and its address."""
        return (self.mux, self.address)

    def describe(self) -> str:
        where = f"DS2482 0x{self.address:02X} channel {self.channel}"
        if self.mux is not None:
            where += f" behind TCA9548A 0x{self.mux[0]:02X} channel {self.mux[1]}"
        return where


def default_receptors(
    slots: Iterable[int], *, mux_address: int | None = None
) -> dict[int, Receptor]:
    """Slot n on bridge 0x18 + (n-1)//8 (mod 8), channel (n-1)%8; every 64 slots one more
    TCA9548A channel (which needs ``mux_address``). The wiring table in docs/hardware.md."""
    result: dict[int, Receptor] = {}
    for n in slots:
        index = n - 1
        chip, channel = divmod(index, CHANNELS_PER_CHIP)
        mux_channel, chip = divmod(chip, 8)
        if mux_channel and mux_address is None:
            raise ValueError(f"slot {n} needs a TCA9548A (more than 64 receptors): set mux_address")
        mux = (mux_address, mux_channel) if mux_address is not None else None
        result[n] = Receptor(FIRST_ADDRESS + chip, channel, mux)
    return result


@dataclass
class IdentitySweep:
    """One pass over every receptor: the fob seen per slot (``None``: empty) and the slots
    whose receptor could not be read (their identity is unknown, not absent)."""

    fobs: dict[int, FobId | None] = field(default_factory=dict)
    faults: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.faults


class SlotIdentityReader:
    """Reads the 1-Wire fob in each slot through DS2482-800 bridges on one I2C bus.

    Thread-safe (one transaction sequence at a time). ``clock``/``sleep`` are injectable
    so the busy-bit timeout is testable without waiting.
    """

    def __init__(
        self,
        bus: SmbusLike,
        receptors: Mapping[int, Receptor],
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        crc_retries: int = 1,
        active_pullup: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not receptors:
            raise ValueError("no identity receptors configured")
        if not 0.001 <= busy_timeout_s <= 1.0:
            raise ValueError(f"busy_timeout_s must be 0.001..1.0, got {busy_timeout_s}")
        if not 0 <= crc_retries <= 5:
            raise ValueError(f"crc_retries must be 0..5, got {crc_retries}")
        seen: dict[Receptor, int] = {}
        for slot, receptor in receptors.items():
            if slot < 1:
                raise ValueError(f"slot numbers start at 1, got {slot}")
            if receptor in seen:
                raise ValueError(
                    f"slots {seen[receptor]} and {slot} share {receptor.describe()}"
                )
            seen[receptor] = slot
        self._bus = bus
        self._receptors = dict(receptors)
        self._busy_timeout_s = busy_timeout_s
        self._crc_retries = crc_retries
        self._config = config_byte(apu=active_pullup)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._mux_selected: dict[int, int] = {}
        self._chip_channel: dict[tuple[tuple[int, int] | None, int], int] = {}
        self._ready: set[tuple[tuple[int, int] | None, int]] = set()
        self._closed = False

    @property
    def slots(self) -> tuple[int, ...]:
        return tuple(sorted(self._receptors))

    def receptor(self, slot: int) -> Receptor:
        try:
            return self._receptors[slot]
        except KeyError:
            raise IdentityError(f"slot {slot} has no identity receptor") from None

    # -- public API ------------------------------------------------------------------------------
    def start(self) -> None:
        """Reset and configure every bridge; raise naming the first one that does not answer."""
        with self._lock:
            for receptor in self._one_per_chip():
                self._init_chip(receptor)

    def read_slot(self, slot: int) -> FobId | None:
        """The fob in ``slot`` (``None``: the receptor is empty).

        Raises :class:`IdentityError` for a short, a bridge that does not answer or stays
        busy, a channel that does not switch, or a ROM that fails its CRC ``crc_retries + 1``
        times (a fob still being pushed in bounces; a second read usually settles it).
        """
        receptor = self.receptor(slot)
        with self._lock:
            if self._closed:
                raise IdentityError("identity reader is closed")
            try:
                return self._read(receptor)
            except IdentityError as exc:
                # The next read starts from a clean bridge, whatever state this one left.
                self._ready.discard(receptor.chip)
                self._chip_channel.pop(receptor.chip, None)
                raise IdentityError(f"slot {slot} ({receptor.describe()}): {exc}") from exc

    def sweep(self, slots: Iterable[int] | None = None) -> IdentitySweep:
        """Read every slot (or ``slots``); one bad receptor is a fault entry, not an abort."""
        result = IdentitySweep()
        for slot in sorted(self._receptors if slots is None else slots):
            try:
                result.fobs[slot] = self.read_slot(slot)
            except IdentityError as exc:
                result.faults[slot] = str(exc)
        return result

    def close(self) -> None:
        """Release the I2C bus. Idempotent; the bridges need no safe state (they drive no coil)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._bus.close()
            except OSError as exc:
                log.warning("closing the I2C bus: %s", exc)

    # -- the transaction sequence ----------------------------------------------------------------
    def _one_per_chip(self) -> list[Receptor]:
        chips: dict[tuple[tuple[int, int] | None, int], Receptor] = {}
        for receptor in self._receptors.values():
            chips.setdefault(receptor.chip, receptor)
        return list(chips.values())

    def _read(self, receptor: Receptor) -> FobId | None:
        if receptor.chip not in self._ready:
            self._init_chip(receptor)
        self._select_channel(receptor)
        last: IdentityError | None = None
        for _attempt in range(self._crc_retries + 1):
            if not self._reset_line(receptor):
                return None
            self._write_line_byte(receptor, ROM_READ)
            raw = bytes(self._read_line_byte(receptor) for _ in range(ROM_SIZE))
            try:
                return parse_rom(raw)
            except IdentityError as exc:
                last = exc
        assert last is not None
        raise last

    def _init_chip(self, receptor: Receptor) -> None:
        """Device Reset, check RST, write the configuration and read it back."""
        self._select_mux(receptor)
        address = receptor.address
        self._io(lambda: self._bus.write_byte(address, CMD_DEVICE_RESET), receptor, "device reset")
        status = self._io(lambda: self._bus.read_byte(address), receptor, "status after reset")
        if not status & STATUS_RST:
            raise IdentityError(
                f"DS2482 0x{address:02X} did not report a reset (status {describe_status(status)}):"
                " is something else at this address?"
            )
        self._io(lambda: self._bus.write_byte_data(address, CMD_WRITE_CONFIG, self._config),
                 receptor, "write configuration")
        readback = self._io(lambda: self._bus.read_byte(address), receptor, "configuration")
        if readback != self._config & 0x0F:
            raise IdentityError(
                f"DS2482 0x{address:02X} configuration reads 0x{readback:02X}, "
                f"wrote 0x{self._config:02X}"
            )
        self._chip_channel.pop(receptor.chip, None)
        self._ready.add(receptor.chip)

    def _select_mux(self, receptor: Receptor) -> None:
        if receptor.mux is None:
            return
        mux_address, mux_channel = receptor.mux
        if self._mux_selected.get(mux_address) == mux_channel:
            return
        mask = 1 << mux_channel
        self._io(lambda: self._bus.write_byte(mux_address, mask), receptor, "TCA9548A select")
        self._mux_selected[mux_address] = mux_channel

    def _select_channel(self, receptor: Receptor) -> None:
        """Channel Select, then the read-back check: a wrong value means the wrong line."""
        self._select_mux(receptor)
        if self._chip_channel.get(receptor.chip) == receptor.channel:
            return
        address, channel = receptor.address, receptor.channel
        # No 1WB wait first: every line command below is waited for before it returns, so
        # under the lock the bridge is idle here (and the read pointer may name another
        # register, where a poll would misread a bit as 1WB).
        code = channel_code(channel)
        self._io(lambda: self._bus.write_byte_data(address, CMD_CHANNEL_SELECT, code),
                 receptor, "channel select")
        got = self._io(lambda: self._bus.read_byte(address), receptor, "channel read-back")
        if got != channel_readback(channel):
            named = channel_from_readback(got)
            raise IdentityError(
                f"channel select read back 0x{got:02X}"
                + (f" (channel {named})" if named is not None else "")
                + f", expected 0x{channel_readback(channel):02X} for channel {channel}"
            )
        self._chip_channel[receptor.chip] = channel

    def _reset_line(self, receptor: Receptor) -> bool:
        """1-Wire reset; True if a fob answered with a presence pulse. A short raises."""
        address = receptor.address
        self._io(lambda: self._bus.write_byte(address, CMD_1WIRE_RESET), receptor, "1-Wire reset")
        status = self._wait_idle(receptor)
        if status & STATUS_SD:
            raise IdentityError("short on the 1-Wire line (status SD): check the receptor contacts")
        return bool(status & STATUS_PPD)

    def _write_line_byte(self, receptor: Receptor, value: int) -> None:
        address = receptor.address
        self._io(lambda: self._bus.write_byte_data(address, CMD_1WIRE_WRITE_BYTE, value),
                 receptor, "1-Wire write byte")
        self._wait_idle(receptor)

    def _read_line_byte(self, receptor: Receptor) -> int:
        address = receptor.address
        self._io(lambda: self._bus.write_byte(address, CMD_1WIRE_READ_BYTE), receptor,
                 "1-Wire read byte")
        self._wait_idle(receptor)
        self._io(lambda: self._bus.write_byte_data(address, CMD_SET_READ_POINTER, PTR_READ_DATA),
                 receptor, "point at read data")
        return int(self._io(lambda: self._bus.read_byte(address), receptor, "read data"))

    def _wait_idle(self, receptor: Receptor) -> int:
        """Poll the status register until 1WB clears; bounded by time and by count.

        Every 1-Wire command leaves the read pointer on the status register, so a plain
        read returns status here.
        """
        address = receptor.address
        deadline = self._clock() + self._busy_timeout_s
        status = STATUS_1WB
        for _poll in range(MAX_BUSY_POLLS):
            status = int(self._io(lambda: self._bus.read_byte(address), receptor, "status"))
            if not status & STATUS_1WB:
                return status
            if self._clock() >= deadline and _poll >= MIN_BUSY_POLLS:
                break
            self._sleep(0.0005)
        raise IdentityError(
            f"DS2482 0x{address:02X} still busy (1WB) after {self._busy_timeout_s * 1000:.0f} ms "
            f"(status {describe_status(status)})"
        )

    def _io(self, op: Callable[[], _T], receptor: Receptor, what: str) -> _T:
        """One I2C transaction; a NACK or bus error (OSError from smbus2) is IdentityError."""
        try:
            return op()
        except OSError as exc:
            self._mux_selected.clear()
            raise IdentityError(f"{receptor.describe()}: {what}: I2C error: {exc}") from exc
