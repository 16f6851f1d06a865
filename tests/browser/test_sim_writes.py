"""``GET /sim/writes``: a script driving the simulated cabinet reads the database only once
what the screen showed is committed (issue 15 moved the cabinet's writes to a writer thread,
so the screen moves on while a write is still queued).

A real ``kiosk run`` daemon, a real second process holding the SQLite file locked: the
refusal of an unknown card is on the screen at once, its ``access.denied`` event is still
queued while the lock is held (``settled`` false, not a silent "done"), and it is in the
file once the lock goes and the endpoint says ``settled``.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from browser_rig import Daemon
from lock_holder import write_lock_held

UNKNOWN_CARD = "5EE5A11D"


def denials_of(daemon: Daemon, uid: str) -> int:
    with contextlib.closing(daemon.db(settled=False)) as db:
        row = db.execute("SELECT count(*) FROM events WHERE type = 'access.denied' "
                         "AND payload LIKE ?", (f"%{uid}%",)).fetchone()
    return int(row[0])


def refusal_shown(daemon: Daemon, timeout: float = 5.0) -> dict[str, Any]:
    """The screen once the reader's next poll has passed the card to the cabinet and the
    refusal is up (an earlier test's message may still be showing until then)."""
    end = time.monotonic() + timeout
    while ((shown := daemon.screen())["message"] or {}).get("code") != "card_unknown" \
            and time.monotonic() < end:
        time.sleep(0.05)
    return shown


def test_writes_pending_behind_a_locked_database_are_reported_then_settle(
        daemon: Daemon) -> None:
    daemon.post("/kiosk/api/cancel")
    assert daemon.get("/sim/writes")["settled"] is True
    before = denials_of(daemon, UNKNOWN_CARD)
    with write_lock_held(daemon.data_dir / "kiosk.db") as holder:
        daemon.tap(UNKNOWN_CARD)
        shown = refusal_shown(daemon)
        assert shown["message"]["code"] == "card_unknown", shown  # the lock holds no screen
        assert shown["message"]["level"] == "error", shown
        waited = daemon.get("/sim/writes?within_s=0.5")
        assert waited["settled"] is False and waited["pending"] >= 1, waited
        assert denials_of(daemon, UNKNOWN_CARD) == before  # not in the file yet
        assert holder.release() == 0
    assert daemon.get("/sim/writes")["settled"] is True
    assert denials_of(daemon, UNKNOWN_CARD) == before + 1
    daemon.post("/kiosk/api/cancel")
