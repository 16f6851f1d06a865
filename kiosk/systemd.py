"""Talking to systemd: readiness, status, stopping and the watchdog (sd_notify protocol).

The protocol is one datagram of ``KEY=value`` lines sent to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a name starting with ``@`` is in the abstract namespace). It is small
enough to speak directly, so the daemon needs no libsystemd binding: on a machine without
systemd (a laptop, the tests) ``$NOTIFY_SOCKET`` is unset and every call does nothing.

The watchdog keep-alive is sent *from the asyncio event loop* on purpose: a loop that is
blocked or hung stops the keep-alives, systemd kills and restarts the daemon, and start-up
drives every lock locked again (the Kerong boards also relock on their own after a pulse).
A keep-alive thread would keep a wedged cabinet looking healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("kiosk.systemd")


def _address(name: str) -> str | bytes:
    """``@name`` is an abstract socket: on the wire its first byte is NUL."""
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


class Notifier:
    """Sends sd_notify messages; a no-op when the process was not started by systemd.

    Send failures are logged, never raised: the cabinet must keep working if systemd's
    socket goes away (e.g. during ``systemctl daemon-reexec``).
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.socket_name = env.get("NOTIFY_SOCKET") or None
        self.watchdog_interval = _watchdog_interval(env)
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.socket_name is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one datagram; True when it was sent."""
        if self.socket_name is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)  # a full socket must not block the loop
            self._sock.sendto("\n".join(lines).encode(), _address(self.socket_name))
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self.socket_name, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def keepalive(self) -> bool:
        return self.notify("WATCHDOG=1")

    async def watchdog(self) -> None:
        """Send ``WATCHDOG=1`` at half the watchdog interval until cancelled.

        Returns at once when systemd asked for no watchdog, so callers can always start it.
        """
        if self.watchdog_interval is None or not self.enabled:
            return
        period = self.watchdog_interval / 2
        while True:
            self.keepalive()
            await asyncio.sleep(period)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds from ``$WATCHDOG_USEC``, honouring ``$WATCHDOG_PID`` as sd_watchdog_enabled does.

    ``WATCHDOG_PID`` names the process the watchdog is meant for; a child that inherited the
    variables (e.g. a subprocess) must not send keep-alives on its parent's behalf.
    """
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not an integer", raw)
        return None
    return usec / 1_000_000 if usec > 0 else None
