"""A Modbus relay board played by pymodbus's own server, backed by the CabinetModel.

The simulated board answers real Modbus frames on a TCP socket (Modbus TCP, or RTU frames
over TCP), so ``ModbusRelayBank`` runs against it unchanged through a real pymodbus client:

* coil written on (FC05/FC15)  -> the slot's latch is released until the coil is written off;
* flash register written (FC06/FC16, ``drivers.locks.modbus_relay.decode_flash``) -> the coil
  goes on, the latch is released for that time, then the board drops the coil itself;
* coils read (FC01) report the relays; discrete inputs (FC02) report key presence from the
  model where the config has key inputs (``key_input_base``), else ILLEGAL ADDRESS;
* while the model's power is cut the board says nothing (the client times out), and its
  relays drop; stopping the server is the board dying: its relays drop too.

It shares ``ModbusRelayConfig`` with the driver, so both sides agree on the register map.
Built on pymodbus 3.16's ``SimDevice`` with an ``action`` hook, which sees every request
before the datastore answers it (``ModbusServerContext`` is deprecated there).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import urlsplit

import click
from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from drivers.locks.modbus_relay import ModbusRelayConfig, decode_flash
from simulators.cabinet import CabinetModel

HOLD_S = 24 * 3600.0
"""How long the model keeps a latch free per coil-on; writing the coil off relocks it."""

READ_COILS, READ_INPUTS, READ_HOLDING = 1, 2, 3
WRITE_COIL, WRITE_REGISTER, WRITE_COILS, WRITE_REGISTERS = 5, 6, 15, 16


class RelayBoardSim:
    """The board's state (its relays) and the action hook pymodbus calls on every request."""

    def __init__(
        self,
        model: CabinetModel,
        config: ModbusRelayConfig | None = None,
        *,
        refuse_functions: frozenset[int] = frozenset(),
    ) -> None:
        self.model = model
        self.refuse_functions = refuse_functions
        """Function codes answered ILLEGAL FUNCTION, like boards that lack FC15 or FC06."""
        self.config = config or ModbusRelayConfig()
        for slot in self.config.slot_map:
            if slot not in model.slots:
                raise ValueError(f"the relay board drives slot {slot}, the model has none")
        self._slot_of = {ch: slot for slot, ch in self.config.slot_map.items()}
        self._state = threading.Lock()
        self._coils = [not self.config.coil_on_unlocks] * self.config.channels
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self.requests = 0
        """Requests answered or ignored so far (diagnostics)."""
        self.coil_log: list[tuple[int, float, float | None]] = []
        """(channel, on at, off at or None while on): what a meter on each coil sees."""
        self._on_since: dict[int, float] = {}
        self.lose: list[tuple[int | None, str]] = []
        """Frames to lose, oldest first: (function code or None for any, "request" or
        "reply"). A lost request never reaches the board; a lost reply is obeyed, then
        the answer vanishes (noise on the line in either direction)."""
        self.hang_after_on = False
        """The board's controller hangs right after the next coil-on it obeys: the relay
        stays on and nothing is answered any more (until ``hung`` is cleared)."""
        self.hung = False
        self.reattached = 0
        """How often the board was attached to its serial device (``serve_serial``)."""
        self._last_bits = 1
        model.subscribe(self._on_model_change)

    # -- what tests and the CLI look at -----------------------------------------------------
    def on_times_ms(self, channel: int) -> list[float]:
        """How long each energisation of ``channel`` lasted (a coil still on counts to now)."""
        now = time.monotonic()
        with self._state:
            return [((off if off is not None else now) - on) * 1000
                    for ch, on, off in self.coil_log if ch == channel]

    @property
    def coils(self) -> list[bool]:
        with self._state:
            return list(self._coils)

    def device(self) -> SimDevice:
        """The pymodbus ``SimDevice`` for this board (separate coil/input/register blocks)."""
        cfg = self.config
        n = cfg.channels

        def bits(address: int) -> list[SimData]:
            return [SimData(address, values=[False] * n, datatype=DataType.BITS)]

        inputs = bits(cfg.key_input_base if cfg.key_input_base is not None else 0)
        holding = [SimData(cfg.flash_register_base, count=n, datatype=DataType.REGISTERS)]
        input_regs = [SimData(0, datatype=DataType.REGISTERS)]
        return SimDevice(
            id=cfg.unit,
            simdata=(bits(cfg.coil_base), inputs, holding, input_regs),
            action=self._action,
        )

    def drop_all(self) -> None:
        """The board loses power or dies: every relay falls back to off."""
        with self._state:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
        for channel in range(self.config.channels):
            self._set_coil(channel, False)

    # -- the pymodbus hook ------------------------------------------------------------------
    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.requests += 1
        if not self.model.powered or self.hung:
            # Raised through the server's request handler: with ignore_missing_devices it
            # sends nothing, which is exactly what an unpowered RS-485 board does.
            raise NoSuchIdException("board unpowered")
        lost = self._take_loss(function_code)
        if lost == "request":
            raise NoSuchIdException("request lost on the line")
        if function_code in self.refuse_functions:
            return ExcCodes.ILLEGAL_FUNCTION
        if not self._in_range(function_code, address, self._bit_count(function_code, count, values)):
            return ExcCodes.ILLEGAL_ADDRESS  # a coil or register this board does not have
        result = self._obey(function_code, start_address, address, registers, values)
        if lost == "reply":
            raise NoSuchIdException("reply lost on the line")
        if self.hang_after_on and function_code in (WRITE_COIL, WRITE_COILS, WRITE_REGISTER,
                                                    WRITE_REGISTERS) and any(self.coils):
            self.hung = True  # it answers this one, then never again
            self.hang_after_on = False
        return result

    def trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """Server hook: note how many *bits* a request names (the action hook sees bit
        requests in whole registers, so it could not refuse coil N+1 on its own)."""
        if not sending:
            bits = getattr(pdu, "bits", None)
            self._last_bits = len(bits) if bits and pdu.function_code == WRITE_COILS else (
                getattr(pdu, "count", 1) or 1
            )
        return pdu

    def _bit_count(self, function_code: int, count: int, values: object) -> int:
        if function_code in (READ_COILS, READ_INPUTS, WRITE_COILS):
            return self._last_bits
        if function_code == WRITE_COIL:
            return 1
        return len(values) if isinstance(values, list) and values else count

    def _take_loss(self, function_code: int) -> str | None:
        if self.lose and self.lose[0][0] in (None, function_code):
            return self.lose.pop(0)[1]
        return None

    def _in_range(self, function_code: int, address: int, count: int) -> bool:
        cfg = self.config
        count = max(1, count)
        if function_code in (READ_COILS, WRITE_COIL, WRITE_COILS):
            base = cfg.coil_base
        elif function_code in (WRITE_REGISTER, WRITE_REGISTERS):
            base = cfg.flash_register_base
        elif function_code == READ_INPUTS and cfg.key_input_base is not None:
            base = cfg.key_input_base
        else:
            return True
        return base <= address and address + count <= base + cfg.channels

    def _obey(
        self, function_code: int, start_address: int, address: int, registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        cfg = self.config
        if function_code in (WRITE_COIL, WRITE_COILS) and values is not None:
            for i, value in enumerate(values):
                channel = address - cfg.coil_base + i
                if 0 <= channel < cfg.channels:
                    self._cancel_flash(channel)
                    self._set_coil(channel, bool(value))
        elif function_code in (WRITE_REGISTER, WRITE_REGISTERS) and values is not None:
            loop = asyncio.get_running_loop()
            for i, value in enumerate(values):
                channel = address - cfg.flash_register_base + i
                ms = decode_flash(int(value), command=cfg.flash_command, unit_ms=cfg.flash_unit_ms)
                if ms is None or not 0 <= channel < cfg.channels:
                    return ExcCodes.ILLEGAL_VALUE
                self._flash(loop, channel, ms)
        elif function_code == READ_INPUTS:
            if cfg.key_input_base is None:
                return ExcCodes.ILLEGAL_ADDRESS
            self._fill_bits(registers, start_address, cfg.key_input_base, self._key_levels())
        if function_code in (READ_COILS, WRITE_COIL, WRITE_COILS):
            self._fill_bits(registers, start_address, cfg.coil_base, self.coils)
        return None

    @staticmethod
    def _fill_bits(
        registers: list[int], start_register: int, base: int, levels: list[bool]
    ) -> None:
        """Write ``levels`` at bit address ``base`` into pymodbus's packed bit block."""
        # The block is 16 bits per register from bit address start_register*16, plus one
        # trailing guard register that must stay as it is.
        bits = SimUtils.registersToBits(registers[:-1])
        first = base - start_register * 16
        bits[first : first + len(levels)] = levels
        registers[:-1] = SimUtils.bitsToRegisters(bits)

    def _key_levels(self) -> list[bool]:
        cfg = self.config
        levels = [not cfg.key_present_when] * cfg.channels
        for channel, slot in self._slot_of.items():
            present = self.model.key_present(slot)
            levels[channel] = present == cfg.key_present_when
        return levels

    # -- relays -> model --------------------------------------------------------------------
    def _set_coil(self, channel: int, on: bool, hold_s: float = HOLD_S) -> None:
        now = time.monotonic()
        with self._state:
            self._coils[channel] = on
            if on and channel not in self._on_since:
                self._on_since[channel] = now
                self.coil_log.append((channel, now, None))
            elif not on and channel in self._on_since:
                started = self._on_since.pop(channel)
                for i in range(len(self.coil_log) - 1, -1, -1):
                    if self.coil_log[i][0] == channel and self.coil_log[i][2] is None:
                        self.coil_log[i] = (channel, started, now)
                        break
        slot = self._slot_of.get(channel)
        if slot is None:
            return
        if on == self.config.coil_on_unlocks:
            self.model.unlock(slot, hold_s)
        else:
            self.model.relock(slot)

    def _flash(self, loop: asyncio.AbstractEventLoop, channel: int, ms: int) -> None:
        self._cancel_flash(channel)
        self._set_coil(channel, True, hold_s=ms / 1000)
        with self._state:
            self._timers[channel] = loop.call_later(ms / 1000, self._flash_over, channel)

    def _flash_over(self, channel: int) -> None:
        with self._state:
            self._timers.pop(channel, None)
        self._set_coil(channel, False)

    def _cancel_flash(self, channel: int) -> None:
        with self._state:
            timer = self._timers.pop(channel, None)
        if timer is not None:
            timer.cancel()

    def _on_model_change(self, what: str, slot: int | None) -> None:
        if what == "power" and not self.model.powered:
            with self._state:
                self._coils = [False] * self.config.channels
                timers, self._timers = list(self._timers.values()), {}
            for timer in timers:
                timer.cancel()


# -- serving ------------------------------------------------------------------------------
class RunningBoard(NamedTuple):
    """A board served on a background thread: where it listens and how to stop it."""

    host: str
    port: int
    stop: Callable[..., None]
    """``stop(drop_relays=True)``: ``False`` when only the line goes (a gateway or adapter
    pulled), not the board: its relays then hold what they held."""
    device: str | None = None
    """The serial device the board is attached to (``serve_serial``), else ``None``."""

    def url(self, scheme: str = "tcp") -> str:
        """The driver URL for this board (``tcp`` or ``rtu+tcp``; a serial board: the
        driver opens the *other* end of the line, so this is only its own device)."""
        if self.device is not None:
            return self.device
        return f"{scheme}://{self.host}:{self.port}"


def parse_listen(listen: str) -> tuple[FramerType, str, int]:
    """``tcp://host:port`` (Modbus TCP) or ``rtu+tcp://host:port`` (RTU frames over TCP)."""
    parts = urlsplit(listen)
    framers = {"tcp": FramerType.SOCKET, "rtu+tcp": FramerType.RTU}
    if parts.scheme not in framers or parts.hostname is None or parts.port is None:
        raise ValueError(f"{listen!r}: expected tcp://host:port or rtu+tcp://host:port")
    return framers[parts.scheme], parts.hostname, parts.port


def run_in_thread(
    model: CabinetModel,
    config: ModbusRelayConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    framer: FramerType = FramerType.SOCKET,
    board: RelayBoardSim | None = None,
) -> RunningBoard:
    """Serve a relay board on ``host:port`` (0 = a free port) from a daemon thread.

    Returns once the socket is listening. ``stop()`` closes the server and every client
    connection, drops the board's relays (a dead board holds nothing; ``drop_relays=False``:
    only the line went) and joins the thread.
    """
    sim = board or RelayBoardSim(model, config)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, object] = {}

    async def start() -> None:
        server = ModbusTcpServer(
            sim.device(), address=(host, port), framer=framer, ignore_missing_devices=True,
            trace_pdu=sim.trace_pdu,
        )
        await server.serve_forever(background=True)
        box["server"] = server
        box["port"] = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:
            box["error"] = exc
            return
        finally:
            ready.set()
        loop.run_forever()

    thread = threading.Thread(target=main, name=f"modbus-board-{host}:{port}", daemon=True)
    thread.start()
    ready.wait(10)
    if "error" in box or "port" not in box:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        raise RuntimeError(f"relay board simulator did not start: {box.get('error')}")
    stopped = threading.Event()

    def stop(drop_relays: bool = True) -> None:
        if stopped.is_set():
            return
        stopped.set()
        server = box["server"]
        assert isinstance(server, ModbusTcpServer)
        asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        if drop_relays:
            sim.drop_all()

    bound = box["port"]
    assert isinstance(bound, int)
    return RunningBoard(host, bound, stop)


