"""A bus of Kerong KR-CU16 lock boards that answers real frames, backed by a CabinetModel.

The simulator sits at the lowest practical layer: it speaks the exact bytes of the boards
(reusing the driver's codec, which the byte-table tests pin down independently) over a TCP
socket or a pty, so the production driver runs against it unchanged through
``serial_for_url``. Latches live in the shared :class:`~simulators.cabinet.CabinetModel`:
an unlock command calls ``model.unlock(slot, unlock_time)``, and a status request reads
``model.is_unlocked`` and ``model.key_present``, so a simulated person taking a key is what
the board reports.

Faults are switchable while running (``sim.set_faults(...)``, :meth:`KerongBoardSim.jam`,
or the text console of :meth:`KerongBoardSim.control`), because the bugs worth finding show
up when a bus goes bad in the middle of a session, not at start-up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import select
import socket
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import serial

from drivers.locks.kerong.codec import (
    CHANNELS_PER_BOARD,
    CMD_READ_UNLOCK_TIME,
    CMD_SET_UNLOCK_TIME,
    CMD_STATUS,
    CMD_STATUS_ALL,
    CMD_UNLOCK,
    CMD_UNLOCK_ALL,
    MAX_BOARDS,
    Frame,
    FrameParser,
    decode_frame,
    decode_status,
    decode_unlock_time_ms,
    encode_status_all_reply,
    encode_status_reply,
    encode_unlock_time_reply,
)
from simulators.cabinet import CabinetModel, PhysicalError

log = logging.getLogger(__name__)

LOG_LENGTH = 1000
"""How many frames heard and coil pulses the simulator remembers (for tests and the console)."""

CONSOLE_HELP = (
    "status | faults | clear | no-reply on|off | delay MS | bad-checksum on|off | "
    "garbage on|off | garbage-only on|off | offline BOARD on|off | jam SLOT on|off | "
    "take SLOT | insert SLOT FOB | power on|off | help"
)
"""The commands :meth:`KerongBoardSim.control` understands."""

GARBAGE = bytes.fromhex("ff 00 55 aa 13 37 fe 01 7f")
"""Line noise the ``garbage`` faults send: no 02 byte, so it can never look like a frame."""


@dataclass
class KerongFaults:
    """What is wrong with the bus right now. Every field may change while serving."""

    no_reply: bool = False
    """Boards still obey commands but never answer (a dead transmitter: the nasty case,
    the latch may have opened while the host hears nothing)."""
    delay_s: float = 0.0
    """Answer this late (after obeying at once)."""
    bad_checksum: bool = False
    """Answer with a wrong SUM byte."""
    garbage_before: bool = False
    """Send line noise in front of each answer (a good driver resynchronises)."""
    garbage_instead: bool = False
    """Send line noise instead of each answer."""
    offline_boards: set[int] = field(default_factory=set)
    """Boards that are dead: they neither obey nor answer."""
    collisions: bool = False
    """Model the half-duplex line: bytes from the master that arrive between a request and
    the end of the boards' answer on the wire garble both (the master hears noise, no board
    understands the new frame). Off by default only because TCP test clients of older
    drivers sent frames back to back."""
    late_boards: dict[int, float] = field(default_factory=dict)
    """Per-board extra answer delay in seconds (one slow board among healthy ones)."""


class KerongBoardSim:
    """Up to 16 boards of 16 channels each, sharing one bus and one cabinet model.

    ``slot_map`` maps (board, channel 1–16) to the model's slot numbers; by default board
    ``b`` channel ``c`` is slot ``16*b + c`` (slots 1–16 on board 0). Channels whose slot is
    not in the model read locked and empty, like a channel with no lock wired.
    """

    def __init__(
        self,
        model: CabinetModel,
        *,
        boards: int = 1,
        slot_map: Mapping[tuple[int, int], int] | None = None,
        unlock_time_ms: int = 500,
        answers_unlock: bool = True,
        bit_set_means_locked: bool = True,
        faults: KerongFaults | None = None,
        status_all_variant: Literal["per-board", "aggregate"] = "per-board",
        coil_readback: bool = True,
        baudrate: int = 19200,
        turnaround_s: float = 0.002,
        inter_frame_timeout_s: float = 0.01,
    ) -> None:
        """Build the bus; raise ``ValueError`` for a board or channel outside the protocol.

        ``status_all_variant``: how 0x32 is answered (one 0x35 per board, or one aggregate
        0x36). ``coil_readback``: whether boards answer 0x38 with their coil time.
        ``baudrate``/``turnaround_s`` time the answers on the modelled wire;
        ``inter_frame_timeout_s`` is how long a board keeps half a frame before dropping it.
        """
        if status_all_variant not in ("per-board", "aggregate"):
            raise ValueError(f"unknown 0x32 variant {status_all_variant!r}")
        if not 1 <= boards <= MAX_BOARDS:
            raise ValueError(f"boards must be 1..{MAX_BOARDS}, got {boards}")
        if slot_map is None:
            slot_map = {
                (b, c): b * CHANNELS_PER_BOARD + c
                for b in range(boards)
                for c in range(1, CHANNELS_PER_BOARD + 1)
            }
        for board, channel in slot_map:
            if not 0 <= board < MAX_BOARDS or not 1 <= channel <= CHANNELS_PER_BOARD:
                raise ValueError(f"no board {board} channel {channel} on a Kerong bus")
        self.model = model
        self.slot_map = dict(slot_map)
        self.boards = tuple(sorted(set(range(boards)) | {b for b, _ in slot_map}))
        self.answers_unlock = answers_unlock
        self.bit_set_means_locked = bit_set_means_locked
        self.faults = faults or KerongFaults()
        self.status_all_variant = status_all_variant
        self.coil_readback = coil_readback
        self.baudrate = baudrate
        self.turnaround_s = turnaround_s
        self.inter_frame_timeout_s = inter_frame_timeout_s
        self.collisions_seen = 0
        """Requests garbled by a collision so far."""
        self.truncated_dropped = 0
        """Partial frames dropped after the inter-frame timeout so far."""
        self._unlock_time_ms = dict.fromkeys(self.boards, unlock_time_ms)
        self._lock = threading.RLock()
        self.pulses: deque[tuple[int, int, int]] = deque(maxlen=LOG_LENGTH)
        """The latest coils energised, newest last: (board, channel, on-time ms), what a meter
        on the coil sees. Bounded: ``kiosk run`` on simulated hardware pulses a coil for every
        draw and return for as long as it runs (issue 15, item 4)."""
        self.received: deque[Frame] = deque(maxlen=LOG_LENGTH)
        """Every well-formed frame heard, newest last (for tests and the console)."""

    # -- configuration at run time ----------------------------------------------------------
    def set_faults(self, **changes: object) -> None:
        """Change fault fields by name, e.g. ``set_faults(no_reply=True, delay_s=0.3)``."""
        with self._lock:
            self.faults = dataclasses.replace(self.faults, **changes)  # type: ignore[arg-type]

    def clear_faults(self) -> None:
        """Back to a healthy bus (jammed latches are the model's and stay jammed)."""
        with self._lock:
            self.faults = KerongFaults()

    def slot_at(self, board: int, channel: int) -> int | None:
        """The model slot wired to ``board``/``channel``, or None if none is."""
        slot = self.slot_map.get((board, channel))
        return slot if slot is not None and slot in self.model.slots else None

    def jam(self, board: int, channel: int, jammed: bool = True) -> None:
        """Jam or free the latch at board/channel: it stays open whatever the coil does.

        A shortcut to ``model.set_jammed`` by bus address, as a test thinks of it.
        """
        slot = self.slot_at(board, channel)
        if slot is None:
            raise ValueError(f"board {board} channel {channel} drives no slot")
        self.model.set_jammed(slot, jammed)

    def unlock_time_ms(self, board: int) -> int:
        """The coil on-time ``board`` currently uses (what the last 0x37 set)."""
        with self._lock:
            return self._unlock_time_ms[board]

    # -- the boards' behaviour ----------------------------------------------------------------
    def status_frame(self, board: int) -> bytes:
        """The 0x35 frame ``board`` would send now."""
        lock_bits = 0
        key_bits = 0
        for channel in range(1, CHANNELS_PER_BOARD + 1):
            slot = self.slot_at(board, channel)
            locked = slot is None or not self.model.is_unlocked(slot)
            if locked == self.bit_set_means_locked:
                lock_bits |= 1 << (channel - 1)
            if slot is not None and self.model.key_present(slot):
                key_bits |= 1 << (channel - 1)
        return encode_status_reply(board, lock_bits, key_bits)

    def _alive(self, board: int) -> bool:
        return board in self._unlock_time_ms and board not in self.faults.offline_boards

    def respond(self, frame: Frame) -> list[bytes]:
        """Obey one received frame and return the bytes the bus sends back (faults applied)."""
        with self._lock:
            self.received.append(frame)
            if not self.model.powered:
                return []
            board = frame.board
            replies: list[bytes] = []
            if frame.cmd == CMD_STATUS_ALL:
                alive = [b for b in self.boards if self._alive(b)]
                if self.status_all_variant == "aggregate":
                    statuses = [decode_status(decode_frame(self.status_frame(b))) for b in alive]
                    replies = [encode_status_all_reply(statuses)] if statuses else []
                else:
                    replies = [self.status_frame(b) for b in alive]
            elif not self._alive(board):
                return []
            elif frame.cmd == CMD_STATUS:
                replies = [self.status_frame(board)]
            elif frame.cmd in (CMD_UNLOCK, CMD_UNLOCK_ALL):
                seconds = self._unlock_time_ms[board] / 1000
                channels = (
                    [frame.channel]
                    if frame.cmd == CMD_UNLOCK
                    else range(1, CHANNELS_PER_BOARD + 1)
                )
                for channel in channels:
                    self.pulses.append((board, channel, self._unlock_time_ms[board]))
                    slot = self.slot_at(board, channel)
                    if slot is not None:
                        self.model.unlock(slot, seconds)
                if self.answers_unlock:
                    replies = [self.status_frame(board)]
            elif frame.cmd == CMD_SET_UNLOCK_TIME:
                self._unlock_time_ms[board] = decode_unlock_time_ms(frame)
            elif frame.cmd == CMD_READ_UNLOCK_TIME and self.coil_readback:
                replies = [encode_unlock_time_reply(board, self._unlock_time_ms[board])]
            # 0x35 is another board's answer (or our own echo): boards ignore it.
            return self._mangle(replies)

    def _mangle(self, replies: list[bytes]) -> list[bytes]:
        f = self.faults
        if f.no_reply:
            return []
        out = []
        for reply in replies:
            if f.bad_checksum:
                reply = reply[:-1] + bytes(((reply[-1] + 1) & 0xFF,))
            if f.garbage_instead:
                reply = GARBAGE
            elif f.garbage_before:
                reply = GARBAGE + reply
            out.append(reply)
        return out

    def handle_bytes(self, parser: FrameParser, data: bytes) -> list[bytes]:
        """Feed raw received bytes through ``parser``; frames with a bad SUM are ignored,
        as real boards do, and every good frame is obeyed in order."""
        frames, _errors = parser.feed_all(data)
        out: list[bytes] = []
        for frame in frames:
            out.extend(self.respond(frame))
        return out

    # -- a text console for people and end-to-end tests --------------------------------------
    def control(self, line: str) -> str:
        """Run one console command and return a one-line answer ('ok ...' or 'error: ...').

        The commands are listed in :data:`CONSOLE_HELP`; ``status`` prints every slot as
        ``slot:open|locked:fob``. A console makes faults switchable in a running process,
        where the Python API is out of reach.
        """
        words = line.split()
        if not words:
            return ""
        cmd, args = words[0].lower(), words[1:]
        flags = {"on": True, "off": False}
        try:
            if cmd == "help":
                return "ok " + CONSOLE_HELP
            if cmd == "status":
                parts = []
                for slot in sorted(self.model.slots):
                    state = "open" if self.model.is_unlocked(slot) else "locked"
                    parts.append(f"{slot}:{state}:{self.model.fob_in(slot) or '-'}")
                return "ok " + " ".join(parts)
            if cmd == "faults":
                return f"ok {self.faults}"
            if cmd == "clear":
                self.clear_faults()
            elif cmd in ("no-reply", "bad-checksum", "garbage", "garbage-only") and len(args) == 1:
                name = {
                    "no-reply": "no_reply",
                    "bad-checksum": "bad_checksum",
                    "garbage": "garbage_before",
                    "garbage-only": "garbage_instead",
                }[cmd]
                self.set_faults(**{name: flags[args[0]]})
            elif cmd == "delay" and len(args) == 1:
                self.set_faults(delay_s=max(0, int(args[0])) / 1000)
            elif cmd == "offline" and len(args) == 2:
                offline = set(self.faults.offline_boards)
                (offline.add if flags[args[1]] else offline.discard)(int(args[0]))
                self.set_faults(offline_boards=offline)
            elif cmd == "jam" and len(args) == 2:
                self.model.set_jammed(int(args[0]), flags[args[1]])
            elif cmd == "take" and len(args) == 1:
                return f"ok took {self.model.take(int(args[0]))}"
            elif cmd == "insert" and len(args) == 2:
                self.model.insert(args[1], int(args[0]))
            elif cmd == "power" and len(args) == 1:
                (self.model.power_restore if flags[args[0]] else self.model.power_cut)()
            else:
                return f"error: unknown command {line.strip()!r} (try help)"
        except (KeyError, ValueError, PhysicalError) as exc:
            return f"error: {exc}"
        return "ok"


class _Line:
    """The half-duplex wire between the master and the boards, for one connection.

    Answers are scheduled ``turnaround_s`` (+ faults' delays) after the request and are
    delivered when they would have finished on the wire; master bytes arriving before that
    are a collision when the ``collisions`` fault is on. Half a frame is dropped once the
    line was silent for the inter-frame timeout, as a board's UART does.
    """

    def __init__(self, sim: KerongBoardSim, send: Callable[[bytes], object]) -> None:
        self.sim = sim
        self.send = send
        self.parser = FrameParser()
        self.pending: list[tuple[float, bytes]] = []
        self.last_rx = 0.0

    def wire_s(self, nbytes: int) -> float:
        return nbytes * 10 / self.sim.baudrate

    def next_wakeup(self, now: float) -> float:
        times = [t for t, _ in self.pending]
        if self.parser.pending:
            times.append(self.last_rx + self.sim.inter_frame_timeout_s)
        return max(0.0, min(times) - now) if times else 0.1

    def received(self, data: bytes, now: float) -> None:
        sim = self.sim
        if sim.faults.collisions and self.pending:
            # The master talked over the boards: both frames are destroyed on the wire.
            self.pending = [(t, b"\xfe" * len(b)) for t, b in self.pending]
            self.parser.drop_pending()
            with sim._lock:
                sim.collisions_seen += 1
            return
        if self.parser.pending and now - self.last_rx > sim.inter_frame_timeout_s:
            self._drop_truncated()
        self.last_rx = now
        start = max([now, *(t for t, _ in self.pending)])
        for reply in sim.handle_bytes(self.parser, data):
            extra = sim.faults.delay_s + self._late(reply)
            start = max(start, now + sim.turnaround_s + extra)
            done = start + self.wire_s(len(reply))
            self.pending.append((done, reply))
            start = done

    def _late(self, reply: bytes) -> float:
        board = reply[1] >> 4 if len(reply) > 2 else 0
        return self.sim.faults.late_boards.get(board, 0.0)

    def _drop_truncated(self) -> None:
        self.parser.drop_pending()
        with self.sim._lock:
            self.sim.truncated_dropped += 1

    def tick(self, now: float) -> None:
        """Deliver the answers whose time has come; drop a stale half frame."""
        if self.parser.pending and now - self.last_rx > self.sim.inter_frame_timeout_s:
            self._drop_truncated()
        while self.pending and self.pending[0][0] <= now:
            _, reply = self.pending.pop(0)
            self.send(reply)


class KerongBoardServer:
    """Serve a :class:`KerongBoardSim` over TCP, a pty of its own, or a serial device.

    ``listen`` is ``socket://HOST:PORT`` (port 0 picks a free one), ``pty``, or the path of
    a serial device (``/dev/ttyUSB1``, or one end of a ``socat`` pty pair, optionally as
    ``serial:PATH``). Afterwards :attr:`url` is what a driver passes to ``serial_for_url``:
    the ``socket://`` URL with the real port, or the pty's slave path; for a device it is
    the device path (the driver opens the *other* end). A device that disappears (an
    adapter pulled, ``socat`` killed) is reopened every 0.1 s until it is back, so a test
    can re-create a link mid-run. Several TCP clients may be connected at once; they share
    one bus, as two masters on one RS-485 line would.
    """

    def __init__(self, sim: KerongBoardSim, listen: str = "socket://127.0.0.1:0") -> None:
        self.sim = sim
        self.listen = listen
        self.url = ""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: socket.socket | None = None
        self._clients: set[socket.socket] = set()
        self._clients_lock = threading.Lock()
        self._pty: tuple[int, int] | None = None
        self.reattached = 0
        """How often a serial device came back after it vanished."""

    def start(self) -> KerongBoardServer:
        """Open the listening endpoint and start serving; returns self for chaining."""
        if self.listen == "pty":
            master, slave = os.openpty()
            tty.setraw(slave)  # no line discipline: 0x03 must not become SIGINT
            self._pty = (master, slave)
            self.url = os.ttyname(slave)
            self._spawn(self._serve_fd, master)
        elif self.listen.startswith("/") or (
            self.listen.startswith("serial:/") and not self.listen.startswith("serial://")
        ):
            path = self.listen.removeprefix("serial:")
            # Opened here, before start() returns: a wrong path is an error at start, and
            # no frame can arrive before the port is open (pyserial flushes input on open).
            first = serial.Serial(path, baudrate=self.sim.baudrate, timeout=0)
            self.url = path
            self._spawn(self._serve_device, path, first)
        else:
            parts = urlsplit(self.listen)
            if parts.scheme != "socket" or parts.hostname is None or parts.port is None:
                raise ValueError(
                    f"listen must be socket://HOST:PORT, pty or a device path, got {self.listen!r}"
                )
            server = socket.create_server((parts.hostname, parts.port))
            server.settimeout(0.1)
            self._server = server
            host, port = server.getsockname()[:2]
            self.url = f"socket://{host}:{port}"
            self._spawn(self._accept_loop, server)
        return self

    def stop(self) -> None:
        """Stop serving, close every endpoint, and wait for the threads."""
        self._stop.set()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept()
            self._server.close()
        with self._clients_lock:
            for client in self._clients:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=2)
        if self._pty is not None:
            for fd in self._pty:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._pty = None

    def __enter__(self) -> KerongBoardServer:
        return self.start() if not self.url else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        name = f"kerong-sim-{len(self._threads)}"
        thread = threading.Thread(target=target, args=args, daemon=True, name=name)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, server: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            # A wire sends each byte as it comes; without TCP_NODELAY the kernel would hold a
            # board's second answer (Nagle) until the driver's next request acknowledged the
            # first, and that late answer would then look like a reply to the new request.
            with contextlib.suppress(OSError):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._clients_lock:
                self._clients.add(client)
            self._spawn(self._serve_client, client)

    def _pump(self, fileno: int, recv: Callable[[], bytes], send: Callable[[bytes], object]) -> None:
        """Serve one connection until it ends (``recv`` returns b"" or raises OSError)."""
        line = _Line(self.sim, send)
        while not self._stop.is_set():
            wait = min(0.1, line.next_wakeup(time.monotonic()))
            ready, _, _ = select.select([fileno], [], [], wait)
            now = time.monotonic()
            if ready:
                data = recv()
                if not data:
                    return
                line.received(data, now)
            line.tick(time.monotonic())

    def _serve_client(self, client: socket.socket) -> None:
        try:
            self._pump(client.fileno(), lambda: client.recv(4096), client.sendall)
        except OSError as exc:
            log.debug("kerong sim client gone: %s", exc)
        finally:
            with self._clients_lock:
                self._clients.discard(client)
            client.close()

    def _serve_fd(self, fd: int) -> None:
        def send(data: bytes) -> None:
            os.write(fd, data)

        try:
            self._pump(fd, lambda: os.read(fd, 4096), send)
        except OSError as exc:
            log.debug("kerong sim pty closed: %s", exc)

    def _serve_device(self, path: str, first: serial.Serial) -> None:
        """Attach to a serial device, and re-attach whenever it vanishes and comes back."""
        port: serial.Serial | None = first
        while not self._stop.is_set():
            if port is None:
                try:
                    port = serial.Serial(path, baudrate=self.sim.baudrate, timeout=0)
                except (serial.SerialException, OSError):
                    self._stop.wait(0.1)
                    continue
                self.reattached += 1
            fd = port.fileno()
            try:
                self._pump(fd, functools.partial(os.read, fd, 4096),
                           functools.partial(os.write, fd))
            except (OSError, serial.SerialException) as exc:
                log.debug("kerong sim device %s gone: %s", path, exc)
            finally:
                with contextlib.suppress(Exception):
                    port.close()
                port = None
            self._stop.wait(0.1)
