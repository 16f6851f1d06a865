"""Storage faults said plainly: a full disk, a read-only or failing disk, a locked database.

Why (issue 16, item 11): these end in a driver's exception whose message is buried in a
traceback ("sqlite3.OperationalError: database or disk is full" under the SQL it was
running). An administrator needs one line that says what failed and what to look at; the
API needs to answer 503 (retry later, nothing was changed) instead of 500 (a bug).
"""

from __future__ import annotations

import errno

from sqlalchemy.exc import OperationalError

_KNOWN = (
    ("disk is full", "the disk is full"),
    ("no space left", "the disk is full"),
    ("could not extend file", "the disk is full"),
    ("disk i/o error", "the disk reported an I/O error"),
    ("readonly database", "the database file is read-only"),
    ("read-only", "the database file is read-only"),
    ("database is locked", "another process holds the database lock"),
    ("unable to open database file", "the database file cannot be opened"),
)
_ERRNO = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EIO: "the disk reported an I/O error",
    errno.EROFS: "the file system is read-only",
}


def storage_fault(exc: BaseException) -> str | None:
    """What failed, in a few words, when ``exc`` (or what it wraps) is a storage fault;
    None for anything else (a programming error stays a 500 with its traceback)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _ERRNO:
            where = f" ({current.filename})" if current.filename else ""
            return f"{_ERRNO[current.errno]}{where}"
        if isinstance(current, OperationalError):
            text = str(current.orig).lower()
            for needle, said in _KNOWN:
                if needle in text:
                    return f"the database could not be written: {said}"
        current = current.__cause__ or current.__context__
    return None
