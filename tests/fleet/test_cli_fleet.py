"""``kiosk hub`` and ``kiosk fleet`` as an operator runs them (real processes, no hub)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def kiosk(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "KIOSK_DATA_DIR": str(tmp_path / "var"), "KIOSK_DATABASE_URL": "",
             **env})


def test_the_hub_refuses_sqlite_with_a_clear_message(tmp_path: Path) -> None:
    done = kiosk(tmp_path, "hub")
    assert done.returncode == 2
    assert "PostgreSQL only" in done.stderr and "KIOSK_DATABASE_URL" in done.stderr
    assert not (tmp_path / "var" / "kiosk.db").exists(), "nothing created on the way out"


def test_a_cabinet_without_a_hub_reports_no_fleet_and_enrol_names_an_unreachable_hub(
        tmp_path: Path) -> None:
    status = kiosk(tmp_path, "fleet", "status")
    assert status.returncode == 0 and json.loads(status.stdout) == {"enrolled": False}
    done = kiosk(tmp_path, "fleet", "enrol", "http://127.0.0.1:9/hub/v1", "ABCD-EFGH-JKLM")
    assert done.returncode == 1
    assert "cannot reach the hub at http://127.0.0.1:9/hub/v1" in done.stderr
    again = kiosk(tmp_path, "fleet", "status")
    assert json.loads(again.stdout) == {"enrolled": False}, "a failed enrolment pins nothing"
