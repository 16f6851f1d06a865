"""A throw-away PostgreSQL server for the test suite.

``make test`` runs the suite on PostgreSQL as well as SQLite when ``CI=true`` or
``KIOSK_TEST_POSTGRES=1``. The server binaries come from Debian's packages (installed
here when missing and we are root), the cluster is initdb'd into a temporary folder,
listens on a loopback port only, and is stopped and deleted afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.ports import free_port


def wanted() -> bool:
    """PostgreSQL too under CI or KIOSK_TEST_POSTGRES=1; KIOSK_TEST_POSTGRES=0 says no even
    under CI (the shifted-clock pass of `make test` runs on SQLite only)."""
    choice = os.environ.get("KIOSK_TEST_POSTGRES")
    if choice in ("0", "1"):
        return choice == "1"
    return os.environ.get("CI", "").lower() == "true"


def _bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _install() -> Path:
    bindir = _bindir()
    if bindir is not None:
        return bindir
    if os.geteuid() != 0:
        raise RuntimeError("PostgreSQL server binaries are missing: apt-get install postgresql")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
        check=True,
        env=env,
    )
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError("postgresql installed but no initdb found under /usr/lib/postgresql")
    return bindir


@contextmanager
def postgres_server(options: str = "") -> Iterator[str]:
    """Start a private PostgreSQL cluster; yield a SQLAlchemy URL to an empty database.

    ``options``: more ``-c name=value`` server settings (the fleet bench's bulk load)."""
    bindir = _install()
    root = os.geteuid() == 0
    workdir = Path(tempfile.mkdtemp(prefix="kiosk-pg-"))
    datadir = workdir / "data"
    prefix: list[str] = []
    if root:
        # initdb refuses to run as root; the Debian package made a 'postgres' account.
        shutil.chown(workdir, "postgres", "postgres")
        workdir.chmod(0o700)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-U",
            "kiosk",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        check=True,
        capture_output=True,
    )
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -k {workdir} -c fsync=off {options}"
    subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(datadir),
            "-o",
            opts,
            "-w",
            "-l",
            str(workdir / "server.log"),
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [
                str(bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "kiosk",
                "kiosk_test",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://kiosk@127.0.0.1:{port}/kiosk_test"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)
