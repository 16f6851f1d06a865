"""The cabinet arms a slot's lock board while it makes the unlock's intent durable
(issue 15): the coil-time frame (0x37) goes out first, the unlock (0x31) once the intent
is committed. A lock still never opens without its durable intent (K2, K10), and a board
armed for an opening that then could not be logged is put back to its shortest coil time.
Real frames to the Kerong board simulator; a real SQLite database filled up."""

from __future__ import annotations

from rig import Rig
from test_faults import database_full

from drivers.locks.kerong.codec import CMD_SET_UNLOCK_TIME, CMD_UNLOCK
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


async def test_K2_an_armed_board_whose_intent_could_not_be_logged_opens_nothing(
        rig: Rig) -> None:
    uid, _ = rig.card_of(dept="ENG")
    slot, _ = rig.key("U1203")
    board, _ = rig.hw.locks.location(slot)
    await rig.cabinet.tap(uid)
    with database_full(rig):
        rig.hw.board.sim.received.clear()
        await rig.cabinet.choose_draw(["U1203"], "repair")
        assert rig.cabinet.screen()["message"]["code"] == "storage_fault"
    assert not rig.hw.model.is_unlocked(slot)
    assert [cmd for cmd, _ in heard(rig)].count(CMD_UNLOCK) == 0
    # armed while the intent was tried, then back to the safe state (lock_all: 10 ms)
    assert (CMD_SET_UNLOCK_TIME, board << 4) in heard(rig)
    wait_for(lambda: rig.hw.board.sim.unlock_time_ms(board) == 10, "the board disarmed")
