"""Crash harness (issue 7): SIGKILL the cabinet daemon at random points and check what survives.

    python bench/crash_harness.py --kills 30 --seed 1

The physical cabinet must outlive the daemon, so this process owns it: a ``CabinetModel``
stocked from the database and a ``KerongBoardServer`` serving it on ``socket://``. The
daemon is ``bench/crash_child.py`` (production store, audit, cabinet and Kerong driver;
stdin stands in for the badge reader and the touchscreen). This process plays the staff:
badge, choose, take the key out of the compartment that pops open, shut it; tap a key's
fob (or badge and choose) to return one. It SIGKILLs the daemon at a chosen step of a
draw or a return (after a random extra delay, so the kill lands anywhere in the daemon's
handling of that step), during start-up, or while idle. While the daemon is dead the
person finishes what they were doing physically (takes the key from a compartment that
did pop, or walks away; shuts every compartment), then the daemon is restarted.

Latch style: pop-open compartments (``pop_open=True``), what Kerong KR-CU16 boards drive
and what ``kiosk run`` simulates. With solenoid latches the board drops the coil after the
500 ms pulse whatever the host does, so "every lock locked" would hold by construction a
second after any restart, and a key could be taken only within half a second of the
unlock. A popped compartment stays open across a crash, so the person can take a key
while the daemon is dead (the case start-up reconciliation exists for), and the lock check
below has something to find.

After every restart (``ready`` printed, then one second of the daemon running) it checks:

1. ``PRAGMA integrity_check`` is ``ok`` and ``PRAGMA foreign_key_check`` is empty;
2. every event the daemon acknowledged (``ack SEQ HASH TYPE``, written after the commit)
   is in the table with the same hash, in every later life of the daemon;
3. ``verify_log`` passes (chain, head, signed checkpoints);
4. the locks are secure: the restarted daemon sent no unlock frame, no board's coil time
   is above the pulse cap (start-up locks the bus, then commissions the configured pulse
   and reads it back), no compartment is open;
5. loans agree with the sensors: for every slot the sensor equals "the records expect a
   key here" (``records.expected_presence``), and every open loan is a key the harness's
   people hold, borrowed by the person who holds it (each disagreement is a discrepancy);
6. every intent event has exactly one outcome (reconciliation resolved what the crash cut).

It prints the counts, writes ``bench/results/crash.json`` (``--out``) and exits 1 if any
check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # `python bench/crash_harness.py` from anywhere
    sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import provenance  # noqa: E402
from crash_child import CABINET, MAX_PULSE_MS, settings_for  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from drivers.locks.kerong.codec import CMD_UNLOCK, CMD_UNLOCK_ALL, Frame  # noqa: E402
from kiosk import records  # noqa: E402
from kiosk.audit.verify import verify_log  # noqa: E402
from kiosk.demo import load_demo  # noqa: E402
from kiosk.runtime import Runtime  # noqa: E402
from kiosk.store.models import Card, Department, Event, Key, KeyGroup, Loan, Person, Slot, Unit  # noqa: E402
from kiosk.wiring import kerong_slot_map, stocked_slots  # noqa: E402
from simulators.cabinet import CabinetModel  # noqa: E402
from simulators.kerong_board import KerongBoardServer, KerongBoardSim  # noqa: E402

SH = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2026, 11, 27, 10, 0, tzinfo=SH)
"""Friday 10:00: inside business hours, so one badge may draw (no K8 night pairing)."""
CHILD = HERE / "crash_child.py"
RESULTS = HERE / "results"
CHECKPOINT_EVERY = 25
"""Small, so signed checkpoints are written (and verified) across many crashes."""
INTENTS = ("draw.intent", "return.intent", "intake.intent")
REASONS = ("repair", "patrol", "cleaning", "meter", "viewing")

KILL_POINTS: dict[str, tuple[float, float]] = {
    # where the kill lands → (weight, longest extra random delay in seconds)
    "start": (2, 0.0),           # during the start-up scan and reconciliation (delay measured)
    "idle": (1, 0.5),
    "draw:tapped": (1, 0.2),     # session CHOOSING
    "draw:chosen": (3, 0.08),    # 'draw' sent: intent commit, unlock frame, reply in flight
    "draw:popped": (2, 0.1),     # compartment open, key still in
    "draw:taken": (3, 0.7),      # key out, compartment open: scan and loan commit in flight
    "draw:shut": (1, 0.3),
    "return:chosen": (3, 0.08),
    "return:popped": (2, 0.1),
    "return:inserted": (3, 0.7),
    "return:shut": (1, 0.3),
}


class Killed(Exception):
    """The harness killed the daemon at a kill point; unwinds the operation in progress."""


class ChildDied(Exception):
    """The daemon died (or went silent) without the harness killing it: always a failure."""


# --------------------------------------------------------------------------- the world
class RecordingBoardSim(KerongBoardSim):
    """The board simulator, noting when each frame arrived and every unlock frame heard.

    The lock check needs to prove that a restarted daemon moved no latch on its own, and
    the outage needs to know when the dead daemon's last bytes have reached the boards.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unlock_frames: list[tuple[float, int, int]] = []
        self.last_frame_at = 0.0

    def respond(self, frame: Frame) -> list[bytes]:
        now = time.monotonic()
        self.last_frame_at = now
        if frame.cmd in (CMD_UNLOCK, CMD_UNLOCK_ALL):
            self.unlock_frames.append((now, frame.board, frame.channel))
        return super().respond(frame)

    def unlocks_since(self, t: float) -> list[tuple[float, int, int]]:
        return [u for u in list(self.unlock_frames) if u[0] >= t]


