"""The cabinet arms a slot's lock board ahead of its unlock (issue 15): when the person
picks the key on the screen, or at the latest while it makes the unlock's intent durable.
The coil-time frame (0x37) goes out first, the unlock (0x31) once the intent is committed.
A lock still never opens without its durable intent (K2, K10), a board armed for an opening
that then could not be logged is put back to its shortest coil time, an arming ends with its
visit, and a pick arms only what the person may draw, ten slots a visit at most. Real frames
to the Kerong board simulator; a real SQLite database filled up."""

from __future__ import annotations

import pytest
from disk_full import database_full
from rig import Rig

from drivers.locks.kerong.codec import CMD_SET_UNLOCK_TIME, CMD_UNLOCK
from kiosk.cabinet.arming import MAX_PICKED_SLOTS
from kiosk.store.models import Role
from tests.drivers.test_kerong_device import wait_for


def heard(rig: Rig) -> list[tuple[int, int]]:
    """(command, address) of the coil-time and unlock frames the boards heard, in order."""
    return [(f.cmd, f.addr) for f in list(rig.hw.board.sim.received)
            if f.cmd in (CMD_SET_UNLOCK_TIME, CMD_UNLOCK)]


async def test_K2_a_draw_sets_the_coil_time_then_opens_after_its_durable_intent(
        rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    board, channel = rig.hw.locks.location(slot)
    await rig.cabinet.tap(uid)
    rig.hw.board.sim.received.clear()
    await rig.cabinet.choose_draw(["U1203"], "repair")
    assert rig.hw.model.is_unlocked(slot)
    address = board << 4
    assert heard(rig) == [(CMD_SET_UNLOCK_TIME, address), (CMD_UNLOCK, address | (channel - 1))]
    assert rig.hw.board.sim.pulses[-1] == (board, channel, 500)  # the configured pulse
    intents = rig.events("draw.intent")
    assert [e.slot for e in intents] == [slot]  # committed (the unlock waited for it)


@pytest.mark.parametrize("picked", [False, True], ids=["armed_with_its_intent", "picked"])
async def test_K2_an_armed_board_whose_intent_could_not_be_logged_opens_nothing(
        rig: Rig, picked: bool) -> None:
    """Armed while the intent was tried, or earlier by the pick: the disk is full, nothing
    opens, and the board goes back to its shortest coil time (lock_all: 10 ms)."""
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    board, _ = rig.hw.locks.location(slot)
    await rig.cabinet.tap(uid)
    if picked:
        await rig.cabinet.pick(["U1203"])
        wait_for(lambda: rig.hw.board.sim.unlock_time_ms(board) == 500, "the pick's arming")
    with database_full(rig):
        rig.hw.board.sim.received.clear()
        await rig.cabinet.choose_draw(["U1203"], "repair")
        assert rig.cabinet.screen()["message"]["code"] == "storage_fault"
    assert not rig.hw.model.is_unlocked(slot)
    assert [cmd for cmd, _ in heard(rig)].count(CMD_UNLOCK) == 0
    if not picked:
        assert (CMD_SET_UNLOCK_TIME, board << 4) in heard(rig)  # armed while it was tried
    wait_for(lambda: rig.hw.board.sim.unlock_time_ms(board) == 10, "the board disarmed")
    assert rig.hw.locks.armed_boards() == ()


# ------------------------------------------------ arming when the key is picked on the screen
async def test_K2_a_key_picked_on_the_screen_opens_one_frame_after_its_reason(rig: Rig) -> None:
    """Picking a key (the reasons still to touch) sends its board's coil time; the draw then
    puts only the unlock on the wire, after its durable intent, at the configured pulse."""
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    board, channel = rig.hw.locks.location(slot)
    await rig.cabinet.tap(uid)
    rig.hw.board.sim.received.clear()
    assert await rig.cabinet.pick(["U1203"]) == 1
    assert not rig.hw.model.is_unlocked(slot)
    address = board << 4
    wait_for(lambda: heard(rig) == [(CMD_SET_UNLOCK_TIME, address)], "the pick's arming")
    rig.hw.board.sim.received.clear()
    await rig.cabinet.choose_draw(["U1203"], "repair")
    assert rig.hw.model.is_unlocked(slot)
    assert heard(rig) == [(CMD_UNLOCK, address | (channel - 1))]
    assert rig.hw.board.sim.pulses[-1] == (board, channel, 500)
    assert [e.slot for e in rig.events("draw.intent")] == [slot]


async def test_K2_a_pick_arms_only_keys_the_person_may_draw_now(rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    assert await rig.cabinet.pick(["U1203"]) == 0  # nobody at the screen
    await rig.cabinet.tap(uid)
    rig.hw.board.sim.received.clear()
    # K7: a special room waits for the leader's approval; a key number nobody has
    assert await rig.cabinet.pick(["E-配电房-B1", "NO-SUCH-KEY"]) == 0
    assert rig.hw.locks.armed_boards() == ()
    assert heard(rig) == []


async def test_K2_an_arming_ends_with_the_visit_it_was_made_for(rig: Rig) -> None:
    """Picked, then cancelled: the next person's draw of that key sets the time again."""
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    board, channel = rig.hw.locks.location(slot)
    await rig.cabinet.tap(uid)
    await rig.cabinet.pick(["U1203"])
    wait_for(lambda: rig.hw.locks.armed_boards() == (board,), "the pick's arming")
    await rig.cabinet.cancel()
    wait_for(lambda: rig.hw.locks.armed_boards() == (), "the visit's armings forgotten")
    other, _ = rig.card_of(dept="ENG", index=1)
    await rig.cabinet.tap(other)
    rig.hw.board.sim.received.clear()
    await rig.cabinet.choose_draw(["U1203"], "repair")
    address = board << 4
    assert heard(rig) == [(CMD_SET_UNLOCK_TIME, address), (CMD_UNLOCK, address | (channel - 1))]


async def test_K2_one_visit_cannot_keep_the_bus_busy_by_picking(rig: Rig) -> None:
    """A page that picks key after key arms at most MAX_PICKED_SLOTS slots per visit."""
    uid, _ = rig.card_of(role=Role.CUSTODIAN)  # a keeper: every key is drawable
    await rig.cabinet.tap(uid)
    drawable = [k["key_number"] for k in rig.cabinet.screen()["keys"] if k["status"] == "ok"]
    assert len(drawable) > MAX_PICKED_SLOTS
    armed = [await rig.cabinet.pick([number]) for number in drawable[:MAX_PICKED_SLOTS + 5]]
    assert sum(armed) == MAX_PICKED_SLOTS
    assert armed[MAX_PICKED_SLOTS:] == [0] * 5
