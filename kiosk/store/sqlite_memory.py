"""How much memory SQLite's own allocator holds in this process.

Why: the daemon's RSS grows by a megabyte or two over its first thousands of draws and then
stays level (issue 15, item 4, ``bench/bench_memory.py``). Most of that is SQLite's page
caches filling towards their cap, one cache per open connection, which no Python-level
tool sees (``tracemalloc`` counts Python's allocations only). SQLite counts its own:
``sqlite3_memory_used()``. The ``sqlite3`` module does not expose it, so it is read through
``ctypes`` from the very library the ``_sqlite3`` extension is linked to (looking a symbol up
through the extension's handle searches its dependencies too), never from a second copy of
SQLite that would count nothing.
"""

from __future__ import annotations

import ctypes
import functools
import logging

log = logging.getLogger("kiosk.store")


@functools.cache
def _library() -> ctypes.CDLL | None:
    try:
        import _sqlite3

        lib = ctypes.CDLL(_sqlite3.__file__)
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        lib.sqlite3_memory_used.argtypes = []
    except (ImportError, OSError, AttributeError) as exc:  # a build that hides the symbol
        log.debug("SQLite's memory counter is not reachable: %s", exc)
        return None
    return lib


def sqlite_memory_used() -> int | None:
    """Bytes SQLite's allocator holds now in this process (page caches, schemas,
    statements), or None where the library's counter cannot be reached."""
    lib = _library()
    return None if lib is None else int(lib.sqlite3_memory_used())