@dataclass(frozen=True)
class Staff:
    uid: str
    person_id: uuid.UUID
    name: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class KeyInfo:
    number: str
    slot: int
    fob: str
    group: str


@dataclass
class Op:
    """The operation in progress, so the person can finish it physically after a kill."""

    kind: str  # draw | return
    key: KeyInfo
    person: Staff


# --------------------------------------------------------------------------- the daemon
class Child:
    """One life of the daemon: its process and everything it said on stdout."""

    def __init__(self, harness: Harness, life: int) -> None:
        self.h, self.life = harness, life
        start_at = START + dt.timedelta(seconds=time.monotonic() - harness.t0)
        self.log_path = harness.data_dir / f"child-{life:03d}.log"
        self._log: TextIO = self.log_path.open("w", encoding="utf-8")
        self.spawned_at = time.monotonic()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), "--data-dir", str(harness.data_dir),
             "--board-url", harness.server.url, "--start-at", start_at.isoformat(),
             "--checkpoint-every", str(CHECKPOINT_EVERY)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            bufsize=1, env=env,
        )
        self.replies: queue.Queue[str | None] = queue.Queue()
        self.ready = threading.Event()
        self.ready_at: float | None = None
        self.summary: dict[str, int] = {}
        self.dead = threading.Event()
        self.counts: Counter[str] = Counter()
        """Event type → how many this life acknowledged."""
        self.seen: dict[str, float] = {}
        """Event type → when this life first acknowledged one (start-up milestones)."""
        self._reader = threading.Thread(target=self._read, name=f"child-{life}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            words = raw.split()
            if not words:
                continue
            if words[0] == "ack" and len(words) == 4:
                self.seen.setdefault(words[3], time.monotonic())
                self.counts[words[3]] += 1
                self.h.acknowledged(int(words[1]), words[2], words[3], self.life)
            elif words[0] == "ready":
                self.summary = json.loads(raw.split(" ", 1)[1])
                self.ready_at = time.monotonic()
                self.ready.set()
            elif words[0] in ("ok", "err", "bye"):
                self.replies.put(raw.strip())
        self.dead.set()
        self.replies.put(None)

    def write(self, command: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise ChildDied(f"life {self.life}: stdin closed while sending {command!r}") from None

    def reply(self, command: str, timeout: float = 10.0) -> str:
        try:
            answer = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise ChildDied(f"life {self.life}: no reply to {command!r} in {timeout} s") from None
        if answer is None:
            raise ChildDied(f"life {self.life}: exited (rc {self.proc.wait()}) during {command!r}")
        return answer

    def ask(self, command: str) -> str:
        self.write(command)
        return self.reply(command)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=5)  # every ack already in the pipe is read
        self._close()

    def quit(self, timeout: float = 20.0) -> int:
        self.write("quit")
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self._close()
        return rc

    def _close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._log.close()

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])