REATTACH_S = 0.05
"""How often a board whose serial device vanished looks for it again."""


def serve_serial(
    model: CabinetModel,
    config: ModbusRelayConfig | None = None,
    *,
    device: str,
    baudrate: int = 9600,
    parity: str = "N",
    board: RelayBoardSim | None = None,
) -> RunningBoard:
    """Attach a relay board to a serial device (a USB-RS485 adapter, or one end of a
    ``socat`` pty pair) and answer RTU frames on it from a daemon thread.

    Real bytes on a real tty, so the driver's serial client meets what it meets in the
    field. A device that disappears (an adapter pulled, ``socat`` killed) is looked for
    every ``REATTACH_S`` and re-attached when it is back, as a board stays wired to its bus
    while the Pi's adapter comes and goes. ``stop()`` detaches and drops the relays.
    """
    from pymodbus.server import ModbusSerialServer

    sim = board or RelayBoardSim(model, config)
    if not os.path.exists(device):
        raise ValueError(f"serial device {device!r} does not exist")
    loop = asyncio.new_event_loop()
    stopping = asyncio.Event()
    lost = threading.Event()
    attached = threading.Event()

    def connected(up: bool) -> None:
        if not up:
            lost.set()

    async def attach_once() -> ModbusSerialServer | None:
        server = ModbusSerialServer(
            sim.device(), port=device, framer=FramerType.RTU, baudrate=baudrate,
            parity=parity, ignore_missing_devices=True, trace_pdu=sim.trace_pdu,
            trace_connect=connected, timeout=0.1, reconnect_delay=0,
        )
        try:
            await server.serve_forever(background=True)
        except (RuntimeError, OSError):
            return None
        return server

    async def supervise() -> None:
        server: ModbusSerialServer | None = None
        while not stopping.is_set():
            if server is not None and lost.is_set():
                with contextlib.suppress(Exception):
                    await server.shutdown()
                server = None
            if server is None and os.path.exists(device):
                lost.clear()
                server = await attach_once()
                if server is not None:
                    sim.reattached += 1
                    attached.set()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), REATTACH_S)
        if server is not None:
            with contextlib.suppress(Exception):
                await server.shutdown()

    thread = threading.Thread(target=loop.run_until_complete, args=(supervise(),),
                              name=f"modbus-board-{device}", daemon=True)
    thread.start()
    if not attached.wait(10):
        loop.call_soon_threadsafe(stopping.set)
        thread.join(5)
        raise RuntimeError(f"relay board simulator could not attach to {device}")
    done = threading.Event()

    def stop(drop_relays: bool = True) -> None:
        if done.is_set():
            return
        done.set()
        loop.call_soon_threadsafe(stopping.set)
        thread.join(5)
        loop.close()
        if drop_relays:
            sim.drop_all()

    return RunningBoard("", 0, stop, device=device)


