"""The cabinet's one writer thread: every database write of the cabinet runs here, in order.

Why: a write on the asyncio loop that meets a locked database (an operator's ``sqlite3``
shell in a transaction, a backup, a slow SD card) blocks for the whole busy timeout, and the
screen, the sensor scan and the API freeze with it (issue 15, item 2). Here the loop hands
each write to one thread that owns the writing and awaits the result only where the result
matters; everything else is queued, first in first out, so the log keeps the order in which
the cabinet saw things happen.

Three ways in:

* ``post``: queued and not awaited (an alarm, a denial, an outcome). While the database is
  busy the job is retried until it lands, so nothing the cabinet saw during an outage is
  lost and the events land in the order they were posted; any other error is logged.
* ``run``: queued and awaited, one attempt (a write whose result or failure the person at
  the screen is told).
* ``durable``: like ``run`` but given up, and then never committed, if it has not committed
  within ``within_s`` (``StorageBusy``). The intent of an opening uses it: no lock moves
  until its intent is durable, and a cabinet facing a locked database says so within
  seconds instead of holding the screen (K2, K10). ``submit_durable`` may name a ``then``:
  called on this thread the moment the job has committed, before its caller hears of it
  (the opening's first unlock, ``kiosk.cabinet.opening``: no thread to wake between the
  commit and the lock).

Each job runs inside ``kiosk.services.tx.write`` (one write transaction; the log's
listeners hear of its events after the commit), so the single write paths
(``kiosk.records.record_loan``/``record_return``, ``kiosk.services.alarms.raise_alarm``,
``AuditLog.append_in``) are unchanged: they are simply called from this thread.

The thread keeps one database connection of its own rather than taking one from the pool
for each job. SQLite keeps a page cache per connection and drops it when another connection
has written; as nearly every write is this thread's, its connection's cache stays valid, and
an intent's transaction took half a millisecond less (issue 15: it is on the path from a
person's choice to the lock). A connection that failed in any other way than "busy" is
closed and a new one opened for the next job.

That connection also folds SQLite's write-ahead log back into the database itself, at quiet
moments (``checkpoint_wal``, and after ``IDLE_FOLD_S`` with nothing to write), instead of
inside whichever commit crosses SQLite's threshold, an intent's as likely as any
(``kiosk.store.wal``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog
from kiosk.errors import AuditError
from kiosk.services import tx
from kiosk.store import wal
from kiosk.store.db import is_busy

log = logging.getLogger("kiosk.cabinet.writer")

T = TypeVar("T")
Work = Callable[[Session], T]

RETRY_EVERY_S = 0.2
IDLE_FOLD_S = 0.5
"""Nothing to write for this long after a commit: the thread checkpoints the WAL."""


class StorageBusy(AuditError):
    """A durable write did not commit in time (database locked or too slow); it never will."""


class _Abandoned(Exception):
    """Raised inside the writer thread to roll back a durable write its caller gave up on."""


class _Ticket:
    """Decides, once, between the writer committing a durable job and its caller giving up.

    The writer ``claim``s before its commit and holds the claim through it; the caller may
    ``abandon`` only a job not claimed yet. So a durable job either commits and its caller
    hears of it, or is rolled back: never committed behind the back of a caller who already
    told the person "storage fault"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.claimed = False
        self.abandoned = False
        self._held = False

    def claim(self) -> bool:
        """Writer thread, before the commit: True (and held until ``release``) unless given up."""
        self._lock.acquire()
        if self.abandoned:
            self._lock.release()
            return False
        self.claimed = self._held = True
        return True

    def release(self) -> None:
        """Writer thread, after the commit (or its failure)."""
        if self._held:
            self._held = False
            self._lock.release()

    def abandon(self) -> bool:
        """True: given up, the job will not commit. False: it is committing or committed."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self.claimed:
                return False
            self.abandoned = True
            return True
        finally:
            self._lock.release()


@dataclass(eq=False)
class _Job:
    work: Work[Any] | None  # None: a marker (``drain``), no transaction
    what: str
    retry: bool = False
    ticket: _Ticket | None = None
    then: Callable[[], None] | None = None  # after the commit, on the writer thread
    fold: bool = False  # a WAL checkpoint (``Writer.checkpoint_wal``), no transaction
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


_STOP = _Job(None, "stop")


@dataclass(eq=False)
class Durable(Generic[T]):
    """A durable job on its way (``Writer.submit_durable``). ``committed`` resolves with the
    work's result once it has committed, or fails (also when given up: never committed)."""

    committed: concurrent.futures.Future[T]
    ticket: _Ticket
    what: str


