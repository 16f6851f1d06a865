"""PDF reports rendered in a child process, so the daemon never holds reportlab.

Rendering a report embeds a subset of the CJK font; reportlab parses the whole font to do
it. Done in the daemon, that left reportlab, Pillow and the parsed font in its memory for
good: the first daily report (K9) took the idle daemon from about 115 MB to 177 MB RSS
(issue 15, item 4; ``bench/bench_memory.py``). A child process gives all of it back to the
system when it exits.

The child (``python -m kiosk.reports.pdf_process``) renders one request after another, so
the reports of one batch (the two languages of a daily report, a test session) parse the
font once; it exits when it has had nothing to do for ``IDLE_S`` seconds (its stdin is
closed) or when the parent dies (the same). Requests go as JSON (report content is JSON
already: it is stored as canonical JSON), the PDF comes back as bytes, both framed by a
length. A missing font is the child's ``ReportError`` and is raised here with its message,
so callers see the same error as before (``kiosk.reports.store.render_files`` then still
issues the report with its CSVs). A child that dies mid-request is replaced at the next one.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from kiosk.reports.render import Language, Letterhead, ReportError

IDLE_S = 60.0
"""The child exits after this long without a request (and its memory goes with it)."""
OK, REPORT_ERROR, FAILED = 0, 1, 2
"""The status byte in front of each answer."""
_ROOT = Path(__file__).resolve().parent.parent.parent
"""The folder holding the ``kiosk`` package: the child imports the same code as the parent."""
_LENGTH = struct.Struct(">I")


def _write(stream: IO[bytes], payload: bytes, status: int | None = None) -> None:
    if status is not None:
        stream.write(bytes([status]))
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _read(stream: IO[bytes]) -> bytes:
    (size,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
    return _read_exactly(stream, size)


class _Renderer:
    """The parent's handle on the child: one request at a time, reaped when idle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._reaper: threading.Timer | None = None

    def render(self, request: bytes) -> bytes:
        with self._lock:
            if self._reaper is not None:
                self._reaper.cancel()
            if self._child is not None and self._child.poll() is not None:
                self._stop_locked()  # it died since the last report: close its pipes
            child = self._child if self._child is not None else self._start()
            assert child.stdin is not None and child.stdout is not None
            try:
                _write(child.stdin, request)
                status = _read_exactly(child.stdout, 1)[0]
                answer = _read(child.stdout)
            except (OSError, EOFError) as exc:
                self._stop_locked()
                raise ReportError(f"the PDF renderer stopped (exit {child.poll()}) while "
                                  f"making the report") from exc
            self._reaper = threading.Timer(IDLE_S, self.stop)
            self._reaper.daemon = True
            self._reaper.start()
        if status == OK:
            return answer
        message = answer.decode("utf-8", "replace")
        raise ReportError(message if status == REPORT_ERROR
                          else f"the PDF renderer failed: {message}")

    def _start(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(_ROOT), os.environ.get("PYTHONPATH")) if p)}
        self._child = subprocess.Popen(
            [sys.executable, "-m", "kiosk.reports.pdf_process"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env, cwd=_ROOT)
        return self._child

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        if child.stdin is not None:
            child.stdin.close()  # the child's read sees the end and it exits
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


_renderer = _Renderer()
atexit.register(_renderer.stop)


def stop() -> None:
    """End the renderer's child now (it is started again by the next report)."""
    _renderer.stop()


def render(data: dict[str, Any], lang: Language, *, footer: str = "",
           letterhead: Letterhead | None = None) -> bytes:
    """``kiosk.reports.pdf.render`` in the child process; the same bytes, the same errors."""
    request = json.dumps({
        "data": data, "lang": lang, "footer": footer,
        "letterhead": dataclasses.asdict(letterhead) if letterhead is not None else None,
    }, ensure_ascii=False).encode("utf-8")
    return _renderer.render(request)


def main() -> int:
    """The child: render requests from stdin until it is closed."""
    from kiosk.reports import pdf

    # Ctrl-C at `make run` reaches the whole process group: the parent decides when this
    # child ends (it closes stdin), so the child does not die mid-report with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = sys.stdin.buffer
    # The frames get file descriptor 1 to themselves: anything a library prints goes to stderr
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    while True:
        try:
            request = json.loads(_read(stdin).decode("utf-8"))
        except EOFError:
            return 0
        head = request["letterhead"]
        try:
            blob = pdf.render(request["data"], request["lang"], footer=request["footer"],
                              letterhead=Letterhead(**head) if head is not None else None)
        except ReportError as exc:
            _write(stdout, str(exc).encode("utf-8"), REPORT_ERROR)
        except Exception as exc:  # reported to the parent; the child carries on
            _write(stdout, f"{type(exc).__name__}: {exc}".encode(), FAILED)
        else:
            _write(stdout, blob, OK)


if __name__ == "__main__":
    raise SystemExit(main())
