"""Kerong KR-CU16 frame codec: pure functions from meaning to bytes and back, no I/O.

Frame layout (both directions)::

    02  ADDR  CMD  [DATA ...]  03  SUM

``SUM`` is the low byte of the sum of every byte from ``02`` through ``03`` inclusive.
``ADDR`` is ``board << 4 | lock_index`` where lock index 0–15 names lock channel 1–16, so
up to 16 boards of 16 locks share one RS-485 bus.

The frame carries no length byte, so the length of ``DATA`` is fixed by ``CMD``
(:data:`DATA_LENGTH`). That is also what lets :class:`FrameParser` tell a real frame from
line noise: a start byte, a known command and an end byte exactly where the command says
it must be. Everything here is deterministic so it can be tested byte for byte; the
device layer adds timeouts and retries on top.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import CodecError

STX = 0x02
ETX = 0x03

CMD_STATUS = 0x30
"""Ask one board (``ADDR = board << 4``) for its lock and key bits."""
CMD_UNLOCK = 0x31
"""Energise one lock coil for the board's unlock time."""
CMD_STATUS_ALL = 0x32
"""Ask every board on the bus; each answers with its own status frame."""
CMD_UNLOCK_ALL = 0x33
"""Energise every coil of one board. The driver refuses it unless configured."""
CMD_STATUS_REPLY = 0x35
"""A board's answer: lock bits 1–8, 9–16, key-sensor bits 1–8, 9–16."""
CMD_STATUS_ALL_REPLY = 0x36
"""The aggregate answer some KR-CU16 firmware gives to 0x32: one frame for the whole bus,
``02 00 36 N [BOARD L1 L2 K1 K2] x N 03 SUM`` (N boards, each with the four status bytes
of a 0x35). Other firmware answers 0x32 with one 0x35 per board instead; the driver
detects which at commissioning (:meth:`KerongLockBank.commission`)."""
CMD_SET_UNLOCK_TIME = 0x37
"""Set how long a board holds a coil on, big-endian, in 10 ms units."""
CMD_READ_UNLOCK_TIME = 0x38
"""Ask one board for its coil on-time; answered with :data:`CMD_UNLOCK_TIME_REPLY`.
Confirm on the bench that the board's firmware has it: a board that stays silent is
reported at commissioning as "coil time not readable" and the driver keeps sending 0x37
in front of every unlock, which is what makes the time safe in any case."""
CMD_UNLOCK_TIME_REPLY = 0x39
"""A board's coil on-time (big-endian 10 ms units). A distinct command byte from 0x37 so
the echo of our own 0x37 on a two-wire adapter is never taken for the board's answer."""

DATA_LENGTH: dict[int, int] = {
    CMD_STATUS: 0,
    CMD_UNLOCK: 0,
    CMD_STATUS_ALL: 0,
    CMD_UNLOCK_ALL: 0,
    CMD_STATUS_REPLY: 4,
    CMD_SET_UNLOCK_TIME: 2,
    CMD_READ_UNLOCK_TIME: 0,
    CMD_UNLOCK_TIME_REPLY: 2,
}
"""Bytes of DATA each command carries; a command not listed here is not a frame we know."""

MAX_BOARDS = 16
CHANNELS_PER_BOARD = 16
UNLOCK_TIME_UNIT_MS = 10
MAX_UNLOCK_TIME_UNITS = 0xFFFF
FRAME_OVERHEAD = 5
"""STX, ADDR, CMD, ETX, SUM."""
AGGREGATE_ENTRY = 5
"""Bytes per board in a 0x36 frame: BOARD, lock bits (2), key bits (2)."""


def data_length(cmd: int, count_byte: int | None) -> int | None:
    """DATA bytes a frame with ``cmd`` carries; for 0x36 it follows from the count byte
    (``None`` until that byte has arrived, or for a count no bus can have)."""
    if cmd == CMD_STATUS_ALL_REPLY:
        if count_byte is None or count_byte > MAX_BOARDS:
            return None
        return 1 + AGGREGATE_ENTRY * count_byte
    return DATA_LENGTH.get(cmd)


