"""Key identity per slot (issue 13 item 1): 1-Wire ROM codec bytes and the DS2482-800 driver
against the register-level bridge simulator, fed by the cabinet model.

What a person at the cabinet would notice: the key hung in a slot is named by its own
chip; an empty slot reads empty; a dirty or shorted contact is a fault, never "empty" (a
key must not be recorded as gone because a contact was bad).
"""

from __future__ import annotations

import pytest

from drivers.errors import IdentityError
from drivers.identity import FobId, Receptor, SlotIdentityReader, crc8, default_receptors
from drivers.identity.onewire import (
    CHANNEL_CODES,
    CHANNEL_READBACK,
    STATUS_1WB,
    STATUS_PPD,
    STATUS_RST,
    STATUS_SD,
    channel_from_readback,
    config_byte,
    parse_rom,
)
from simulators.cabinet import CabinetModel
from simulators.ds2482 import LOG_LENGTH, I2cBusSim, bus_for_receptors


# -- codec: exact bytes --------------------------------------------------------------------------
def test_crc8_matches_the_maxim_worked_example() -> None:
    # Family 02, serial 00000001B81C, CRC A2: the example of Maxim's 1-Wire CRC note.
    assert crc8(bytes.fromhex("021CB801000000")) == 0xA2
    assert crc8(bytes.fromhex("021CB801000000A2")) == 0  # over all 8 bytes: zero
    fob = FobId.parse("02-1CB801000000-A2")
    assert (fob.family, fob.serial, fob.crc) == (0x02, 0x01B81C, 0xA2)
    assert str(fob) == "021CB801000000A2"
    assert FobId.build(0x02, 0x01B81C) == fob


def test_bridge_command_bytes_and_status_bits_are_the_datasheet_values() -> None:
    assert CHANNEL_CODES == (0xF0, 0xE1, 0xD2, 0xC3, 0xB4, 0xA5, 0x96, 0x87)
    assert CHANNEL_READBACK == (0xB8, 0xB1, 0xAA, 0xA3, 0x9C, 0x95, 0x8E, 0x87)
    assert channel_from_readback(0xAA) == 2 and channel_from_readback(0xF0) is None
    assert (STATUS_1WB, STATUS_PPD, STATUS_SD, STATUS_RST) == (0x01, 0x02, 0x04, 0x10)
    assert config_byte(apu=True) == 0xE1  # APU set, upper nibble its complement
    assert config_byte(apu=False) == 0xF0


def test_a_rom_that_fails_its_crc_or_reads_all_zeros_is_refused() -> None:
    with pytest.raises(IdentityError, match="CRC"):
        FobId.parse("021CB801000000A3")
    with pytest.raises(IdentityError, match="held low"):
        FobId(bytes(8))
    assert parse_rom(b"\xff" * 8) is None  # nobody drove the line
    with pytest.raises(IdentityError):
        FobId.parse("not hex at all")


def test_derived_roms_are_stable_valid_and_distinct() -> None:
    a, b = FobId.derived("FOB-001"), FobId.derived("FOB-002")
    assert a == FobId.derived("FOB-001") and a != b
    assert a.family == 0x01 and crc8(a.rom) == 0


# -- device against the simulator ----------------------------------------------------------------
def rig(slots: int = 16, *, mux: int | None = None) -> tuple[CabinetModel, I2cBusSim,
                                                             SlotIdentityReader]:
    model = CabinetModel(range(1, slots + 1))
    receptors = default_receptors(model.slots, mux_address=mux)

    def fobs_in(slot: int) -> tuple[FobId, ...]:
        rom = model.fob_rom(slot)
        return () if rom is None else (rom,)

    bus = bus_for_receptors(receptors, fobs_in)
    reader = SlotIdentityReader(bus, receptors)
    reader.start()
    return model, bus, reader


def test_each_slot_reads_the_chip_of_the_fob_hanging_in_it() -> None:
    model, _bus, reader = rig()
    model.load({1: "FOB-U606", 9: "FOB-U701", 16: "021CB801000000A2"})
    assert reader.read_slot(1) == FobId.derived("FOB-U606")
    assert reader.read_slot(9) == FobId.derived("FOB-U701")  # second bridge, channel 0
    assert reader.read_slot(16) == FobId.parse("021CB801000000A2")
    assert reader.read_slot(2) is None
    sweep = reader.sweep()
    assert sweep.ok and sweep.fobs[1] == FobId.derived("FOB-U606") and sweep.fobs[3] is None


