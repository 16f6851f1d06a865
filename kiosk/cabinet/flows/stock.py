"""The stocking flow (K1, K2): a custodian hangs the keys imported for a new cabinet.

A building set up from the console imports its keys *with their home slots* (K1: each key is
on record before it gets a slot), but the keys themselves are still in a box. Hung through
the open door they would each be a ``key_inserted_unexpectedly`` alarm (K4) and the door a
``door_forced`` one (K2), all to be closed by hand. Instead, a custodian signed in by their
badge presses 上架 Stock: the home slots of the keys on record that have never been in the
cabinet (``keys.awaiting_stock``) are released together, each with its intent event (K2:
every opening accounted for), and each key hung in its own slot is recorded as
``key.stocked`` with the custodian as actor. A key hung in another key's released slot is
caught on an identity cabinet (its fob's chip belongs to another key): the slot stays open
for the right one and ``wrong_slot`` follows if it is left there (K4), as for a return. A
presence-only cabinet cannot tell one key from another: the slot's own key is assumed, as
it is for a return. When the session ends (every key hung, 完成 pressed, the timer, a
cancel) the coils are driven locked again and a compartment still open is asked shut;
a key not hung stays awaiting stock. From then on a stocked key is drawn and returned like
any other.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy.orm import Session as DbSession

from drivers.errors import DriverError
from kiosk import policy, records
from kiosk import session as flow
from kiosk.audit import NewEvent
from kiosk.cabinet.contract import Core
from kiosk.cabinet.flows.sensors import SensorSupervisor, wrong_key_text
from kiosk.cabinet.options import CabinetError
from kiosk.services import tx
from kiosk.store.models import Key

log = logging.getLogger("kiosk.cabinet.stock")
RULES = ["K1", "K2"]


class StockFlow:
    name = "stock"

    def __init__(self, core: Core) -> None:
        self.core = core
        self.relock_pending = False
        """A stocking session released slots: the coils are driven locked once it ends."""
        core.register_flow(self.name, self)
        core.on_command(flow.Stocked, self.stocked)
        core.on_intent("stock", self.intent)
        core.on_ended("stocked", self.tell_stocked)
        core.on_tick(self.relock_after)

    # ------------------------------------------------------------------- starting
    def awaiting(self) -> list[policy.KeyFacts]:
        """The keys of this cabinet on record and never hung in it, whose slot is empty."""
        core = self.core
        with DbSession(core.engine) as s:
            keys = records.awaiting_stock(s, cabinet_id=core.cabinet_id)
        present = core.last_scan()
        return [k for k in keys if k.home_slot is not None and not present.get(k.home_slot)]

    def _custodian(self) -> policy.PersonFacts:
        core = self.core
        person = core.visit.person
        if core.session.state != flow.State.CHOOSING or person is None:
            raise core.busy("stocking")
        if "custodian" not in person.roles:
            core.deny(policy.Decision.deny("stock_not_custodian",
                                           "stocking the cabinet needs a key custodian", *RULES),
                      person=person)
            raise CabinetError("stock_not_custodian")
        return person

    async def start(self) -> list[int]:
        """Release the home slot of every key awaiting stock; the slots released, in order."""
        core = self.core
        self._custodian()
        keys = self.awaiting()
        if not keys:
            raise CabinetError("nothing_to_stock", "no key on record is waiting for its slot")
        core.visit.stocking = {k.home_slot: k for k in keys if k.home_slot is not None}
        self.relock_pending = True
        slots = tuple(core.visit.stocking)
        await core.apply(core.session.handle(flow.StockChosen(core.clock(), slots)))
        return list(slots)

    async def finish(self) -> None:
        """The custodian ends stocking (完成): what is hung stays recorded, every released
        slot is locked again, a key not hung stays awaiting stock."""
        core = self.core
        if core.session.state != flow.State.STOCKING:
            raise core.busy("stocking to finish")
        reason = "stocked" if not core.session.open_slots else "stock_ended"
        await core.apply(core.session.handle(flow.Cancelled(core.clock(), reason)))
        await self.relock_after(core.clock())

    async def relock_after(self, _now: dt.datetime) -> None:
        """Once the stocking session is over (however it ended), drive every coil locked."""
        core = self.core
        if not self.relock_pending or core.session.state == flow.State.STOCKING:
            return
        self.relock_pending = False
        try:
            await core.driver(core.locks.lock_all)
        except DriverError as exc:  # lock_all never raises for one channel; a dead bus alarms
            log.warning("relocking after stocking failed: %s", exc)

    def panel(self) -> dict[str, Any] | None:
        """What the kiosk page shows of stocking: to a custodian choosing, how many keys
        wait (the 上架 Stock button, none when nothing does); while stocking, each key with
        its slot and whether it is in. None otherwise."""
        core, v = self.core, self.core.visit
        state = core.session.state
        if state == flow.State.STOCKING and v.stocking is not None:
            keys = [{"slot": slot, "key_number": key.key_number, "label": key.label,
                     "done": slot in v.stocked} for slot, key in v.stocking.items()]
            return {"keys": keys, "done": len(v.stocked), "total": len(keys)}
        if state == flow.State.CHOOSING and v.person is not None \
                and "custodian" in v.person.roles:
            waiting = len(self.awaiting())
            return {"awaiting": waiting} if waiting else None
        return None

    # ----------------------------------------------------------------- the slots
    def intent(self, slot: int, actors: list[str]) -> NewEvent:
        key = (self.core.visit.stocking or {}).get(slot)
        return NewEvent(type="stock.intent", actors=actors, slot=slot,
                        key_number=key.key_number if key else None, rules=RULES)

    async def right_key(self, slot: int, fob: str | None) -> bool:
        """Identity cabinets: is the key hung in ``slot`` the one whose home it is? Its
        chip is paired now if it was not yet; a chip of another key (or none readable)
        keeps the slot open for the right key (``wrong_slot`` if left, K4)."""
        core = self.core
        expected = (core.visit.stocking or {}).get(slot)
        assert expected is not None
        read_slot = getattr(core.locks, "read_slot", None)
        if fob is None and read_slot is not None:
            try:  # a fob still being pushed in: read once more
                rom = await core.driver(read_slot, slot)
                fob = None if rom is None else rom.hex
            except DriverError as exc:
                log.warning("identity of slot %s unreadable: %s", slot, exc)
        with DbSession(core.engine) as s:
            expected_rom = records.fob_rom_of(s, key_id=expected.id)
            actual = records.key_by_rom(s, cabinet_id=core.cabinet_id, rom=fob) if fob else None
        if fob is not None and ((actual is None and expected_rom in (None, fob))
                                or (actual is not None and actual.id == expected.id)):
            return True
        sensors = core.lookup("sensors", SensorSupervisor)
        sensors.wrong_keys[slot] = actual.key_number if actual is not None else "?"
        core.log(NewEvent(
            type="stock.wrong_key", slot=slot, key_number=expected.key_number, rules=["K4"],
            actors=[str(core.visit.person.id)] if core.visit.person else [],
            payload={"expected": expected.key_number, "fob_rom": fob,
                     "hung": actual.key_number if actual else None,
                     "its_slot": actual.home_slot if actual else None,
                     "intent_seq": core.visit.intents.get(slot)}))
        core.say("wrong_key", "error", for_s=120, detail=wrong_key_text(slot, expected, actual))
        core.beep("deny")
        await sensors.reopen(slot)
        return False

    def stocked(self, command: flow.Stocked) -> None:
        """The key is in its home slot: recorded once, by the custodian (K1/K2)."""
        core, slot = self.core, command.slot
        key = (core.visit.stocking or {}).get(slot)
        custodian = core.visit.person
        assert key is not None and custodian is not None
        rom = (core.last_fobs() or {}).get(slot)
        event = NewEvent(
            type="key.stocked", slot=slot, key_number=key.key_number, decision="allow",
            rules=RULES, actors=[str(custodian.id)],
            payload={"stocked_by": custodian.name, "fob_rom": rom,
                     "intent_seq": core.visit.intents.get(slot)})

        def record(s: DbSession) -> None:
            """The writer thread records it (in order, retried while the database is busy)."""
            row = s.get(Key, key.id)
            assert row is not None
            row.awaiting_stock = False
            if rom is not None and row.fob_rom is None:
                row.fob_rom = rom  # identity cabinets: the chip is paired as the key is hung
            tx.log(s, core.audit, event)

        core.write(record, "key.stocked")
        core.visit.resolved.add(slot)
        core.visit.stocked.append(slot)
        core.changed()

    def tell_stocked(self) -> tuple[str, tuple[str, str] | None]:
        n = len(self.core.visit.stocked)
        return "stocked", (f"已上架 {n} 把钥匙，格口已锁好", f"{n} key(s) stocked, slots locked")

