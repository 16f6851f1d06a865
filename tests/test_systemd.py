"""sd_notify and the watchdog, against a notify socket of the test's own (no systemd needed).

Timing is never asserted exactly: keep-alives are counted in windows with wide bounds, and
the "blocked loop sends nothing" check drains the socket *inside* the blocking call, where
no keep-alive can possibly be sent, so it cannot flake.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiosk.systemd import Notifier
from tests.ports import free_port

PERIOD_USEC = 200_000  # keep-alives every 0.1 s


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A bound AF_UNIX datagram socket; a short /tmp path because sun_path holds 108 bytes."""
    folder = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    try:
        yield sock, path
    finally:
        sock.close()
        os.unlink(path)
        os.rmdir(folder)


def drain(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket, without waiting for more."""
    got: list[str] = []
    while True:
        try:
            got.append(sock.recv(4096).decode())
        except BlockingIOError:
            return got


def keepalives(messages: list[str]) -> int:
    return sum(1 for m in messages if m == "WATCHDOG=1")


def wait_for(sock: socket.socket, predicate: str, timeout: float) -> list[str]:
    """Collect datagrams until one contains ``predicate`` (or fail after ``timeout``)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += drain(sock)
        if any(predicate in m for m in seen):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"no {predicate!r} within {timeout} s; got {seen}")


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False and notifier.keepalive() is False
    asyncio.run(asyncio.wait_for(notifier.watchdog(), 5))  # returns at once, never loops


def test_ready_status_and_stopping_arrive(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.ready("cabinet cab-01 serving")
    assert notifier.status("bus down")
    assert notifier.stopping()
    assert drain(sock) == ["READY=1\nSTATUS=cabinet cab-01 serving", "STATUS=bus down",
                           "STOPPING=1"]
    notifier.close()


def test_abstract_socket_names_work() -> None:
    name = f"@kiosk-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name[1:].encode())
    sock.setblocking(False)
    try:
        assert Notifier({"NOTIFY_SOCKET": name}).ready()
        assert drain(sock) == ["READY=1"]
    finally:
        sock.close()


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.keepalive() is False


def test_watchdog_for_another_pid_is_off(notify_socket: tuple[socket.socket, str]) -> None:
    _, path = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    assert Notifier(env).watchdog_interval is None
    env["WATCHDOG_PID"] = str(os.getpid())
    assert Notifier(env).watchdog_interval == 30.0


async def test_keepalives_at_half_the_interval_stop_while_the_loop_is_blocked(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": str(PERIOD_USEC)})
    assert notifier.watchdog_interval == 0.2
    task = asyncio.create_task(notifier.watchdog())
    try:
        # Cadence: one every 0.1 s, so about 10 in a 1 s window. sleep() never returns
        # early, so more than 11 is impossible; the lower bound leaves room for a slow box.
        drain(sock)
        await asyncio.sleep(1.0)
        count = keepalives(drain(sock))
        assert 3 <= count <= 12, count

        # A hung loop: time.sleep inside the loop's thread. Whatever was sent before is
        # drained first, inside the same blocking call, so anything found afterwards would
        # have been sent while the loop could not run: there must be nothing.
        def hang() -> list[str]:
            drain(sock)
            time.sleep(1.0)  # five keep-alive periods
            return drain(sock)

        assert hang() == []

        # Unblocked: the keep-alives resume by themselves.
        await asyncio.sleep(0.5)
        resumed = keepalives(drain(sock))
        assert resumed >= 1
    finally:
        task.cancel()
        notifier.close()


def test_daemon_reports_ready_keeps_alive_and_stopping(
    notify_socket: tuple[socket.socket, str], tmp_path: Path,
) -> None:
    """The real ``kiosk run`` (simulated hardware) under a fake systemd."""
    sock, path = notify_socket
    env = {
        **os.environ,
        "NOTIFY_SOCKET": path,
        "WATCHDOG_USEC": str(PERIOD_USEC),
        "KIOSK_DATA_DIR": str(tmp_path / "var"),
        "KIOSK_DATABASE_URL": "",
        "KIOSK_ADMIN_PORT": str(free_port()),
        "KIOSK_KIOSK_PORT": str(free_port()),
        "KIOSK_LOG_LEVEL": "WARNING",
    }
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "run"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = wait_for(sock, "READY=1", timeout=90)
        assert any(m.startswith("STATUS=starting") for m in seen)
        seen = wait_for(sock, "WATCHDOG=1", timeout=30)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, output
        assert "STOPPING=1" in "\n".join(drain(sock))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
