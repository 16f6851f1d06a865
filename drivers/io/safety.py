"""Drive every registered output to its safe state when the process exits.

A lock coil left energised when the daemon dies (an unhandled exception, a ``sys.exit`` in
some other thread, a test run ending early) burns the coil and leaves a slot open. Every
driver that owns a coil registers itself here; one ``atexit`` hook then calls
``lock_all()`` on whatever is still open.

The registry holds *weak* references: a bank that was closed (or dropped) disappears from
it on its own, so short-lived banks in tests or reconfiguration never accumulate.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import Protocol

log = logging.getLogger(__name__)


class Lockable(Protocol):
    """Anything that can drive all of its outputs to the locked state without raising."""

    def lock_all(self) -> None: ...


_open: weakref.WeakSet[Lockable] = weakref.WeakSet()
_guard = threading.Lock()
_hook_installed = False


def lock_on_exit(device: Lockable) -> None:
    """Make sure ``device.lock_all()`` runs at interpreter exit unless it is released first."""
    global _hook_installed
    with _guard:
        _open.add(device)
        if not _hook_installed:
            atexit.register(lock_everything)
            _hook_installed = True


def release(device: Lockable) -> None:
    """Forget ``device`` (called by ``close()``, which has already locked it)."""
    with _guard:
        _open.discard(device)


def lock_everything() -> None:
    """Call ``lock_all()`` on every registered device; one failure never stops the others."""
    with _guard:
        devices = list(_open)
    for device in devices:
        try:
            device.lock_all()
        except Exception:  # a shutdown handler must run them all (Klipper does the same)
            log.exception("could not lock %r at exit", device)


def registered() -> list[Lockable]:
    """The devices that would be locked at exit now (for tests and diagnostics)."""
    with _guard:
        return list(_open)
