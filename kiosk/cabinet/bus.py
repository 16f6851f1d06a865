"""The cabinet's lock bus: one thread talks to the lock boards, in order, and another thread
may take a turn on it only while it is idle.

Why a turn from another thread: an intent's unlock follows its commit, and the commit is
the writer thread's (``kiosk.cabinet.writer``). Handing the unlock from the writer to the
bus thread is one more thread to wake on the path from a person's choice to the lock, and
on an idle machine a wake costs a tenth of a millisecond or more (issue 15: the choice to
the unlock byte within 3 ms). So the writer sends the unlock itself when the bus has nothing
queued and nothing running (``try_now``), and leaves it to the bus thread otherwise.

What does not change: the boards hear one frame exchange at a time (every job, queued or
taken as a turn, holds the same lock while it talks), and nothing overtakes work already
queued (a turn is refused while any job is queued or running, so an unlock never jumps
ahead of a ``lock_all`` or an arming asked for before it).
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class LockBus(concurrent.futures.Executor):
    """A one-thread executor for the lock drivers' calls, with ``try_now`` for an idle bus."""

    def __init__(self, name: str = "lockbus") -> None:
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self._talking = threading.Lock()  # held by whoever exchanges frames on the bus
        self._books = threading.Lock()    # guards the two fields below
        self._queued = 0                  # submitted and not finished
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any,
               **kwargs: Any) -> concurrent.futures.Future[T]:
        """Queue ``fn`` on the bus thread (``loop.run_in_executor`` calls this)."""
        with self._books:
            if self._closed:
                raise RuntimeError("the lock bus is shut down")
            self._queued += 1
        try:
            return self._thread.submit(self._talk, fn, args, kwargs)
        except BaseException:
            self._finished()
            raise

    def _talk(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        try:
            with self._talking:
                return fn(*args, **kwargs)
        finally:
            self._finished()

    def _finished(self) -> None:
        with self._books:
            self._queued -= 1

    def try_now(self, fn: Callable[..., object], *args: Any) -> bool:
        """Call ``fn(*args)`` on this thread, now, if the bus is idle (nothing queued, nothing
        running, not shut down): True once it returned; its exception is raised here. False,
        without calling it, if the bus is busy: the caller queues it instead."""
        with self._books:
            if self._closed or self._queued or not self._talking.acquire(blocking=False):
                return False
        try:
            fn(*args)
        finally:
            self._talking.release()
        return True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more jobs or turns; ``wait``: until the queued ones have run."""
        with self._books:
            self._closed = True
        self._thread.shutdown(wait=wait, cancel_futures=cancel_futures)
