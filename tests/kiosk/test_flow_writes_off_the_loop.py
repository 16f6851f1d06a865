"""Writes off the loop (issue 15, item 2) for the PIN, stocking and card-enrolment flows.

One writer thread owns the cabinet's writes; the asyncio loop hands it work. A write left on
the loop blocks the screen, the sensor scan and the API for the whole busy timeout when
another process holds the database (``test_locked_database.py`` shows what that costs for a
draw). Here every transaction the real SQLite engine commits while a person uses these
flows is traced to the thread that committed it (SQLAlchemy's own ``commit`` event, not a
stand-in): none may be the loop's thread, and the writes the person expects are there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from rig import close_rig, make_rig
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from test_enrolment import NEW_UID, _cards_of, _custodian, _new_person
from test_pin import DURESS, PIN, PIN_SETTINGS, borrower, give_pin
from test_stock import BOXED, awaiting, start_stocking, stocking_rig

from kiosk.cabinet import CabinetError
from kiosk.cabinet.flows.enrolment import EnrolmentFlow


@contextmanager
def commits_by_thread(engine: Engine) -> Iterator[list[str]]:
    """The name of the thread behind each commit on ``engine`` while the block runs."""
    threads: list[str] = []

    def seen(_conn: Connection) -> None:
        threads.append(threading.current_thread().name)

    event.listen(engine, "commit", seen)
    try:
        yield threads
    finally:
        event.remove(engine, "commit", seen)


async def test_K3_pin_tries_changes_and_the_duress_alarm_are_written_by_the_writer_thread(
        tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, pin=PIN_SETTINGS)
    try:
        loop_thread = threading.current_thread().name
        uid, person = borrower(rig)
        give_pin(rig, person.id, uid)
        await rig.cabinet.tap(uid)
        await rig.cabinet.choose_draw(["M-01"], "repair")
        with commits_by_thread(rig.runtime.engine) as threads:
            with pytest.raises(CabinetError) as wrong:
                await rig.cabinet.enter_pin("0852")
            assert wrong.value.code == "pin_wrong"
            await rig.cabinet.enter_pin(DURESS)  # opens as the PIN does, alarms silently
            assert rig.cabinet.screen()["state"] == "await_cosign"
            await rig.cabinet.cancel()
            await rig.cabinet.tap(uid)
            await rig.cabinet.change_pin(PIN, "3691", None)
        assert [e.type for e in rig.events("pin.")][-1] == "pin.changed"
        assert [e.type for e in rig.events("alarm.")] == ["alarm.duress"]  # silent, but logged
        assert threads, "the tries, the alarm and the change were committed"
        assert loop_thread not in threads, f"committed on the loop's thread: {threads}"
    finally:
        await close_rig(rig)


async def test_K1_K2_each_key_stocked_is_written_by_the_writer_thread(tmp_path: Path) -> None:
    rig = await stocking_rig(tmp_path)
    try:
        loop_thread = threading.current_thread().name
        keys, _ = await start_stocking(rig)
        with commits_by_thread(rig.runtime.engine) as threads:
            for number in BOXED:
                slot, fob = keys[number]
                await rig.put_back(fob, slot)
        assert [e.key_number for e in rig.events("key.stocked")] == list(BOXED)
        assert awaiting(rig) == set()
        assert threads, "the stocked keys were committed"
        assert loop_thread not in threads, f"committed on the loop's thread: {threads}"
    finally:
        await close_rig(rig)


async def test_K3_a_card_enrolment_is_written_by_the_writer_thread(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    try:
        loop_thread = threading.current_thread().name
        person_id = _new_person(rig)
        flow = rig.cabinet.lookup("enrolment", EnrolmentFlow)
        with commits_by_thread(rig.runtime.engine) as threads:
            enrolment = await flow.start(person_id, _custodian(rig))
            await rig.cabinet.tap(NEW_UID)
        assert enrolment.state == "enrolled" and enrolment.card_id is not None
        assert _cards_of(rig, person_id) == [NEW_UID]
        assert [e.type for e in rig.events("card.enrol")] == ["card.enrolment_started",
                                                              "card.enrolled"]
        assert threads, "the enrolment and the card were committed"
        assert loop_thread not in threads, f"committed on the loop's thread: {threads}"
    finally:
        await close_rig(rig)
