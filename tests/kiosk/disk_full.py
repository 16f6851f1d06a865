"""A full disk for the cabinet's database, as the tests of storage faults need it.

SQLite's ``max_page_count`` makes the database "full" exactly as a full disk would. It is
set at the start of every transaction, so it reaches every connection as a full disk does,
the one the cabinet's writer thread keeps open included, and lifted the same way afterwards
(the disk has room again).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from rig import Rig
from sqlalchemy import event

from kiosk.audit import NewEvent
from kiosk.errors import AuditError

ROOM_AGAIN_PAGES = 1_073_741_823
"""SQLite's default ``max_page_count``."""


@contextlib.contextmanager
def database_full(rig: Rig) -> Iterator[None]:
    """Every write fails as on a full disk while inside; writes work again after."""
    engine = rig.runtime.engine
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

    def _cap(conn: Any) -> None:
        conn.exec_driver_sql(f"PRAGMA max_page_count={pages}")

    def _room_again(conn: Any) -> None:
        conn.exec_driver_sql(f"PRAGMA max_page_count={ROOM_AGAIN_PAGES}")

    event.listen(engine, "begin", _cap)
    try:
        # Use up the free space the log's pages still have, as a filling disk would: large
        # rows, then smaller, until not even a tiny one fits.
        for pad in (200, 40, 0):
            with pytest.raises(AuditError, match="full"):
                for i in range(10_000):
                    rig.runtime.audit.append(
                        NewEvent(type="test.filler", payload={"i": i, "pad": "x" * pad}))
        yield
    finally:
        event.remove(engine, "begin", _cap)
        event.listen(engine, "begin", _room_again)  # for the rest of the test
