"""The live event feed: bridges ``AuditLog.listeners`` (called in whatever thread committed)
to asyncio subscribers serving ``GET /api/v1/events/stream``.

A notification only wakes subscribers; each then reads the events after its own cursor from
the database. So nothing is lost if wake-ups coalesce, order is the log's order, and a
client that reconnects with ``Last-Event-ID`` resumes exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from kiosk.audit import AppendedEvent


@dataclass(eq=False)
class Subscriber:
    loop: asyncio.AbstractEventLoop
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class EventFeed:
    """Thread-safe fan-out of "the log grew" to every open stream."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[Subscriber] = set()

    def notify(self, stored: AppendedEvent) -> None:
        """``AuditLog`` listener: may run in any thread, must never block or raise."""
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            try:
                sub.loop.call_soon_threadsafe(sub.wake.set)
            except RuntimeError:  # the subscriber's loop has closed
                self._drop(sub)

    @contextmanager
    def subscribe(self) -> Iterator[Subscriber]:
        sub = Subscriber(asyncio.get_running_loop())
        with self._lock:
            self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)
