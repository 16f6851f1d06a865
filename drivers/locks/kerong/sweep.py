"""Surveying a Kerong bus: status sweeps (one 0x32 for the healthy boards, dead boards
quarantined) and what commissioning found (:class:`CommissionReport`).

Kept apart from the device because it is bookkeeping with one job: decide which boards a
sweep asks and how, so that one dead board never slows the sweep of the others (it is
quarantined after ``quarantine_after`` missed sweeps and re-probed every ``reprobe_s``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from drivers.errors import BusFault, LockBoardError
from drivers.locks.kerong.codec import (
    CMD_STATUS_ALL_REPLY,
    CMD_STATUS_REPLY,
    BoardStatus,
    Frame,
    decode_status,
    decode_status_all,
    encode_status_all,
)
from drivers.locks.kerong.link import Link

log = logging.getLogger(__name__)

StatusVariant = Literal["off", "per-board", "aggregate"]
"""How status sweeps ask: ``off`` one 0x30 per board; otherwise one 0x32 for all boards,
answered by one 0x35 per board or by one aggregate 0x36 frame."""


@dataclass
class CommissionReport:
    """What :meth:`KerongLockBank.commission` found on the bus."""

    variant: StatusVariant
    answering: tuple[int, ...]
    missing: tuple[int, ...]
    """Mapped boards that did not answer (a DIP switch set wrong, a cable, power)."""
    unmapped: tuple[int, ...]
    """Boards that answered but carry no configured slot."""
    coil_ms: dict[int, int | None] = field(default_factory=dict)
    """Per answering mapped board: the coil time it read back (``None``: not readable)."""

    @property
    def ok(self) -> bool:
        return not self.missing


class ReadStatus(Protocol):
    def __call__(self, board: int, what: str, *, attempts: int | None = None) -> BoardStatus: ...


class Sweeper:
    """Which boards a status sweep asks, and how; the owner holds the bus lock."""

    def __init__(
        self,
        link: Link,
        boards: Iterable[int],
        *,
        read_status: ReadStatus,
        name: Callable[[int], str],
        clock: Callable[[], float] = time.monotonic,
        quarantine_after: int = 2,
        reprobe_s: float = 5.0,
        variant: StatusVariant = "off",
    ) -> None:
        self.link = link
        self.boards = tuple(sorted(boards))
        self._mapped = set(self.boards)
        self.read_status = read_status
        self.name = name
        self._clock = clock
        self._quarantine_after = quarantine_after
        self._reprobe_s = reprobe_s
        self.variant: StatusVariant = variant
        self._misses: dict[int, int] = {}
        self._quarantine: dict[int, float] = {}

    @property
    def quarantined(self) -> tuple[int, ...]:
        return tuple(sorted(self._quarantine))

    def sweep(self) -> tuple[dict[int, BoardStatus], dict[int, str]]:
        now = self._clock()
        healthy = [b for b in self.boards if b not in self._quarantine]
        due = [b for b in self.boards if b in self._quarantine and now >= self._quarantine[b]]
        if not healthy:
            # Every board is out (power, cable): quarantine protects healthy boards' scan
            # rate, and there are none, so ask them all each sweep to see the bus come back.
            due = list(self._quarantine)
        got: dict[int, BoardStatus] = {}
        failures: dict[int, str] = {}
        if self.variant != "off" and healthy:
            found, _ = self.broadcast(set(healthy))
            got.update({b: st for b, st in found.items() if b in self._mapped})
        for board in healthy:
            if board in got:
                continue
            try:
                got[board] = self.read_status(board, f"{self.name(board)}: status")
            except BusFault:
                raise
            except LockBoardError as exc:
                failures[board] = str(exc)
                self._missed(board)
        for board in due:
            try:
                got[board] = self.read_status(
                    board, f"{self.name(board)}: re-probe", attempts=1
                )
            except BusFault:
                raise
            except LockBoardError as exc:
                self._quarantine[board] = self._clock() + self._reprobe_s
                failures[board] = f"{exc} (quarantined; next probe in {self._reprobe_s:.0f} s)"
            else:
                log.warning("Kerong board %d answers again; back in the sweep", board)
                del self._quarantine[board]
        for board, next_probe in self._quarantine.items():
            if board not in failures and board not in got:
                failures[board] = (
                    f"{self.name(board)}: quarantined (not answering); "
                    f"next probe in {max(0.0, next_probe - now):.1f} s"
                )
        for board in got:
            self._misses[board] = 0
        return got, failures

    def _missed(self, board: int) -> None:
        self._misses[board] = self._misses.get(board, 0) + 1
        if self._misses[board] >= self._quarantine_after and board not in self._quarantine:
            log.error("Kerong board %d missed %d sweeps: quarantined, re-probed every %.0f s",
                      board, self._misses[board], self._reprobe_s)
            self._quarantine[board] = self._clock() + self._reprobe_s

    def broadcast(self, want: set[int]) -> tuple[dict[int, BoardStatus], StatusVariant]:
        """One 0x32 exchange; returns the boards heard and which variant answered."""
        link = self.link

        def wanted(frame: Frame) -> bool:
            return frame.cmd == CMD_STATUS_ALL_REPLY or (
                frame.cmd == CMD_STATUS_REPLY and frame.board in want
            )

        try:
            link.send(encode_status_all())
            expected = 1 if self.variant == "aggregate" else len(want)
            frames, _ = link.collect(wanted, count=expected)
        except BusFault as exc:
            raise BusFault(f"Kerong bus status-all: {exc}") from exc
        found: dict[int, BoardStatus] = {}
        variant: StatusVariant = "off"
        for frame in frames:
            if frame.cmd == CMD_STATUS_ALL_REPLY:
                variant = "aggregate"
                found.update({st.board: st for st in decode_status_all(frame)})
            else:
                variant = "aggregate" if variant == "aggregate" else "per-board"
                found[frame.board] = decode_status(frame)
        return found, variant

