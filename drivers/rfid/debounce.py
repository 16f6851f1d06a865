"""Turn a stream of "which card is on the antenna now" polls into one read per tap.

Readers poll; a badge left on the antenna is seen again on every poll, and a card that
wobbles at the edge of the field drops out for a poll or two. The cabinet wants one event
per deliberate tap, so a card counts as removed only after it has been absent for both a
number of consecutive polls *and* a minimum time: the poll count protects a slow poller
from a single missed answer, the time protects a fast poller from a short wobble.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_HOLD_OFF_S = 0.3
DEFAULT_HOLD_OFF_POLLS = 2


class Debouncer:
    """Per-reader tap detector; thread-safe, clock injectable for tests.

    Call :meth:`observe` once per poll with the UID seen (or ``None``). It returns True
    exactly when that UID is a new tap that should be reported.
    """

    def __init__(
        self,
        *,
        hold_off_s: float = DEFAULT_HOLD_OFF_S,
        hold_off_polls: int = DEFAULT_HOLD_OFF_POLLS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 <= hold_off_s <= 10.0:
            raise ValueError(f"hold_off_s must be within 0..10 s, got {hold_off_s}")
        if not 1 <= hold_off_polls <= 100:
            raise ValueError(f"hold_off_polls must be within 1..100, got {hold_off_polls}")
        self.hold_off_s = hold_off_s
        self.hold_off_polls = hold_off_polls
        self._clock = clock
        self._lock = threading.Lock()
        self._held: bytes | None = None
        self._absent_polls = 0
        self._absent_since: float | None = None

    @property
    def held(self) -> bytes | None:
        """The UID that has been reported and is (as far as we know) still on the antenna."""
        with self._lock:
            return self._held

    def is_new(self, uid: bytes) -> bool:
        """Would ``observe(uid)`` report a tap? Does not change state.

        Lets a reader do its expensive work (credential read) only for a new tap, and
        commit with :meth:`observe` only once that work succeeded.
        """
        with self._lock:
            return uid != self._held

    def observe(self, uid: bytes | None) -> bool:
        """Record one poll result; True when ``uid`` is a new tap to report.

        A different card replacing the held one without a gap is a new tap too: two people
        swapping badges quickly must both be seen.
        """
        now = self._clock()
        with self._lock:
            if uid is None:
                if self._held is not None:
                    self._absent_polls += 1
                    if self._absent_since is None:
                        self._absent_since = now
                    if (self._absent_polls >= self.hold_off_polls
                            and now - self._absent_since >= self.hold_off_s):
                        self._held = None
                        self._reset_absence()
                return False
            self._reset_absence()
            if uid == self._held:
                return False
            self._held = bytes(uid)
            return True

    def reset(self) -> None:
        """Forget the held card (e.g. after the reader was reset and lost track)."""
        with self._lock:
            self._held = None
            self._reset_absence()

    def _reset_absence(self) -> None:
        self._absent_polls = 0
        self._absent_since = None