class Writer:
    """One thread that owns the cabinet's database writes (see the module docstring)."""

    def __init__(self, audit: AuditLog, *, name: str = "kiosk-writer",
                 retry_every_s: float = RETRY_EVERY_S, idle_fold_s: float = IDLE_FOLD_S) -> None:
        self.audit = audit
        self.retry_every_s = retry_every_s
        self.idle_fold_s = idle_fold_s
        self._unfolded = False  # committed since the last WAL checkpoint (thread's own)
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._submitted = 0
        self._done = 0
        self._stalled = False
        self._closing = threading.Event()
        self._connection: Connection | None = None  # the thread's own; see the docstring
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- from the loop
    def post(self, work: Work[Any], what: str) -> concurrent.futures.Future[Any]:
        """Queue ``work``; it lands when the database lets it (retried while busy)."""
        return self._submit(_Job(work, what, retry=True))

    async def run(self, work: Work[T], what: str = "write") -> T:
        """Queue ``work`` and await its result (one attempt; its error is raised here)."""
        result: T = await asyncio.wrap_future(self._submit(_Job(work, what)))
        return result

    async def durable(self, work: Work[T], *, within_s: float, what: str = "intent") -> T:
        """Queue ``work`` and await its commit for at most ``within_s`` seconds; past that it
        is given up (``StorageBusy``) and will never commit."""
        return await self.settle(self.submit_durable(work, what), within_s)

    def submit_durable(self, work: Work[T], what: str = "intent", *,
                       then: Callable[[], None] | None = None) -> Durable[T]:
        """Queue ``work`` as a durable job and return at once; ``settle`` awaits its commit
        on the loop. ``then`` is called on the writer thread right after the commit and
        before ``Durable.committed`` resolves, only if it committed; an exception it raises
        is logged, never turned into the job's failure (the job did commit)."""
        ticket = _Ticket()
        return Durable(self._submit(_Job(work, what, ticket=ticket, then=then)), ticket, what)

    async def settle(self, job: Durable[T], within_s: float) -> T:
        """Await a ``submit_durable`` job's commit for at most ``within_s`` seconds; past that
        it is given up (``StorageBusy``) and will never commit."""
        waiting = asyncio.wrap_future(job.committed)
        try:
            result: T = await asyncio.wait_for(asyncio.shield(waiting), within_s)
            return result
        except TimeoutError:
            if not job.ticket.abandon():
                return await waiting  # it is committing right now: its result stands
            waiting.add_done_callback(_swallow)
            raise StorageBusy(f"{job.what} not durable within {within_s:g} s "
                              "(database busy)") from None

    def checkpoint_wal(self) -> None:
        """The cabinet has gone quiet (a visit ended: the next person's choice is seconds
        away): fold the WAL into the database now, in turn behind what is queued, so that
        the next intent neither pays for a checkpoint nor writes the WAL's header
        (``kiosk.store.wal``). Not awaited; nothing is lost if it cannot run."""
        if not self._closing.is_set():
            self._submit(_Job(None, "wal checkpoint", fold=True))

    @property
    def stalled(self) -> bool:
        """True while a queued write waits for a busy database."""
        return self._stalled

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        return self._submitted - self._done

    async def drain(self, within_s: float | None = None) -> bool:
        """Wait until everything queued so far has landed (or failed); False if it has not
        within ``within_s`` seconds. Returns at once while the writer is stalled."""
        if self.pending == 0:
            return True
        if within_s is not None and self._stalled:
            return False
        marker = asyncio.wrap_future(self._submit(_Job(None, "drain")))
        try:
            await asyncio.wait_for(asyncio.shield(marker), within_s)
        except TimeoutError:
            self._stalled = True  # the thread clears it once a write lands
            return False
        return True

    async def aclose(self, within_s: float = 10.0) -> None:
        """Let the queue land for up to ``within_s`` seconds, then stop the thread (a write
        still waiting for a busy database after that is given up, and logged)."""
        if self._closing.is_set():
            return
        await self.drain(within_s)
        self._closing.set()
        self._queue.put(_STOP)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, within_s)

    def _submit(self, job: _Job) -> concurrent.futures.Future[Any]:
        if self._closing.is_set():
            raise AuditError(f"the cabinet's writer is closed: {job.what} not written")
        self._submitted += 1
        self._queue.put(job)
        return job.future

    # ----------------------------------------------------------------- the thread
    def _loop(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=self.idle_fold_s if self._unfolded else None)
            except queue.Empty:  # quiet since the last commit
                self._fold()
                continue
            if job is _STOP:
                self._drop_connection()
                return
            try:
                if job.future.set_running_or_notify_cancel():
                    try:
                        job.future.set_result(self._execute(job))
                    except BaseException as exc:  # handed to the caller (or logged below)
                        job.future.set_exception(exc)
                        if job.retry:
                            log.error("write lost: %s: %s", job.what, exc)
            finally:
                self._done += 1

    def _execute(self, job: _Job) -> Any:
        if job.fold:
            self._fold()
        if job.work is None:
            return None
        ticket = job.ticket
        if ticket is not None and ticket.abandoned:
            raise _Abandoned(job.what)
        warned = reconnected = False
        while True:
            try:
                if self._connection is None:
                    self._connection = self.audit.engine.connect()
                    wal.hold_back(self._connection)
                try:
                    with tx.write(self.audit, connection=self._connection,
                                  committed=_guarded(job.then, job.what)) as session:
                        result = job.work(session)
                        if ticket is not None and not ticket.claim():
                            raise _Abandoned(job.what)
                finally:
                    if ticket is not None:
                        ticket.release()
                if warned:
                    log.warning("database free again: %s written", job.what)
                self._stalled = False
                self._unfolded = True
                return result
            except OperationalError as exc:
                if not is_busy(exc):
                    self._drop_connection()
                    if exc.connection_invalidated and not reconnected:
                        reconnected = True  # e.g. PostgreSQL restarted: once more, anew
                        continue
                if not (job.retry and is_busy(exc)) or self._closing.is_set():
                    raise
                if not warned:
                    log.warning("database busy: %s queued until it is free (%s)", job.what, exc)
                    warned = True
                self._stalled = True
                self._closing.wait(self.retry_every_s)

    def _fold(self) -> None:
        """A passive WAL checkpoint on this thread's connection (``kiosk.store.wal``); one
        that fails is logged and tried again after the next commit."""
        self._unfolded = False
        if self._connection is None:
            return
        try:
            folded = wal.fold(self._connection)
        except Exception as exc:  # a checkpoint is housekeeping: the next one catches up
            if is_busy(exc):
                log.debug("WAL checkpoint put off: %s", exc)
                return
            log.warning("WAL checkpoint not done: %s", exc)
            self._drop_connection()
            return
        if folded is not None and folded.folded_pages < folded.wal_pages:
            log.debug("WAL checkpoint partial (a reader is behind): %s", folded)

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                wal.give_back(connection)
            except Exception as exc:  # broken: not to be handed to anyone else as it is
                log.debug("writer connection's checkpoint setting not restored: %s", exc)
                connection.invalidate()
            try:
                connection.close()
            except Exception as exc:  # already broken: nothing more to release
                log.debug("writer connection not closed cleanly: %s", exc)


def _guarded(then: Callable[[], None] | None, what: str) -> Callable[[], None] | None:
    """``then`` made safe to call after a commit: its error is logged, not raised."""
    if then is None:
        return None

    def call() -> None:
        try:
            then()
        except Exception:  # the commit stands; its caller decides from what ``then`` left
            log.exception("after %s committed", what)
    return call


def _swallow(future: asyncio.Future[Any]) -> None:
    """An abandoned durable job's outcome is nobody's business any more (no warning)."""
    if not future.cancelled():
        future.exception()