def test_one_read_is_the_datasheet_sequence_byte_for_byte() -> None:
    model, bus, reader = rig(8)
    model.load({3: "FOB-X"})
    chip = bus.chip(0x18)
    chip.commands.clear()
    assert reader.read_slot(3) == FobId.derived("FOB-X")
    expected = [(0xC3, 0xD2), (0xB4,), (0xA5, 0x33)] + [(0x96,), (0xE1, 0xE1)] * 8
    assert list(chip.commands) == expected


def test_a_bridge_remembers_only_its_latest_commands() -> None:
    # `kiosk run` on a simulated identity cabinet reads every receptor at every scan for as
    # long as it runs: the bridge's command log must stop growing (issue 15, item 4).
    model, bus, reader = rig(8)
    model.load({3: "FOB-X"})
    chip = bus.chip(0x18)
    one_read = [(0xC3, 0xD2), (0xB4,), (0xA5, 0x33)] + [(0x96,), (0xE1, 0xE1)] * 8
    for _ in range(LOG_LENGTH // 10):  # a read is 18 or 19 commands (the channel select)
        assert reader.read_slot(3) == FobId.derived("FOB-X")
    assert len(chip.commands) == LOG_LENGTH
    assert list(chip.commands)[-18:] == one_read[1:]  # the newest read is kept


def test_wrong_key_swapped_between_slots_is_seen_as_the_other_key() -> None:
    """The issue's case: U701 hung in U606's slot must read as U701, not as 'a key'."""
    model, _bus, reader = rig()
    model.load({5: "FOB-U701"})
    assert reader.read_slot(5) == FobId.derived("FOB-U701") != FobId.derived("FOB-U606")


def test_a_short_is_a_fault_not_an_empty_slot() -> None:
    model, bus, reader = rig()
    model.load({2: "FOB-A"})
    bus.chip(0x18).faults.shorted.add(1)
    with pytest.raises(IdentityError, match="short"):
        reader.read_slot(2)
    sweep = reader.sweep()
    assert 2 in sweep.faults and 2 not in sweep.fobs
    bus.chip(0x18).faults.shorted.clear()
    assert reader.read_slot(2) == FobId.derived("FOB-A")  # recovers without a restart


def test_a_bounce_is_retried_a_broken_contact_is_a_fault() -> None:
    model, bus, reader = rig()
    model.load({4: "FOB-B"})
    bus.chip(0x18).faults.flip_rom_bit.add(3)
    assert reader.read_slot(4) == FobId.derived("FOB-B")
    bus.chip(0x18).faults.flip_always.add(3)
    with pytest.raises(IdentityError, match="CRC"):
        reader.read_slot(4)


def test_a_bridge_stuck_busy_fails_within_its_bound() -> None:
    model, bus, reader = rig()
    model.load({1: "FOB-C"})
    bus.chip(0x18).faults.stuck_busy = True
    with pytest.raises(IdentityError, match="1WB"):
        reader.read_slot(1)
    assert reader.read_slot(9) is None  # the other bridge is unaffected


def test_an_unplugged_bridge_is_reported_and_comes_back() -> None:
    model, bus, reader = rig()
    model.load({10: "FOB-D"})
    bus.chip(0x19).faults.unplugged = True
    with pytest.raises(IdentityError, match="0x19"):
        reader.read_slot(10)
    bus.chip(0x19).faults.unplugged = False
    bus.chip(0x19)._power_up()  # it was power-cycled: the driver must re-initialise it
    assert reader.read_slot(10) == FobId.derived("FOB-D")


def test_more_than_64_receptors_go_through_the_tca9548a() -> None:
    model, _bus, reader = rig(72, mux=0x70)
    model.load({1: "FOB-LOW", 70: "FOB-HIGH"})
    assert reader.read_slot(70) == FobId.derived("FOB-HIGH")
    assert reader.read_slot(1) == FobId.derived("FOB-LOW")  # mux switched back
    assert default_receptors([70], mux_address=0x70)[70] == Receptor(0x18, 5, (0x70, 1))
    with pytest.raises(ValueError, match="TCA9548A"):
        default_receptors([65])


def test_two_slots_on_one_receptor_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="share"):
        SlotIdentityReader(I2cBusSim(), {1: Receptor(0x18, 0), 2: Receptor(0x18, 0)})
    with pytest.raises(ValueError):
        Receptor(0x20, 0)
