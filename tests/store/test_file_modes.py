"""Issue 16, item 10: outside systemd (no StateDirectoryMode), the daemon itself keeps its
data folder 0700 and the SQLite database, WAL and SHM 0600, whatever the umask: they hold
password hashes and owners' phone numbers (A1)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.audit import NewEvent
from kiosk.config import Settings
from kiosk.runtime import Runtime


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual login-shell umask: new files 0644, new folders 0755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
def test_a_new_data_folder_and_database_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "var"
    runtime = Runtime.open(Settings(data_dir=data, database_url="", cabinet_id="cab-modes"))
    try:
        runtime.audit.append(NewEvent(type="test.tick"))  # a write: the WAL and SHM exist now
        files = [data / "kiosk.db", data / "kiosk.db-wal", data / "kiosk.db-shm"]
        assert all(f.exists() for f in files)
        assert _mode(data) == 0o700
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        runtime.close()


@pytest.mark.usefixtures("umask_022")
def test_a_lax_folder_and_database_from_an_earlier_run_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "var"
    settings = Settings(data_dir=data, database_url="", cabinet_id="cab-modes")
    Runtime.open(settings).close()
    data.chmod(0o755)
    (data / "kiosk.db").chmod(0o644)
    runtime = Runtime.open(settings)
    try:
        runtime.audit.append(NewEvent(type="test.tick"))
        assert _mode(data) == 0o700
        assert _mode(data / "kiosk.db") == 0o600
        assert _mode(data / "kiosk.db-wal") == 0o600
    finally:
        runtime.close()
