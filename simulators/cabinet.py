"""The physical cabinet: which fob hangs in which slot, door open or shut, power on or off.

Every simulated device (lock-board simulator, GPIO mock pins, relay board, RFID antenna)
reads and changes this one model, so a simulated person who takes a key changes what every
sensor reports at once. Nothing here knows about people or policy: a slot is just a latch
and a hook that a fob may hang on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.identity.onewire import FobId, is_rom_text

log = logging.getLogger(__name__)

STATE_VERSION = 1


class PhysicalError(Exception):
    """A simulated person tried something the hardware would not allow (e.g. pulling a locked key)."""


@dataclass
class SlotModel:
    """One slot: its latch and the fob (if any) hanging in it."""

    number: int
    fob: str | None = None
    unlocked_until: float = 0.0
    jammed: bool = False
    """A jammed latch stays open whatever the coil does (a fault the simulators can inject)."""
    popped: bool = False
    """A pop-open compartment door sprang open on its pulse and stays open until shut."""
    popped_at: float = 0.0
    """When the door last sprang open (model clock): it cannot latch again before it has
    swung open and back (:attr:`CabinetModel.door_swing_s`)."""

    def is_unlocked(self, now: float) -> bool:
        return self.jammed or self.popped or now < self.unlocked_until


Listener = Callable[[str, int | None], None]


@dataclass
class CabinetModel:
    """A thread-safe model of the physical cabinet shared by every simulator.

    ``clock`` is injectable so tests can move time without sleeping.
    """

    slot_numbers: Iterable[int]
    clock: Callable[[], float] = time.monotonic
    door_open: bool = False
    door_locked: bool = True
    powered: bool = True
    antenna: object | None = None
    """The tag currently held to the reader antenna (a simulator tag object), if any."""
    pop_open: bool = False
    """Slot style. False: a solenoid latch, free only while its coil is energised. True: a
    locker compartment (what Kerong KR-CU16 boards drive) whose door springs open on a pulse
    and stays open until a person shuts it; the lock reads locked again only then."""
    door_swing_s: float = 0.0
    """Pop-open slots only: the least time from a door springing open to it latching again.
    A hand cannot put a key in and push the door back before the door has swung open, so a
    :meth:`shut_slot` sooner than this latches the door only once that time is over. 0
    (the default) latches at once, for tests that step a person instantly; the daemon's
    simulated cabinet sets a real person's minimum (``kiosk.wiring.DOOR_SWING_S``), without
    which a scripted person racing the unlock shuts the door before the driver's read-back
    after the pulse, and a working unlock is reported as a lock fault."""
    slots: dict[int, SlotModel] = field(init=False)
    _listeners: list[Listener] = field(default_factory=list, init=False, repr=False)
    _saved: str = field(default="", init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _save_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.slots = {n: SlotModel(n) for n in self.slot_numbers}

    # -- observers -------------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(what, slot)`` after every change (what: 'slot', 'door', 'power', 'antenna')."""
        self._listeners.append(listener)

    def _changed(self, what: str, slot: int | None = None) -> None:
        for listener in list(self._listeners):
            listener(what, slot)

    def _slot(self, number: int) -> SlotModel:
        try:
            return self.slots[number]
        except KeyError:
            raise PhysicalError(f"the cabinet has no slot {number}") from None

    # -- what the lock hardware does ----------------------------------------------------------
    def unlock(self, slot: int, seconds: float) -> None:
        """The coil of ``slot`` is energised: the latch is free for ``seconds``."""
        with self._lock:
            if not self.powered:
                return
            if self.pop_open:
                s = self._slot(slot)
                if not s.popped:
                    s.popped, s.popped_at = True, self.clock()
            else:
                self._slot(slot).unlocked_until = self.clock() + seconds
        self._changed("slot", slot)

    def relock(self, slot: int) -> None:
        """The coil drops: a latch closes (unless jammed); a popped compartment stays open."""
        with self._lock:
            self._slot(slot).unlocked_until = 0.0
        self._changed("slot", slot)

    def relock_all(self) -> None:
        with self._lock:
            for s in self.slots.values():
                s.unlocked_until = 0.0
        self._changed("slot", None)

    def is_unlocked(self, slot: int) -> bool:
        with self._lock:
            return self._slot(slot).is_unlocked(self.clock())

    def key_present(self, slot: int) -> bool:
        with self._lock:
            return self._slot(slot).fob is not None

    def fob_in(self, slot: int) -> str | None:
        with self._lock:
            return self._slot(slot).fob

    def fob_rom(self, slot: int) -> FobId | None:
        """The 1-Wire ROM of the fob in ``slot``: what its identity receptor reads.

        A fob named by a 16-hex-digit ROM with a good CRC carries that ROM; any other label
        (an RFID tag UID, a key number) carries the ROM :meth:`FobId.derived` makes from it,
        so every simulated key has one stable chip without a table to keep in step.
        """
        fob = self.fob_in(slot)
        return None if fob is None else rom_of_label(fob)

    def slot_of_rom(self, rom: FobId) -> int | None:
        """Where the fob with this ROM hangs now, if anywhere."""
        with self._lock:
            for number, s in self.slots.items():
                if s.fob is not None and rom_of_label(s.fob) == rom:
                    return number
        return None

    def set_jammed(self, slot: int, jammed: bool = True) -> None:
        with self._lock:
            self._slot(slot).jammed = jammed
        self._changed("slot", slot)

    # -- what a person does -----------------------------------------------------------------
    def take(self, slot: int, *, force: bool = False) -> str:
        """Pull the fob out of ``slot``. A locked latch holds it unless ``force`` (tamper)."""
        with self._lock:
            s = self._slot(slot)
            if s.fob is None:
                raise PhysicalError(f"slot {slot} is empty")
            if not force and not s.is_unlocked(self.clock()):
                raise PhysicalError(f"slot {slot} is locked")
            fob, s.fob = s.fob, None
        self._changed("slot", slot)
        return fob

    def insert(self, fob: str, slot: int) -> None:
        """Hang ``fob`` in ``slot``. Latches accept a fob only while released."""
        with self._lock:
            s = self._slot(slot)
            if s.fob is not None:
                raise PhysicalError(f"slot {slot} already holds {s.fob}")
            if not s.is_unlocked(self.clock()):
                raise PhysicalError(f"slot {slot} is locked")
            for other in self.slots.values():
                if other.fob == fob:
                    raise PhysicalError(f"fob {fob} is already in slot {other.number}")
            s.fob = fob
        self._changed("slot", slot)

    def load(self, fobs: dict[int, str]) -> None:
        """Stock the cabinet at start (installer's work, no latch involved)."""
        with self._lock:
            for slot, fob in fobs.items():
                self._slot(slot).fob = fob
        self._changed("slot", None)

    def shut_slot(self, slot: int) -> None:
        """A person pushes a popped compartment door shut: it latches again, at the earliest
        :attr:`door_swing_s` after it sprang open."""
        with self._lock:
            s = self._slot(slot)
            latches_at = s.popped_at + self.door_swing_s if s.popped else 0.0
            s.popped = False
            s.unlocked_until = latches_at if latches_at > self.clock() else 0.0
        self._changed("slot", slot)

    def is_popped(self, slot: int) -> bool:
        with self._lock:
            return self._slot(slot).popped

    def open_door(self) -> None:
        with self._lock:
            self.door_open = True
        self._changed("door")

    def close_door(self) -> None:
        with self._lock:
            self.door_open = False
        self._changed("door")

    def power_cut(self) -> None:
        """Mains gone: every coil drops (fail-secure) and boards stop answering."""
        with self._lock:
            self.powered = False
            for s in self.slots.values():
                s.unlocked_until = 0.0
        self._changed("power")

    def power_restore(self) -> None:
        with self._lock:
            self.powered = True
        self._changed("power")

    # -- persistence: a real cabinet does not reset when the Pi reboots --------------------
    def snapshot(self) -> dict[str, Any]:
        """What survives a restart of the daemon: fobs, popped doors, jams, door, power.

        Coil timers do not: a reboot drops every coil, so a latch is shut after it unless
        its compartment door stands open (``popped``) or it is jammed.
        """
        with self._lock:
            return {
                "version": STATE_VERSION,
                "door_open": self.door_open,
                "powered": self.powered,
                "slots": {
                    str(n): {"fob": s.fob, "popped": s.popped, "jammed": s.jammed}
                    for n, s in sorted(self.slots.items())
                },
            }

    def restore(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`snapshot`; slots the cabinet no longer has are ignored."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unknown cabinet state version {state.get('version')!r}")
        with self._lock:
            self.door_open = bool(state.get("door_open", False))
            self.powered = bool(state.get("powered", True))
            for key, saved in dict(state.get("slots", {})).items():
                s = self.slots.get(int(key))
                if s is None:
                    continue
                s.fob = saved.get("fob")
                s.popped = bool(saved.get("popped", False))
                s.jammed = bool(saved.get("jammed", False))
        self._changed("slot", None)

    def persist_to(self, path: Path) -> bool:
        """Keep the physical state in ``path``: load it if present, save after every change.

        Returns True if a saved state was loaded. A damaged file is reported and moved
        aside (``.bad``) rather than trusted or silently overwritten.
        """
        loaded = False
        if path.is_file():
            try:
                self.restore(json.loads(path.read_text(encoding="utf-8")))
                loaded = True
            except (ValueError, TypeError, AttributeError) as exc:
                log.warning("simulated cabinet state %s unreadable (%s); moved aside", path, exc)
                with contextlib.suppress(OSError):
                    path.replace(path.with_suffix(path.suffix + ".bad"))
        self.subscribe(lambda what, slot: self._save(path) if what != "antenna" else None)
        self._save(path)
        return loaded

    def _save(self, path: Path) -> None:
        """Write atomically (temp file, rename) when the persistent state changed.

        Called after every change, often from a simulator's bus thread, so it writes only
        when something that survives a restart changed (a coil timer does not) and does not
        fsync: a simulator needs to survive a daemon restart, not a kernel crash.
        """
        # One save at a time, its snapshot taken inside: bus threads save concurrently, and
        # with one temp name shared, one thread's rename took the other's file (a warning)
        # or an older snapshot renamed last left the file behind the cabinet's state.
        with self._save_lock:
            data = json.dumps(self.snapshot(), indent=1, sort_keys=True)
            if data == self._saved:
                return
            tmp = path.with_suffix(path.suffix + ".tmp")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(data, encoding="utf-8")
                tmp.replace(path)
                self._saved = data
            except OSError as exc:
                log.warning("cannot save simulated cabinet state to %s: %s", path, exc)

    def place_tag(self, tag: object) -> None:
        """Hold a card or fob tag to the reader antenna."""
        with self._lock:
            self.antenna = tag
        self._changed("antenna")

    def remove_tag(self, tag: object | None = None) -> None:
        """Take the tag away from the antenna; with ``tag``, only if that one is still there.

        Two people tapping in quick succession: the first taking their badge away must not
        take away the fob the second has put down since (a timed tap, like
        ``SimulatedHardware.tap``, names its tag for that reason).
        """
        with self._lock:
            if tag is not None and self.antenna is not tag:
                return
            self.antenna = None
        self._changed("antenna")


def rom_of_label(label: str) -> FobId:
    """The ROM a fob label stands for: itself if it is a ROM, else the derived one."""
    return FobId.parse(label) if is_rom_text(label) else FobId.derived(label)