# --------------------------------------------------------------------------- the harness
@dataclass
class Stats:
    kills: int = 0
    restarts: int = 0
    draws_started: int = 0
    returns_started: int = 0
    denials: int = 0
    discrepancies: int = 0
    checks: int = 0
    bus_faults: int = 0
    resolved_after_bus_fault: int = 0
    kill_points: Counter[str] = field(default_factory=Counter)
    reconciled: Counter[str] = field(default_factory=Counter)


class Harness:
    def __init__(self, data_dir: Path, seed: int, *, bus_fault_share: float = 0.2,
                 verbose: bool = False, points: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.points = points or []
        """Kill points to use in turn, one per life, instead of random ones (``--points``)."""
        self.cycles = 0
        self.rng = random.Random(seed)
        self.seed = seed
        self.bus_fault_share = bus_fault_share
        self.verbose = verbose
        self.t0 = time.monotonic()
        self.stats = Stats()
        self.failures: list[str] = []
        self.discrepancy_details: list[str] = []
        self._seen_discrepancies: set[str] = set()
        self.acks: dict[int, tuple[str, str, int]] = {}
        self._acks_lock = threading.Lock()
        self._ack_cond = threading.Condition(self._acks_lock)
        self.hand: dict[str, tuple[KeyInfo, Staff]] = {}
        """fob → (key, the person holding it): keys out of the cabinet, physically."""
        self.op: Op | None = None
        self.child: Child | None = None
        self.life = 0
        self.scan_times: list[float] = []
        """Seconds from ``cabinet.started`` to ``ready`` in past lives (scan + reconcile)."""
        self.last_slot: int | None = None
        self.offline: int | None = None
        """The board silent during the current life's start-up, if any."""

        self.settings = settings_for(data_dir, CHECKPOINT_EVERY)
        self.runtime = Runtime.open(self.settings)
        self.runtime.audit.clock = lambda: START.astimezone(dt.UTC)
        load_demo(self.runtime, now=START.astimezone(dt.UTC))
        slots, fobs = stocked_slots(self.runtime)
        self.model = CabinetModel(slots, pop_open=True)
        self.model.load(fobs)
        slot_map = kerong_slot_map(slots)
        boards = max(b for b, _ in slot_map.values()) + 1
        self.sim = RecordingBoardSim(self.model, boards=boards,
                                     slot_map={loc: n for n, loc in slot_map.items()},
                                     answers_unlock=False)
        self.server = KerongBoardServer(self.sim).start()
        self.db_path = data_dir / "kiosk.db"
        with Session(self.runtime.engine) as s:
            self.cabinet_id = records.cabinet_row(s, code=CABINET).id
        self.staff = self._staff()
        self.keys = self._keys()

    # ------------------------------------------------------------------ people and keys
    def _staff(self) -> list[Staff]:
        """Engineers draw unit and public keys, security and cleaning public-area keys
        (the demo's rights; cf. tests/kiosk/test_full_day.py)."""
        wanted = {"ENG": (4, ("UNIT", "PUBLIC")), "SEC": (3, ("PUBLIC",)),
                  "CLN": (2, ("PUBLIC",))}
        out: list[Staff] = []
        with Session(self.runtime.engine) as s:
            for dept, (count, groups) in wanted.items():
                people = s.scalars(select(Person).join(Department).join(Card)
                                   .where(Department.code == dept, Card.kind == "staff")
                                   .order_by(Person.staff_no)).unique().all()[:count]
                out += [Staff(p.cards[0].uid, p.id, p.name, groups) for p in people]
        return out

    def _keys(self) -> list[KeyInfo]:
        """A small pool (16 unit, 8 public keys), so keys go out and come back often."""
        out: list[KeyInfo] = []
        with Session(self.runtime.engine) as s:
            for group, n in (("UNIT", 16), ("PUBLIC", 8)):
                rows = s.execute(
                    select(Key.key_number, Slot.number, Key.fob_tag)
                    .join(KeyGroup, Key.group_id == KeyGroup.id)
                    .join(Slot, Key.home_slot_id == Slot.id)
                    .outerjoin(Unit, Key.unit_id == Unit.id)
                    .where(KeyGroup.code == group, Key.fob_tag.is_not(None),
                           (Unit.id.is_(None)) | (Unit.special.is_(False)))
                    .order_by(Key.key_number).limit(n)).all()
                out += [KeyInfo(number, slot, str(fob), group) for number, slot, fob in rows]
        return out

    # ------------------------------------------------------------------------- acks
    def acknowledged(self, seq: int, digest: str, type_: str, life: int) -> None:
        with self._ack_cond:
            old = self.acks.get(seq)
            if old is not None and old[0] != digest:
                self.fail(f"seq {seq} acknowledged twice with different events: {old[1]} in "
                          f"life {old[2]}, {type_} in life {life}")
            self.acks[seq] = (digest, type_, life)
            self._ack_cond.notify_all()

    def max_ack(self) -> int:
        with self._acks_lock:
            return max(self.acks, default=0)

    def wait_ack(self, type_: str, after: int, timeout: float = 8.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._ack_cond:
            while True:
                if any(seq > after and t == type_ for seq, (_, t, _) in self.acks.items()):
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or (self.child is not None and self.child.dead.is_set()):
                    return False
                self._ack_cond.wait(min(left, 0.1))

    # ---------------------------------------------------------------------- reporting
    def fail(self, what: str) -> None:
        self.failures.append(f"[life {self.life}] {what}")
        print(f"FAIL: [life {self.life}] {what}", flush=True)

    def say(self, what: str) -> None:
        if self.verbose:
            print(f"  {time.monotonic() - self.t0:7.2f}s {what}", flush=True)

    # ---------------------------------------------------------------------- lifecycle
    def spawn(self) -> Child:
        self.life += 1
        self.stats.restarts += self.life > 1
        self.child = Child(self, self.life)
        return self.child

    def start_child(self, offline: int | None = None) -> Child:
        """Start a life and wait for ``ready``. With ``offline``, that board is silent
        until a moment after ``ready``, then answers again (a loose bus cable, a board
        powering up late); the checks wait until the daemon has seen the bus return."""
        self.offline = offline
        if offline is not None:
            self.stats.bus_faults += 1
            self.sim.set_faults(offline_boards={offline})
        child = self.spawn()
        if not child.ready.wait(60):
            raise ChildDied(f"life {child.life}: never ready\n{child.log_tail()}")
        assert child.ready_at is not None
        if "cabinet.started" in child.seen:
            self.scan_times.append(child.ready_at - child.seen["cabinet.started"])
        for k, v in child.summary.items():
            self.stats.reconciled[k] += v
        if offline is not None:
            time.sleep(self.rng.uniform(0.2, 1.0))
            self.sim.clear_faults()
            self.say(f"board {offline} answers again")
            if not self._wait(lambda: "lock.bus_restored" in child.seen or child.dead.is_set(), 20):
                self.fail(f"the daemon never noticed board {offline} answering again")
            self._wait(lambda: child.counts["cabinet.reconciled"] > 0, 5)
            self.stats.resolved_after_bus_fault += (child.counts["draw.resolved"]
                                                    + child.counts["return.resolved"])
        return child

    def _die_starting(self, offline: int | None) -> None:
        """SIGKILL during start-up, aimed at the scan and reconciliation: a random moment
        after ``cabinet.started`` within the usual time from there to ``ready``."""
        if offline is not None:
            self.sim.set_faults(offline_boards={offline})
        child = self.spawn()
        typical = sorted(self.scan_times)[len(self.scan_times) // 2] if self.scan_times else 0.5
        self._wait(lambda: "cabinet.started" in child.seen or child.dead.is_set(), 60)
        child.ready.wait(self.rng.uniform(0, typical * 1.3))
        self.kill("start" if not child.ready.is_set() else "start(after ready)")
        self.sim.clear_faults()

    def kill(self, point: str) -> None:
        assert self.child is not None
        self.child.kill()
        self.stats.kills += 1
        self.stats.kill_points[point] += 1
        self.say(f"SIGKILL at {point}")
        self._outage()

    def _stage(self, point: str, kill_at: str | None) -> None:
        """A kill point: if this is where the daemon dies this time, kill it here."""
        if point != kill_at:
            return
        time.sleep(self.rng.uniform(0, KILL_POINTS[point][1]))
        self.kill(point)
        raise Killed(point)

    def _outage(self) -> None:
        """While the daemon is dead, the person finishes physically what they started."""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and time.monotonic() - self.sim.last_frame_at < 0.3:
            time.sleep(0.05)  # the dead daemon's last bytes still reach the boards
        op, self.op = self.op, None
        if op is not None and self.model.is_popped(op.key.slot):
            slot = op.key.slot
            if op.kind == "draw" and self.model.key_present(slot) and self.rng.random() < 0.75:
                self.hand[self.model.take(slot)] = (op.key, op.person)
                self.say(f"  outage: took {op.key.number} from open slot {slot}")
            elif (op.kind == "return" and op.key.fob in self.hand
                  and not self.model.key_present(slot) and self.rng.random() < 0.75):
                self.model.insert(op.key.fob, slot)
                del self.hand[op.key.fob]
                self.say(f"  outage: put {op.key.number} back into open slot {slot}")
            self.model.shut_slot(slot)
        for n in self.model.slots:
            if self.model.is_popped(n):
                self.fail(f"slot {n} popped open with no operation of the harness asking")
                self.model.shut_slot(n)

    # -------------------------------------------------------------------- operations
    def idle_state(self) -> None:
        """Bring the screen back to idle (after a denial or a refused choice)."""
        assert self.child is not None
        if not self.child.ask("state").endswith("idle"):
            self.child.ask("cancel")

    def draw(self, kill_at: str | None = None) -> bool:
        assert self.child is not None
        out = {k.fob for k, _ in self.hand.values()}
        person = self.rng.choice(self.staff)
        choices = [k for k in self.keys if k.group in person.groups and k.fob not in out
                   and self.model.key_present(k.slot)]
        if not choices:
            return False
        key = self.rng.choice(choices)
        self.say(f"draw {key.number} (slot {key.slot}) by {person.name}")
        before = self.max_ack()
        answer = self.child.ask(f"tap {person.uid}")
        if answer != "ok choosing":
            self.stats.denials += 1
            self.idle_state()
            return False
        self._stage("draw:tapped", kill_at)
        self.child.write(f"draw {key.number} {self.rng.choice(REASONS)}")
        self.op = Op("draw", key, person)
        self.last_slot = key.slot
        self.stats.draws_started += 1
        self._stage("draw:chosen", kill_at)
        answer = self.child.reply("draw")
        if answer != "ok releasing":
            self.op = None
            self.stats.draws_started -= 1
            self.stats.denials += 1
            self.idle_state()
            return False
        if not self._wait(lambda: self.model.is_popped(key.slot), 5):
            self.fail(f"slot {key.slot} never opened for the draw of {key.number}")
            self.op = None
            return False
        self._stage("draw:popped", kill_at)
        self.hand[self.model.take(key.slot)] = (key, person)
        self._stage("draw:taken", kill_at)
        self.model.shut_slot(key.slot)
        self._stage("draw:shut", kill_at)
        if not self.wait_ack("key.drawn", before):
            self.fail(f"the live daemon never recorded the draw of {key.number}")
        self.op = None
        return True

    def give_back(self, kill_at: str | None = None) -> bool:
        assert self.child is not None
        if not self.hand:
            return False
        fob = self.rng.choice(sorted(self.hand))
        key, person = self.hand[fob]
        by_fob = self.rng.random() < 0.5
        self.say(f"return {key.number} (slot {key.slot}) by {'fob' if by_fob else person.name}")
        before = self.max_ack()
        if by_fob:  # K4: the fob, then the returner's badge (or, now and then, no badge)
            if self.child.ask(f"tap {fob}") != "ok await_returner":
                self.fail(f"the fob of {key.number} did not ask for the returner's badge")
                self.idle_state()
                return False
            self.child.write("nobadge" if self.rng.random() < 0.25 else f"tap {person.uid}")
        else:
            if self.child.ask(f"tap {person.uid}") != "ok choosing":
                self.fail(f"{person.name} could not badge in to return {key.number}")
                self.idle_state()
                return False
            self.child.write(f"return {key.number}")
        self.op = Op("return", key, person)
        self.last_slot = key.slot
        self.stats.returns_started += 1
        self._stage("return:chosen", kill_at)
        answer = self.child.reply("return")
        if answer != "ok returning":
            self.fail(f"return of {key.number} refused: {answer}")
            self.op = None
            self.idle_state()
            return False
        if not self._wait(lambda: self.model.is_popped(key.slot), 5):
            self.fail(f"slot {key.slot} never opened for the return of {key.number}")
            self.op = None
            return False
        self._stage("return:popped", kill_at)
        self.model.insert(fob, key.slot)
        del self.hand[fob]
        self._stage("return:inserted", kill_at)
        self.model.shut_slot(key.slot)
        self._stage("return:shut", kill_at)
        if not self.wait_ack("key.returned", before):
            self.fail(f"the live daemon never recorded the return of {key.number}")
        self.op = None
        return True

    def some_op(self, kill_at: str | None = None) -> bool:
        wants_return = kill_at is not None and kill_at.startswith("return")
        wants_draw = kill_at is not None and kill_at.startswith("draw")
        if wants_return or (not wants_draw and self.hand
                            and (len(self.hand) >= 6 or self.rng.random() < 0.45)):
            return self.give_back(kill_at)
        return self.draw(kill_at)

    @staticmethod
    def _wait(condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.01)
        return bool(condition())

    # --------------------------------------------------------------------------- cycle
    def cycle(self) -> None:
        """One life: start (or die starting), check, a few operations, die at a kill point."""
        weights = {p: w for p, (w, _) in KILL_POINTS.items()}
        point = self.rng.choices(list(weights), list(weights.values()))[0]
        if self.points:
            point = self.points[self.cycles % len(self.points)]
        self.cycles += 1
        if point.startswith("return") and not self.hand:
            point = point.replace("return", "draw").replace("inserted", "taken")
        offline = None
        if self.life and self.rng.random() < self.bus_fault_share:
            # One board silent during start-up: preferably the one of the slot last used,
            # where an interrupted intent is likeliest to be waiting.
            offline = (self.last_slot - 1) // 16 if self.last_slot else self.rng.choice(self.sim.boards)
        if point == "start":
            self._die_starting(offline)
            return
        self.start_child(offline)
        self.check()
        for _ in range(self.rng.randint(0, 3)):
            self.some_op()
        if point == "idle":
            time.sleep(self.rng.uniform(0, KILL_POINTS[point][1]))
            self.kill(point)
            return
        for _ in range(3):  # an op may not get going (a denial); try again
            try:
                if self.some_op(point):
                    break
            except Killed:
                return
        if self.child is not None and not self.child.dead.is_set():
            self.kill(f"{point}(fallback idle)")

    def run(self, kills: int) -> None:
        for _ in range(kills):
            try:
                self.cycle()
            except ChildDied as exc:
                self.fail(f"daemon died unasked: {exc}")
                assert self.child is not None
                print(self.child.log_tail(), flush=True)
                self.child.kill()
                self._outage()
        # Last life: start, check, a few clean operations, a graceful stop, check again.
        child = self.start_child()
        self.check()
        for _ in range(3):
            self.some_op()
        rc = child.quit()
        if rc != 0:
            self.fail(f"graceful stop exited {rc}\n{child.log_tail()}")
        self.check(final=True)

    # -------------------------------------------------------------------------- checks
    def check(self, *, final: bool = False) -> None:
        """The six checks, after a restart (or after the graceful stop when ``final``)."""
        self.stats.checks += 1
        if not final:
            assert self.child is not None
            time.sleep(1.0)  # a second of the daemon running: past any board unlock time
        self._check_sqlite()
        self._check_acks()
        self._check_chain()
        self._check_locks(final)
        self._check_sensors()
        self._check_intents()

    def _check_sqlite(self) -> None:
        con = sqlite3.connect(self.db_path, timeout=10)
        try:
            integrity = [r[0] for r in con.execute("PRAGMA integrity_check")]
            fk = con.execute("PRAGMA foreign_key_check").fetchall()
        finally:
            con.close()
        if integrity != ["ok"]:
            self.fail(f"integrity_check: {integrity[:5]}")
        if fk:
            self.fail(f"foreign_key_check: {fk[:5]}")

    def _check_acks(self) -> None:
        with Session(self.runtime.engine) as s:
            stored = dict(s.execute(select(Event.seq, Event.hash)
                                    .where(Event.cabinet_id == CABINET)).all())
        with self._acks_lock:
            acks = dict(self.acks)
        lost = sorted(seq for seq in acks if seq not in stored)
        changed = sorted(seq for seq, (h, _, _) in acks.items() if seq in stored and stored[seq] != h)
        if lost:
            self.fail(f"acknowledged events lost: {lost[:10]} (of {len(lost)}), "
                      f"last stored seq {max(stored, default=0)}")
        if changed:
            self.fail(f"acknowledged events replaced by others: {changed[:10]}")

    def _check_chain(self) -> None:
        result = verify_log(self.runtime.engine, cabinet_id=CABINET,
                            public_key=self.runtime.device_key.public,
                            checkpoint_every=CHECKPOINT_EVERY)
        if not result.ok:
            self.fail(f"verify_log: {[str(p) for p in result.problems[:5]]}")

    def _check_locks(self, final: bool) -> None:
        child = self.child
        assert child is not None
        if not final:
            stray = self.sim.unlocks_since(child.spawned_at)
            if stray:
                self.fail(f"the restarted daemon sent unlock frames on its own: {stray}")
        # At start-up lock_all sets every board's unlock time to the floor, then commissioning
        # sets it to the configured pulse and reads it back; a board that was silent heard
        # neither. Either way no coil may be set to stay on longer than the pulse cap.
        slow = {b: ms for b in self.sim.boards
                if (ms := self.sim.unlock_time_ms(b)) > MAX_PULSE_MS}
        if slow:
            self.fail(f"boards whose coil time is above the {MAX_PULSE_MS} ms cap: {slow}")
        open_ = [n for n in self.model.slots if self.model.is_unlocked(n)]
        if open_:
            self.fail(f"slots read unlocked: {open_}")

    def _check_sensors(self) -> None:
        with Session(self.runtime.engine) as s:
            expected = records.expected_presence(s, cabinet_id=self.cabinet_id)
            loans = {loan.key.key_number: loan.borrower_id
                     for loan in records.loans_out(s, cabinet_id=self.cabinet_id)}
            found: list[str] = []
            for n in sorted(self.model.slots):
                present = self.model.key_present(n)
                if present != (n in expected):
                    key = records.key_in_slot(s, cabinet_id=self.cabinet_id, slot=n)
                    number = key.key_number if key else None
                    found.append(f"slot {n} ({number}): sensor {'key' if present else 'empty'}, "
                                 f"records {'key' if n in expected else 'out'}"
                                 f"{self._history(s, number)}")
            held = {k.number: p for k, p in self.hand.values()}
            for number, borrower in sorted(loans.items()):
                if number not in held:
                    found.append(f"{number}: open loan but nobody holds it{self._history(s, number)}")
                elif held[number].person_id != borrower:
                    found.append(f"{number}: loan borrower {borrower} but {held[number].name} "
                                 f"took it{self._history(s, number)}")
            for number in sorted(set(held) - set(loans)):
                found.append(f"{number}: held by {held[number].name} with no open loan"
                             f"{self._history(s, number)}")
        new = [line for line in found if line not in self._seen_discrepancies]
        self._seen_discrepancies.update(new)  # one that lasts is counted once
        for line in new:
            self.stats.discrepancies += 1
            self.discrepancy_details.append(f"[life {self.life}] {line}")
            print(f"DISCREPANCY: [life {self.life}] {line}", flush=True)
        if new:
            self.fail(f"{len(new)} new discrepancies between loans and sensors")

    @staticmethod
    def _history(s: Session, key_number: str | None) -> str:
        if key_number is None:
            return ""
        rows = s.scalars(select(Event).where(Event.key_number == key_number)
                         .order_by(Event.seq.desc()).limit(4)).all()
        return "; history: " + ", ".join(
            f"{e.seq} {e.type}{' ' + json.loads(e.payload).get('outcome', '') if 'resolved' in e.type else ''}"
            for e in reversed(rows))

    def _check_intents(self) -> None:
        intents: dict[int, str] = {}
        outcomes: Counter[int] = Counter()
        with Session(self.runtime.engine) as s:
            for seq, type_, payload in s.execute(
                    select(Event.seq, Event.type, Event.payload).where(Event.cabinet_id == CABINET)):
                if type_ in INTENTS:
                    intents[seq] = type_
                elif not type_.startswith("alarm."):
                    ref = json.loads(payload).get("intent_seq")
                    if isinstance(ref, int):
                        outcomes[ref] += 1
        open_ = sorted(seq for seq in intents if outcomes[seq] == 0)
        twice = sorted(seq for seq in intents if outcomes[seq] > 1)
        if open_:
            self.fail(f"intents with no outcome after start-up: {open_}")
        if twice:
            self.fail(f"intents resolved more than once: {twice}")

    # ------------------------------------------------------------------------- results
    def totals(self, wall_s: float) -> dict[str, Any]:
        with Session(self.runtime.engine) as s:
            loans = s.scalars(select(Loan)).all()
            events = s.scalar(select(Event.seq).where(Event.cabinet_id == CABINET)
                              .order_by(Event.seq.desc()).limit(1)) or 0
            by_type = Counter(s.scalars(select(Event.type).where(Event.cabinet_id == CABINET)))
            resolved = Counter(
                f"{type_.split('.')[0]}s {json.loads(payload).get('outcome')}"
                for type_, payload in s.execute(
                    select(Event.type, Event.payload).where(
                        Event.cabinet_id == CABINET,
                        Event.type.in_(("draw.resolved", "return.resolved")))))
        return {
            "kills": self.stats.kills,
            "restarts": self.stats.restarts,
            "checks": self.stats.checks,
            "draws": self.stats.draws_started,
            "loans_recorded": len(loans),
            "returns": self.stats.returns_started,
            "loans_closed": sum(1 for loan in loans if loan.returned_at is not None),
            "denials": self.stats.denials,
            "events": events,
            "events_acknowledged": len(self.acks),
            "resolved_at_start": dict(sorted(resolved.items())),
            "reconciliations_deferred": self.stats.reconciled["reconcile_pending"],
            "resolved_after_bus_fault": self.stats.resolved_after_bus_fault,
            "bus_faults_at_start": self.stats.bus_faults,
            "kill_points": dict(sorted(self.stats.kill_points.items())),
            "event_types": {k: by_type[k] for k in sorted(by_type) if not k.startswith("access")},
            "discrepancies": self.stats.discrepancies,
            "discrepancy_details": self.discrepancy_details,
            "failures": self.failures,
            "wall_s": round(wall_s, 1),
            "seed": self.seed,
            "ok": not self.failures,
        }

    def close(self) -> None:
        if self.child is not None and self.child.proc.poll() is None:
            self.child.kill()
        self.server.stop()
        self.runtime.close()


def print_table(r: dict[str, Any]) -> None:
    rows = [
        ("kills", r["kills"]), ("restarts", r["restarts"]), ("checks", r["checks"]),
        ("draws (started / loans recorded)", f"{r['draws']} / {r['loans_recorded']}"),
        ("returns (started / loans closed)", f"{r['returns']} / {r['loans_closed']}"),
        ("denials", r["denials"]),
        ("restarts with a board silent", f"{r['bus_faults_at_start']} (reconciliation deferred "
         f"{r['reconciliations_deferred']}, intents it resolved {r['resolved_after_bus_fault']})"),
        ("events (stored / acknowledged)", f"{r['events']} / {r['events_acknowledged']}"),
        ("resolved at start-up", ", ".join(f"{k} {v}" for k, v in r["resolved_at_start"].items())
         or "-"),
        ("discrepancies", r["discrepancies"]),
        ("failed checks", len(r["failures"])),
        ("wall time", f"{r['wall_s']} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print("crash harness " + ("OK" if r["ok"] else "FAILED") + f" (seed {r['seed']})")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print("  kill points: " + ", ".join(f"{k} {v}" for k, v in r["kill_points"].items()))


@contextlib.contextmanager
def data_dir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="kiosk-crash-") as tmp:
        yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SIGKILL the cabinet daemon at random points.")
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "crash.json")
    parser.add_argument("--keep", type=Path, default=None,
                        help="use (and keep) this data folder instead of a temporary one")
    parser.add_argument("--bus-fault-share", type=float, default=0.2,
                        help="share of restarts with one lock board silent during start-up")
    parser.add_argument("--points", default="",
                        help="kill points to use in turn, one per life, comma-separated "
                             f"(default: random; known: {', '.join(KILL_POINTS)})")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    points = [p.strip() for p in args.points.split(",") if p.strip()]
    unknown = sorted(set(points) - set(KILL_POINTS))
    if unknown:
        parser.error(f"unknown kill points: {', '.join(unknown)}")
    started = time.monotonic()
    with data_dir(args.keep) as folder:
        if any(folder.iterdir()):
            parser.error(f"{folder} is not empty")
        harness = Harness(folder, args.seed, bus_fault_share=args.bus_fault_share,
                          verbose=args.verbose, points=points)
        try:
            harness.run(args.kills)
        except ChildDied as exc:
            harness.fail(f"daemon died unasked: {exc}")
        finally:
            result = harness.totals(time.monotonic() - started)
            harness.close()
    # where, when and on what it ran, as every bench result says (bench/common.py)
    stamped = {"bench": "crash", **provenance(), "seed": args.seed, **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(stamped, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    print_table(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
