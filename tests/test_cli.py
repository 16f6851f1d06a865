"""The ``kiosk`` command as an operator uses it, run as a real process."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from kiosk.store.migrate import MIGRATIONS


def kiosk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiosk", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    return {"KIOSK_DATA_DIR": str(tmp_path / "var"), "KIOSK_DATABASE_URL": db_url}


@pytest.fixture
def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {"KIOSK_DATA_DIR": str(tmp_path / "var"), "KIOSK_DATABASE_URL": ""}


def test_demo_data_loads_a_tower_and_the_log_verifies(env: dict[str, str]) -> None:
    out = kiosk(env, "demo-data")
    assert out.returncode == 0, out.stderr
    assert "202 keys" in out.stdout and "208 slots" in out.stdout
    again = kiosk(env, "demo-data")
    assert again.returncode == 2 and "already holds people" in again.stderr
    verify = kiosk(env, "audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "OK" in verify.stdout


def _edit_row_with_sqlite3(db: Path, statement: str) -> None:
    """Use the sqlite3 command-line tool where installed (as an operator would), else the module."""
    tool = shutil.which("sqlite3")
    if tool:
        subprocess.run([tool, str(db), statement], check=True)
    else:
        with sqlite3.connect(db) as conn:
            conn.execute(statement)


def test_one_row_changed_with_sqlite3_fails_verify_and_names_the_row(
    sqlite_env: dict[str, str], tmp_path: Path
) -> None:
    assert kiosk(sqlite_env, "demo-data").returncode == 0
    for _ in range(3):
        assert kiosk(sqlite_env, "audit", "checkpoint", "--out", str(tmp_path / "cp.json")).returncode == 0
    db = tmp_path / "var" / "kiosk.db"
    _edit_row_with_sqlite3(db, "UPDATE events SET type = 'daemon.started' WHERE seq = 1")
    verify = kiosk(sqlite_env, "audit", "verify")
    assert verify.returncode == 1
    assert "first bad sequence number 1" in verify.stderr
    assert "seq 1: content does not match its hash" in verify.stderr


def test_exported_checkpoint_catches_a_tail_cut(sqlite_env: dict[str, str], tmp_path: Path) -> None:
    assert kiosk(sqlite_env, "demo-data").returncode == 0
    cp = tmp_path / "cp.json"
    assert kiosk(sqlite_env, "audit", "checkpoint", "--out", str(cp)).returncode == 0
    db = tmp_path / "var" / "kiosk.db"
    _edit_row_with_sqlite3(db, "DELETE FROM events")
    _edit_row_with_sqlite3(db, "DELETE FROM checkpoints")
    _edit_row_with_sqlite3(db, "DELETE FROM audit_heads")
    assert kiosk(sqlite_env, "audit", "verify").returncode == 0  # an empty log looks fine alone
    verify = kiosk(sqlite_env, "audit", "verify", "--checkpoint", str(cp))
    assert verify.returncode == 1
    assert "tail cut" in verify.stderr and "first bad sequence number 1" in verify.stderr


def test_db_commands_and_a_bad_config_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    up = kiosk(env, "db", "upgrade")
    assert up.returncode == 0 and f"schema at {head}" in up.stdout
    assert f"current {head} head {head}" in kiosk(env, "db", "current").stdout
    down = kiosk(env, "db", "downgrade", "base")
    assert down.returncode == 0 and "schema at None" in down.stdout
    bad = kiosk({**env, "KIOSK_AUDIT__CHECKPOINT_EVERY": "0"}, "audit", "verify")
    assert bad.returncode == 2
    assert "audit.checkpoint_every" in bad.stderr and "ge 1" in bad.stderr


def test_admin_unlock_and_confirm_name_the_account_or_refuse(sqlite_env: dict[str, str]) -> None:
    """``kiosk admin unlock|confirm NAME`` act on the named account on the device, and an
    unknown name is a clear one-line refusal (issue 16: an admin made over the API waits
    for a second admin's confirmation; on a one-admin cabinet the device console gives it)."""
    made = subprocess.run([sys.executable, "-m", "kiosk", "admin", "create", "ops",
                           "--password-stdin"], input="correct horse battery\n",
                          env={**os.environ, **sqlite_env}, capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    db = sqlite3.connect(Path(sqlite_env["KIOSK_DATA_DIR"]) / "kiosk.db")
    with db:
        db.execute("UPDATE accounts SET awaiting_confirmation = 1 WHERE username = 'ops'")
    confirmed = kiosk(sqlite_env, "admin", "confirm", "ops")
    assert confirmed.returncode == 0, confirmed.stderr
    assert confirmed.stdout.strip() == "confirmed ops"
    assert db.execute("SELECT awaiting_confirmation FROM accounts WHERE username = 'ops'"
                      ).fetchone() == (0,)
    again = kiosk(sqlite_env, "admin", "confirm", "ops")
    assert again.returncode != 0 and "not awaiting confirmation" in again.stderr
    unlocked = kiosk(sqlite_env, "admin", "unlock", "ops")
    assert unlocked.returncode == 0 and unlocked.stdout.strip() == "unlocked ops"
    unknown = kiosk(sqlite_env, "admin", "unlock", "nobody")
    assert unknown.returncode != 0 and "no account 'nobody'" in unknown.stderr
    db.close()
