"""Another process holding a SQLite database's write lock until told to let go: what an
operator's ``sqlite3`` shell left in a transaction, or a backup tool, does to the cabinet."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


class WriteLockHolder:
    """The holding process; ``release`` lets the lock go and waits for it to exit."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def release(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return self.process.wait(timeout=10)


@contextmanager
def write_lock_held(database: Path) -> Iterator[WriteLockHolder]:
    """The lock is held once this enters; let go by ``release`` or, at the latest, on exit."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(database)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        yield WriteLockHolder(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