# -- command line -------------------------------------------------------------------------
@click.command("modbus")
@click.option(
    "--listen",
    default="tcp://127.0.0.1:5020",
    show_default=True,
    help="tcp://host:port for Modbus TCP, rtu+tcp://host:port for RTU frames over TCP, or "
         "a serial device path (a USB-RS485 adapter, one end of a socat pty pair) for RTU.",
)
@click.option("--channels", default=16, show_default=True, type=click.IntRange(1, 32))
@click.option("--unit", default=1, show_default=True, type=click.IntRange(1, 247))
@click.option("--first-slot", default=1, show_default=True, type=click.IntRange(1, 9999))
@click.option(
    "--key-inputs/--no-key-inputs",
    default=True,
    show_default=True,
    help="Report key presence on discrete inputs from address 0.",
)
@click.option("--stock/--empty", default=True, show_default=True, help="Start with a fob per slot.")
@click.option("--run-for", type=float, default=None, hidden=True)
def modbus_command(
    listen: str,
    channels: int,
    unit: int,
    first_slot: int,
    key_inputs: bool,
    stock: bool,
    run_for: float | None,
) -> None:
    """Play a Modbus RTU/TCP relay board on a socket until interrupted."""
    serial_device = listen.startswith("/")
    if not serial_device:
        try:
            framer, host, port = parse_listen(listen)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--listen") from None
    slots = {first_slot + i: i for i in range(channels)}
    model = CabinetModel(slot_numbers=list(slots))
    if stock:
        model.load({slot: f"FOB-{slot:03d}" for slot in slots})
    config = ModbusRelayConfig(
        unit=unit, channels=channels, slots=slots, key_input_base=0 if key_inputs else None
    )
    if serial_device:
        try:
            running = serve_serial(model, config, device=listen)
        except (ValueError, RuntimeError) as exc:
            raise click.BadParameter(str(exc), param_hint="--listen") from None
        where = f"RTU on {listen}"
    else:
        running = run_in_thread(model, config, host=host, port=port, framer=framer)
        where = running.url("tcp" if framer == FramerType.SOCKET else "rtu+tcp")
    click.echo(
        f"relay board unit {unit}: {channels} channels, slots {first_slot}-"
        f"{first_slot + channels - 1}, listening on {where}"
    )
    try:
        deadline = None if run_for is None else time.monotonic() + run_for
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.1 if deadline is not None else 1.0)
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(Exception):
            running.stop()
    click.echo("relay board stopped")
