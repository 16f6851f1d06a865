"""Keep Python's full garbage collections off the tap path.

A daemon that has imported SQLAlchemy, FastAPI and the key catalogue holds a few hundred
thousand long-lived objects. Every full (generation 2) collection walks all of them: about
90 ms on the build machine, and it lands in the middle of whichever tap allocated the
object that tipped the threshold (bench_tap: tap p99 107 ms with, 15 ms without). Frozen
objects are skipped by the collector but still freed by reference counting. The price: a
reference cycle that was alive at the freeze and dies later is never collected. Start-up
objects live as long as the daemon, so that is a small one-off amount, not a growth.

``collections_paused`` keeps the young generations' collections off one critical path too:
a person's choice allocates more than the 700 objects that start a collection, so nearly
every choice paid for one (about 0.1 ms, now and then a full one of a millisecond) on its
way to the lock (issue 15: the choice to the unlock byte within 3 ms). Paused, they run
right after the unlock instead, fewer and batched.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_pause_lock = threading.Lock()
_pauses = 0
_resume = False  # whether collection was on when the first pause began


def freeze_startup_heap() -> int:
    """Collect once, then move every object alive now into the permanent generation.

    Call when start-up is over (the servers accept connections); returns how many objects
    were frozen, for the log.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@contextlib.contextmanager
def collections_paused() -> Iterator[None]:
    """No cyclic garbage collection, on any thread, while the block runs (reference counting
    still frees everything else). Pauses nest and overlap across threads and coroutines:
    collection resumes when the last one ends, and only if it was on before the first."""
    global _pauses, _resume
    with _pause_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()
