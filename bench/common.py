"""Shared helpers for the benchmarks: percentiles, provenance, dataset sizes, result files.

Every result file says what was measured, on what, and when: the commit (with ``+dirty``
when the tree had uncommitted changes), the machine, the time, and the size of the dataset
the figures were taken on. A figure without those cannot be compared with another, so
``report`` refuses to write one without a dataset description.

``BENCH_RESULTS`` moves the result folder (``make bench-quick`` writes to
``bench/results/quick/`` so a developer's quick loop never overwrites the figures the
README's table is made from).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

HERE = Path(__file__).parent
RESULTS = Path(os.environ.get("BENCH_RESULTS") or HERE / "results")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()} {cpu} ({os.cpu_count()} cores), Python {platform.python_version()}"


def commit() -> str:
    """The commit measured; ``+dirty`` when tracked files differed from it. The result files
    themselves do not count: a bench run after another has rewritten one measures the same
    code."""
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True,
                             check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ":/",
                ":(top,exclude)bench/results")
    return f"{head}+dirty" if dirty else head


def provenance() -> dict[str, Any]:
    return {
        "commit": commit(),
        "machine": machine(),
        "measured_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def describe_database(engine: Engine, name: str) -> dict[str, Any]:
    """The size of the dataset a bench ran on, counted from the database itself."""
    from sqlalchemy.orm import Session

    from kiosk.store.models import Event, Key, Loan, Person, Slot

    with Session(engine) as s:
        counts = {model.__tablename__: s.scalar(select(func.count()).select_from(model))
                  for model in (Person, Key, Slot, Loan, Event)}
    return {"name": name, **counts}


def loans(engine: Engine) -> tuple[int, int]:
    """(all loans, open loans) in the database: a draw bench checks every draw left one loan
    and every return closed it."""
    from sqlalchemy.orm import Session

    from kiosk.store.models import Loan

    with Session(engine) as s:
        total = s.scalar(select(func.count()).select_from(Loan)) or 0
        open_ = s.scalar(select(func.count()).select_from(Loan)
                         .where(Loan.returned_at.is_(None))) or 0
    return total, open_


def rss_mb(pid: int | None = None) -> float:
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(name: str, figures: dict[str, Any], *, dataset: dict[str, Any]) -> None:
    """Print a table and write ``<RESULTS>/<name>.json`` with its provenance and dataset."""
    record = {"bench": name, **provenance(), "dataset": dataset, "figures": figures}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(
        json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"-- {name}  (commit {record['commit']}, dataset {dataset.get('name')}, "
          f"load {record['load_average']})")
    width = max((len(k) for k in figures), default=0)
    for key, value in figures.items():
        shown = f"{value:.3f}" if isinstance(value, float) else value
        print(f"  {key:<{width}}  {shown}")


# ------------------------------------------------------------------ the tap benches' tools
BAUD = 19200
ALL_DAY = {"start": "00:00:00", "end": "24:00", "weekdays": [1, 2, 3, 4, 5, 6, 7],
           "holidays": []}
"""Business hours round the clock: a run after 18:00 or at the weekend measures the same
day-time draw, not a K8 night opening waiting for a duty manager."""


class SpyPort:
    """Delegates to a pyserial port and notes when an unlock went out, two ways.

    * ``unlock_written_at``: the write that carried the 0x31 unlock frame has returned and
      been flushed, i.e. its last byte was handed to the OS (what issue 15 measures as
      "written");
    * ``unlock_on_wire_at``: when that byte's stop bit would leave a real RS-485 line at
      ``baud``. The simulated bus is a TCP socket that takes any number of bytes at once,
      so the spy runs a model of the line: each write starts once it is made and the
      previous bytes have left, and takes 10 bits a byte (start, 8 data, stop).

    The driver may write several frames in one call, so the written bytes are parsed. Every
    frame from ``begin()`` up to and including the unlock is kept (``unlock_frames``): the
    wire time counts all the bytes one unlock costs (the 0x37 coil time as well, sent ahead
    while the intent commits), not only the 0x31 frame. ``first_written_at`` is when the
    first of them was written.
    """

    def __init__(self, port: Any, baud: int = BAUD) -> None:
        from drivers.locks.kerong.codec import CMD_UNLOCK, FrameParser

        self._port = port
        self._unlock_cmd = CMD_UNLOCK
        self._parser = FrameParser
        self.baud = baud
        self.first_written_at = 0.0
        self.unlock_written_at = 0.0
        self.unlock_on_wire_at = 0.0
        self.unlock_frames: list[tuple[int, bytes]] = []
        self._pending: list[tuple[int, bytes]] = []
        self._line_free_at = 0.0

    def begin(self) -> None:
        self._pending = []
        self.first_written_at = 0.0

    def write(self, data: bytes) -> int | None:
        n = self._port.write(data)
        now = time.perf_counter()
        self._line_free_at = max(now, self._line_free_at) + len(data) * 10 / self.baud
        if self.first_written_at == 0.0:
            self.first_written_at = now
        frames, _ = self._parser().feed_all(bytes(data))
        for frame in frames:
            self._pending.append((frame.cmd, frame.encode()))
            if frame.cmd == self._unlock_cmd:
                self._port.flush()
                self.unlock_written_at = time.perf_counter()
                self.unlock_on_wire_at = self._line_free_at
                self.unlock_frames = self._pending
                self._pending = []
        return n

    def wire_ms(self) -> float:
        """Every frame of the last unlock, back to back on the wire at ``baud``."""
        return sum(len(raw) for _, raw in self.unlock_frames) * 10 / self.baud * 1000

    def frames_sent(self) -> str:
        return "+".join(f"0x{cmd:02X}" for cmd, _ in self.unlock_frames)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._port, name)


async def antenna_to_unlock(cabinet: Any, hw: Any, spy: SpyPort, uid: str, key_number: str,
                            taps: int) -> list[float]:
    """Card on antenna → unlock, in ms, ``taps`` times: a key fob tapped by a person already
    signed in (badge tapped, the screen listing their keys) opens its home slot with no
    screen choice between, so the whole path is the MFRC522 chip simulator, the reader
    pump, the policy, the durable intent and the bus. (A fob tapped with nobody signed in
    asks for the returner's badge first, K4.) ``key_number`` is drawn and taken first, by
    the holder of ``uid``."""
    import asyncio

    from sqlalchemy.orm import Session

    from kiosk.store.models import Key, Slot
    from kiosk.wiring import ReaderPump

    await cabinet.tap(uid)
    await cabinet.choose_draw([key_number], "repair")
    with Session(cabinet.engine) as s:
        key = s.scalars(select(Key).where(Key.key_number == key_number)).one()
        home = s.get(Slot, key.home_slot_id)
        assert home is not None and key.fob_tag is not None
        fob, slot = key.fob_tag, home.number
    hw.model.take(slot)
    hw.model.shut_slot(slot)
    await cabinet.tick()
    pump = ReaderPump(hw.reader, cabinet.tap, asyncio.get_running_loop()).start()
    took: list[float] = []
    try:
        for _ in range(taps):
            await cabinet.tap(uid)  # the borrower signed in, not through the reader
            assert cabinet.session.state.value == "choosing", cabinet.screen()["message"]
            spy.unlock_written_at = 0.0
            t0 = time.perf_counter()
            hw.tap(fob, hold_s=0.15)
            while spy.unlock_written_at == 0.0:
                await asyncio.sleep(0.0005)
                if time.perf_counter() - t0 > 5:
                    raise RuntimeError("the fob tap never opened the slot")
            took.append((spy.unlock_written_at - t0) * 1000)
            await cabinet.cancel()
            await asyncio.sleep(0.5)  # fob away long enough for the reader's hold-off
    finally:
        pump.stop()
    return took


def disk_flush_ms(folder: Path, samples: int = 200, *, pause_s: float = 0.0) -> list[float]:
    """The disk's floor under a durable intent: a small write and ``fdatasync`` in
    ``folder``, ``samples`` times (ms). SQLite's commit at ``synchronous=FULL`` waits for at
    least one such flush; no durable intent can be faster.

    ``pause_s``: sleep that long before each flush. Back to back, a virtual disk's flush can
    be ten times faster than one that follows a pause (on this project's machine 0.03 ms
    against 0.9 ms: the host's I/O thread stops polling once idle), and an intent always
    follows a pause: the person reading the reasons."""
    probe = folder / ".flush_probe"
    fd = os.open(probe, os.O_RDWR | os.O_CREAT, 0o600)
    took = []
    try:
        os.ftruncate(fd, 1 << 20)
        os.fsync(fd)
        for i in range(samples):
            if pause_s:
                time.sleep(pause_s)
            t0 = time.perf_counter()
            os.pwrite(fd, b"x" * 256, (i * 4096) % (1 << 20))
            os.fdatasync(fd)
            took.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        probe.unlink()
    return took
