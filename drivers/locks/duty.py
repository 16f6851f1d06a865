"""A duty-cycle limit per lock coil: at most N pulses a minute and a cool-down between two.

A solenoid is rated for a duty cycle (typically 25 %: 1 s on, 3 s off), not just a maximum
pulse. Three unlocks back to back — a person pressing 重试 on a jammed slot, a remote
unlock repeated from the admin page — keep a coil hot for as long as one forbidden long
pulse. Every lock driver asks :meth:`DutyCycle.admit` before it energises a coil and
refuses with :class:`~drivers.errors.DutyCycleExceeded` (a ``LockBoardError``, so the
cabinet's existing handling applies) *before* a byte goes out; the refused coil is never
touched.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from drivers.errors import DutyCycleExceeded

WINDOW_S = 60.0


@dataclass(frozen=True)
class DutyLimit:
    """``pulses_per_minute`` 1..60 per coil; ``cooldown_ms`` 0..60000 between two pulses of
    one coil, counted from the end of the first pulse."""

    pulses_per_minute: int = 6
    cooldown_ms: int = 1500

    def __post_init__(self) -> None:
        if not 1 <= self.pulses_per_minute <= 60:
            raise ValueError(f"pulses_per_minute must be 1..60, got {self.pulses_per_minute}")
        if not 0 <= self.cooldown_ms <= 60_000:
            raise ValueError(f"cooldown_ms must be 0..60000, got {self.cooldown_ms}")


class DutyCycle:
    """Bookkeeping of recent pulses per coil; thread-safe; ``clock`` injectable for tests."""

    def __init__(self, limit: DutyLimit | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit or DutyLimit()
        self._clock = clock
        self._pulses: dict[int, deque[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def admit(self, coil: int, pulse_ms: int) -> None:
        """Record a pulse of ``pulse_ms`` on ``coil`` starting now, or raise if it would
        break the limit (nothing is recorded then)."""
        now = self._clock()
        limit = self.limit
        with self._lock:
            history = self._pulses.setdefault(coil, deque())
            while history and history[0][0] <= now - WINDOW_S:
                history.popleft()
            if history:
                ready_at = history[-1][1] + limit.cooldown_ms / 1000
                if now < ready_at:
                    raise DutyCycleExceeded(
                        coil, f"coil cooling down ({limit.cooldown_ms} ms between pulses)",
                        retry_after_s=ready_at - now,
                    )
            if len(history) >= limit.pulses_per_minute:
                retry = history[0][0] + WINDOW_S - now
                raise DutyCycleExceeded(
                    coil, f"{limit.pulses_per_minute} pulses in the last minute (duty-cycle limit)",
                    retry_after_s=retry,
                )
            history.append((now, now + pulse_ms / 1000))

    def forget(self, coil: int) -> None:
        """Drop a coil's history (a pulse that provably never went out)."""
        with self._lock:
            history = self._pulses.get(coil)
            if history:
                history.pop()
