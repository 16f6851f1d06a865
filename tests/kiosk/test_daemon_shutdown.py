"""Stopping the daemon while the kiosk page is open (issue 14, item 13): the page's pending
long-poll is answered with the screen, not a 500, and no traceback reaches the log."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from tests.browser.browser_rig import start_daemon


def test_stopping_the_daemon_ends_the_screen_long_poll_cleanly(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, KIOSK_LOG_LEVEL="INFO")
    answer: dict[str, Any] = {}
    try:
        version = daemon.screen()["version"]

        def poll() -> None:  # what the open page does: wait for the next screen
            try:
                answer["status"], answer["body"] = daemon.request(
                    "GET", f"/kiosk/api/screen?since={version}")
            except Exception as exc:  # a broken answer is what the test reports
                answer["status"], answer["body"] = None, repr(exc)

        waiting = threading.Thread(target=poll)
        waiting.start()
        time.sleep(1.0)  # the poll is now parked in the daemon (it waits up to 10 s)
        assert waiting.is_alive()
    finally:
        daemon.stop()
    waiting.join()
    log = daemon.log_path.read_text(encoding="utf-8", errors="replace")
    assert daemon.proc.returncode == 0, log[-3000:]
    assert answer["status"] == 200, answer
    assert answer["body"]["state"] == "idle"
    assert "CancelledError" not in log and "Traceback" not in log, log[-3000:]
