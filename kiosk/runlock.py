"""One daemon per data folder, and a way for other commands to know one is running.

The daemon holds an exclusive ``flock`` on ``DATA_DIR/daemon.lock`` for its whole life.
The kernel releases it when the process dies, even by SIGKILL or a power cut, so a stale
lock is impossible (unlike a pid file). ``kiosk restore`` asks ``is_running`` before it
replaces the database; a second ``kiosk run`` on the same folder refuses to start instead
of driving the same lock bus twice.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from kiosk.errors import KioskError

LOCK_NAME = "daemon.lock"


class AlreadyRunning(KioskError):
    """Another daemon holds this data folder."""


def lock_path(data_dir: Path) -> Path:
    return data_dir / LOCK_NAME


def hold(data_dir: Path) -> IO[str]:
    """Take the daemon lock; keep the returned file open for as long as the daemon runs."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fh = open(lock_path(data_dir), "a+", encoding="ascii")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise AlreadyRunning(
            f"another kiosk daemon is running on {data_dir} (it holds {lock_path(data_dir)})"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")  # for people; the lock, not the pid, is what counts
    fh.flush()
    return fh


def is_running(data_dir: Path) -> bool:
    """True while a daemon holds the lock of ``data_dir``."""
    path = lock_path(data_dir)
    if not path.exists():
        return False
    with open(path, encoding="ascii") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False