def checksum(body: bytes) -> int:
    """Low byte of the sum of ``body`` (which runs from STX through ETX inclusive)."""
    return sum(body) & 0xFF


def _check_board(board: int) -> None:
    if not 0 <= board < MAX_BOARDS:
        raise ValueError(f"board must be 0..{MAX_BOARDS - 1}, got {board}")


def _check_channel(channel: int) -> None:
    if not 1 <= channel <= CHANNELS_PER_BOARD:
        raise ValueError(f"channel must be 1..{CHANNELS_PER_BOARD}, got {channel}")


def make_address(board: int, channel: int | None = None) -> int:
    """ADDR byte for ``board`` and (optionally) lock ``channel`` 1–16 (index ``channel-1``)."""
    _check_board(board)
    if channel is None:
        return board << 4
    _check_channel(channel)
    return board << 4 | (channel - 1)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame, whichever direction it travelled."""

    addr: int
    cmd: int
    data: bytes = b""

    @property
    def board(self) -> int:
        """The board number in the high nibble of ADDR."""
        return self.addr >> 4

    @property
    def channel(self) -> int:
        """The lock channel 1–16 named by the low nibble of ADDR."""
        return (self.addr & 0x0F) + 1

    def encode(self) -> bytes:
        """The exact bytes of this frame on the wire."""
        return encode_frame(self.addr, self.cmd, self.data)


def encode_frame(addr: int, cmd: int, data: bytes = b"") -> bytes:
    """Build ``02 ADDR CMD DATA 03 SUM``; refuse a DATA length the command does not carry."""
    if not 0 <= addr <= 0xFF:
        raise ValueError(f"address must be one byte, got {addr}")
    expected = data_length(cmd, data[0] if data else None)
    if expected is None:
        raise ValueError(f"unknown command 0x{cmd:02X} (or a 0x36 frame without a valid count)")
    if len(data) != expected:
        raise ValueError(f"command 0x{cmd:02X} carries {expected} data bytes, got {len(data)}")
    body = bytes((STX, addr, cmd)) + bytes(data) + bytes((ETX,))
    return body + bytes((checksum(body),))


def encode_status_request(board: int) -> bytes:
    """0x30: status of one board."""
    return encode_frame(make_address(board), CMD_STATUS)


def encode_unlock(board: int, channel: int) -> bytes:
    """0x31: release lock ``channel`` (1–16) of ``board`` for the board's unlock time."""
    return encode_frame(make_address(board, channel), CMD_UNLOCK)


def encode_status_all() -> bytes:
    """0x32: every board on the bus answers with its status frame (ADDR is 0)."""
    return encode_frame(0x00, CMD_STATUS_ALL)


def encode_unlock_all(board: int) -> bytes:
    """0x33: release every lock of ``board``. Only the codec; the device guards its use."""
    return encode_frame(make_address(board), CMD_UNLOCK_ALL)


def unlock_time_units(time_ms: int) -> int:
    """Convert ms to the board's 10 ms units, rounding down so a board never holds longer.

    The one exception is a request below one unit, which becomes one unit (10 ms): zero
    is not sent because its meaning differs between firmware versions.
    """
    if time_ms <= 0:
        raise ValueError(f"unlock time must be positive, got {time_ms} ms")
    return min(max(1, time_ms // UNLOCK_TIME_UNIT_MS), MAX_UNLOCK_TIME_UNITS)


def encode_set_unlock_time(board: int, time_ms: int) -> bytes:
    """0x37: set the coil on-time of ``board`` (sent as big-endian 10 ms units)."""
    units = unlock_time_units(time_ms)
    return encode_frame(make_address(board), CMD_SET_UNLOCK_TIME, units.to_bytes(2, "big"))


def encode_status_reply(
    board: int, lock_bits: int, key_bits: int, *, addr: int | None = None
) -> bytes:
    """0x35: a board's status answer (what a simulator sends).

    Bit ``n-1`` of ``lock_bits``/``key_bits`` is channel ``n``; what a set lock bit means
    (locked or unlocked) depends on the board's firmware and is the device layer's concern.
    """
    if not 0 <= lock_bits <= 0xFFFF or not 0 <= key_bits <= 0xFFFF:
        raise ValueError("lock and key bits are 16-bit values")
    data = lock_bits.to_bytes(2, "little") + key_bits.to_bytes(2, "little")
    return encode_frame(make_address(board) if addr is None else addr, CMD_STATUS_REPLY, data)


@dataclass(frozen=True, slots=True)
class BoardStatus:
    """The raw bits of one board's 0x35 answer (polarity not yet applied)."""

    board: int
    lock_bits: int
    key_bits: int

    def lock_bit(self, channel: int) -> bool:
        """The raw lock bit of ``channel`` 1–16."""
        _check_channel(channel)
        return bool(self.lock_bits >> (channel - 1) & 1)

    def key_bit(self, channel: int) -> bool:
        """The key-sensor bit of ``channel`` 1–16 (set: a key is present)."""
        _check_channel(channel)
        return bool(self.key_bits >> (channel - 1) & 1)


def decode_frame(raw: bytes) -> Frame:
    """Decode exactly one complete frame; anything else is a :class:`CodecError`."""
    if len(raw) < FRAME_OVERHEAD:
        raise CodecError(f"frame too short ({len(raw)} bytes): {raw.hex(' ')}")
    if raw[0] != STX:
        raise CodecError(f"frame does not start with 02: {raw.hex(' ')}")
    cmd = raw[2]
    expected = data_length(cmd, raw[3] if len(raw) > 3 else None)
    if expected is None:
        raise CodecError(f"unknown command 0x{cmd:02X}: {raw.hex(' ')}")
    if len(raw) != FRAME_OVERHEAD + expected:
        raise CodecError(
            f"command 0x{cmd:02X} frame must be {FRAME_OVERHEAD + expected} bytes, "
            f"got {len(raw)}: {raw.hex(' ')}"
        )
    if raw[-2] != ETX:
        raise CodecError(f"frame does not end with 03: {raw.hex(' ')}")
    want = checksum(raw[:-1])
    if raw[-1] != want:
        raise CodecError(
            f"bad checksum 0x{raw[-1]:02X} (expected 0x{want:02X}) in frame {raw.hex(' ')}"
        )
    return Frame(raw[1], cmd, bytes(raw[3:-2]))


def decode_status(frame: Frame) -> BoardStatus:
    """Read the lock and key bits out of a 0x35 frame."""
    if frame.cmd != CMD_STATUS_REPLY or len(frame.data) != 4:
        raise CodecError(f"not a status reply: {frame.encode().hex(' ')}")
    d = frame.data
    return BoardStatus(frame.board, d[0] | d[1] << 8, d[2] | d[3] << 8)


def encode_read_unlock_time(board: int) -> bytes:
    """0x38: ask ``board`` for its coil on-time."""
    return encode_frame(make_address(board), CMD_READ_UNLOCK_TIME)


def encode_unlock_time_reply(board: int, time_ms: int) -> bytes:
    """0x39: a board's coil on-time answer (what a simulator sends)."""
    units = unlock_time_units(time_ms)
    return encode_frame(make_address(board), CMD_UNLOCK_TIME_REPLY, units.to_bytes(2, "big"))


def encode_status_all_reply(statuses: list[BoardStatus]) -> bytes:
    """0x36: the aggregate answer to 0x32 (what a simulator of that firmware sends)."""
    data = bytearray((len(statuses),))
    for st in statuses:
        _check_board(st.board)
        data.append(st.board)
        data += st.lock_bits.to_bytes(2, "little") + st.key_bits.to_bytes(2, "little")
    return encode_frame(0x00, CMD_STATUS_ALL_REPLY, bytes(data))


def decode_status_all(frame: Frame) -> list[BoardStatus]:
    """The per-board statuses in a 0x36 frame."""
    d = frame.data
    if frame.cmd != CMD_STATUS_ALL_REPLY or not d or len(d) != 1 + AGGREGATE_ENTRY * d[0]:
        raise CodecError(f"not an aggregate status frame: {frame.encode().hex(' ')}")
    out = []
    for i in range(d[0]):
        e = d[1 + AGGREGATE_ENTRY * i : 1 + AGGREGATE_ENTRY * (i + 1)]
        if e[0] >= MAX_BOARDS:
            raise CodecError(f"aggregate status names board {e[0]}")
        out.append(BoardStatus(e[0], e[1] | e[2] << 8, e[3] | e[4] << 8))
    return out


def decode_unlock_time_ms(frame: Frame) -> int:
    """The coil on-time in ms carried by a 0x37 (set) or 0x39 (board's answer) frame."""
    if frame.cmd not in (CMD_SET_UNLOCK_TIME, CMD_UNLOCK_TIME_REPLY) or len(frame.data) != 2:
        raise CodecError(f"not a set-unlock-time frame: {frame.encode().hex(' ')}")
    return int.from_bytes(frame.data, "big") * UNLOCK_TIME_UNIT_MS


class FrameParser:
    """Incremental parser: feed bytes as they arrive, take complete frames out.

    A serial line delivers frames split across reads, glued together, or preceded by
    noise (a board powering up, an RS-485 line turning round). The parser keeps what it
    has not used, skips bytes that cannot start a frame, and when a well-formed frame has a
    wrong checksum it drops that frame, raises :class:`CodecError` for it, and carries on
    with the bytes after it on the next call.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.discarded = 0
        """Bytes thrown away as noise so far (diagnostics: 'the board answered garbage')."""

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf.extend(data)

    def read_frame(self) -> Frame | None:
        """Return the next complete frame, ``None`` if more bytes are needed.

        Raises :class:`CodecError` for a frame with a bad checksum; that frame is consumed,
        so calling again continues with whatever followed it.
        """
        buf = self._buf
        while True:
            start = buf.find(STX)
            if start < 0:
                self.discarded += len(buf)
                buf.clear()
                return None
            if start:
                self.discarded += start
                del buf[:start]
            if len(buf) < 3:
                return None
            if buf[2] == CMD_STATUS_ALL_REPLY and len(buf) < 4:
                return None  # the count byte decides the length
            n = data_length(buf[2], buf[3] if len(buf) > 3 else None)
            if n is None:
                self._skip_one()
                continue
            total = FRAME_OVERHEAD + n
            if len(buf) < total:
                return None
            if buf[total - 2] != ETX:
                self._skip_one()
                continue
            raw = bytes(buf[:total])
            del buf[:total]
            return decode_frame(raw)

    def drop_pending(self) -> int:
        """Forget a partial frame (a board's inter-frame timeout ran out); return its size."""
        n = len(self._buf)
        self.discarded += n
        self._buf.clear()
        return n

    def _skip_one(self) -> None:
        """An 02 that does not begin a frame is noise: drop it and look for the next one."""
        self.discarded += 1
        del self._buf[:1]

    def feed_all(self, data: bytes) -> tuple[list[Frame], list[CodecError]]:
        """Feed ``data`` and drain every complete frame, collecting checksum errors apart."""
        self.feed(data)
        frames: list[Frame] = []
        errors: list[CodecError] = []
        while True:
            try:
                frame = self.read_frame()
            except CodecError as exc:
                errors.append(exc)
                continue
            if frame is None:
                return frames, errors
            frames.append(frame)
