"""The MFRC522 simulator at register level, and the simulated tags it talks to."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.rfid.iso14443a import crc_a, with_crc
from drivers.rfid.mfrc522_regs import (
    BUFFER_OVFL,
    COLL_ERR,
    CRC_IRQ,
    ERR_IRQ,
    IDLE_IRQ,
    MF_CRYPTO1_ON,
    RX_IRQ,
    TIMER_IRQ,
    TX_IRQ,
    Cmd,
    Reg,
    read_address,
    write_address,
)
from simulators.cabinet import CabinetModel
from simulators.mfrc522_chip import Mfrc522ChipSim
from simulators.tags import (
    Gen1aMifareClassic,
    Iso14443aTag,
    MifareClassic1K,
    Response,
    TagStack,
    TagState,
    card_from_uid_hex,
)

UID = bytes.fromhex("DEADBEEF")


def rd(chip: Mfrc522ChipSim, reg: int) -> int:
    return chip.xfer2([read_address(reg), 0])[1]


def wr(chip: Mfrc522ChipSim, reg: int, *values: int) -> None:
    chip.xfer2([write_address(reg), *values])


def ready_chip(tag: object | None = None, **kwargs: object) -> Mfrc522ChipSim:
    """A chip set up as the driver sets it up: timer auto, 100 % ASK, CRC_A preset, field on."""
    chip = Mfrc522ChipSim(**kwargs)  # type: ignore[arg-type]
    wr(chip, Reg.TMode, 0x80)
    wr(chip, Reg.TxASK, 0x40)
    wr(chip, Reg.Mode, 0x3D)
    wr(chip, Reg.TxControl, 0x83)
    chip.antenna = tag
    return chip


def transceive(chip: Mfrc522ChipSim, data: bytes, bits: int = 0) -> tuple[int, bytes, int]:
    """Run one Transceive the way the datasheet describes; (ComIrqReg, FIFO, RxLastBits)."""
    wr(chip, Reg.Command, Cmd.Idle)
    wr(chip, Reg.ComIrq, 0x7F)
    wr(chip, Reg.FIFOLevel, 0x80)
    wr(chip, Reg.FIFOData, *data)
    wr(chip, Reg.BitFraming, bits)  # StartSend off before the command, as on the chip
    wr(chip, Reg.Command, Cmd.Transceive)
    wr(chip, Reg.BitFraming, 0x80 | bits)
    irq = rd(chip, Reg.ComIrq)
    level = rd(chip, Reg.FIFOLevel)
    fifo = bytes(chip.xfer2([read_address(Reg.FIFOData)] * level + [0])[1:]) if level else b""
    return irq, fifo, rd(chip, Reg.Control) & 0x07


# -- SPI framing and registers ------------------------------------------------------------
def test_version_and_multi_register_read_in_one_transaction() -> None:
    chip = Mfrc522ChipSim()
    out = chip.xfer2([read_address(Reg.Version), read_address(Reg.TxControl),
                      read_address(Reg.Mode), 0])
    assert out == [0, 0x92, 0x80, 0x3F]


def test_fifo_write_level_read_flush_and_overflow() -> None:
    chip = Mfrc522ChipSim()
    wr(chip, Reg.FIFOData, 1, 2, 3)
    assert rd(chip, Reg.FIFOLevel) == 3
    assert chip.xfer2([read_address(Reg.FIFOData)] * 2 + [0]) == [0, 1, 2]
    assert rd(chip, Reg.FIFOLevel) == 1
    wr(chip, Reg.FIFOData, *range(70))
    assert rd(chip, Reg.FIFOLevel) == 64
    assert rd(chip, Reg.Error) & BUFFER_OVFL
    wr(chip, Reg.FIFOLevel, 0x80)
    assert rd(chip, Reg.FIFOLevel) == 0 and not rd(chip, Reg.Error) & BUFFER_OVFL


def test_irq_register_set_and_clear_semantics() -> None:
    chip = Mfrc522ChipSim()
    wr(chip, Reg.ComIrq, 0x7F)  # Set1 = 0: clear all
    assert rd(chip, Reg.ComIrq) == 0
    wr(chip, Reg.ComIrq, 0x80 | RX_IRQ | TIMER_IRQ)  # Set1 = 1: set the marked bits
    assert rd(chip, Reg.ComIrq) == RX_IRQ | TIMER_IRQ
    wr(chip, Reg.ComIrq, TIMER_IRQ)
    assert rd(chip, Reg.ComIrq) == RX_IRQ


def test_read_only_registers_ignore_writes() -> None:
    chip = Mfrc522ChipSim()
    wr(chip, Reg.Version, 0x00)
    wr(chip, Reg.Error, 0xFF)
    assert rd(chip, Reg.Version) == 0x92 and rd(chip, Reg.Error) == 0


def test_soft_reset_restores_reset_values() -> None:
    chip = ready_chip()
    wr(chip, Reg.FIFOData, 9)
    wr(chip, Reg.Command, Cmd.SoftReset)
    assert rd(chip, Reg.TxControl) == 0x80 and rd(chip, Reg.Mode) == 0x3F
    assert rd(chip, Reg.FIFOLevel) == 0


def test_mem_command_round_trip_through_internal_buffer() -> None:
    chip = Mfrc522ChipSim()
    data = list(range(100, 125))
    wr(chip, Reg.FIFOData, *data)
    wr(chip, Reg.Command, Cmd.Mem)
    assert rd(chip, Reg.FIFOLevel) == 0 and rd(chip, Reg.ComIrq) & IDLE_IRQ
    wr(chip, Reg.Command, Cmd.Mem)  # empty FIFO: the buffer comes back
    assert chip.xfer2([read_address(Reg.FIFOData)] * 25 + [0])[1:] == data


# -- CalcCRC ------------------------------------------------------------------------------
def test_calc_crc_uses_mode_register_preset() -> None:
    chip = Mfrc522ChipSim()
    wr(chip, Reg.Mode, 0x3D)
    wr(chip, Reg.DivIrq, CRC_IRQ)
    wr(chip, Reg.FIFOData, 0x50, 0x00)
    wr(chip, Reg.Command, Cmd.CalcCRC)
    assert rd(chip, Reg.DivIrq) & CRC_IRQ
    assert (rd(chip, Reg.CRCResultL), rd(chip, Reg.CRCResultH)) == (0x57, 0xCD)
    wr(chip, Reg.FIFOData, 0x01)  # CalcCRC keeps absorbing FIFO input
    expected = crc_a(b"\x50\x00\x01")
    assert (rd(chip, Reg.CRCResultL), rd(chip, Reg.CRCResultH)) == tuple(expected)
    wr(chip, Reg.Command, Cmd.Idle)
    wr(chip, Reg.Mode, 0x3F)  # reset preset 0xFFFF is not CRC_A
    wr(chip, Reg.FIFOData, 0x50, 0x00)
    wr(chip, Reg.Command, Cmd.CalcCRC)
    assert (rd(chip, Reg.CRCResultL), rd(chip, Reg.CRCResultH)) != (0x57, 0xCD)


# -- the air interface --------------------------------------------------------------------
def test_transceive_reqa_gets_atqa() -> None:
    chip = ready_chip(MifareClassic1K(UID))
    irq, fifo, bits = transceive(chip, b"\x26", 7)
    assert irq & (RX_IRQ | TX_IRQ) == RX_IRQ | TX_IRQ and not irq & TIMER_IRQ
    assert (fifo, bits) == (bytes.fromhex("0400"), 0)


def test_silence_raises_timer_irq_only_with_tauto() -> None:
    chip = ready_chip()
    irq, fifo, _ = transceive(chip, b"\x26", 7)
    assert irq & TIMER_IRQ and not irq & RX_IRQ and fifo == b""
    wr(chip, Reg.TMode, 0x00)
    irq, _, _ = transceive(chip, b"\x26", 7)
    assert not irq & TIMER_IRQ  # a driver that forgot TAuto would wait forever


@pytest.mark.parametrize(("reg", "value"), [(Reg.TxControl, 0x80), (Reg.TxASK, 0x00)])
def test_no_answer_without_field_or_100_percent_ask(reg: int, value: int) -> None:
    chip = ready_chip(MifareClassic1K(UID))
    wr(chip, reg, value)
    irq, _, _ = transceive(chip, b"\x52", 7)
    assert not irq & RX_IRQ


def test_antenna_follows_the_cabinet_model() -> None:
    cabinet = CabinetModel(slot_numbers=[1])
    chip = ready_chip(cabinet=cabinet)
    assert not transceive(chip, b"\x52", 7)[0] & RX_IRQ
    cabinet.place_tag(MifareClassic1K(UID))
    assert transceive(chip, b"\x52", 7)[0] & RX_IRQ
    chip.remove_tag()
    assert cabinet.antenna is None


def test_full_activation_and_halt_at_register_level() -> None:
    tag = MifareClassic1K(UID)
    chip = ready_chip(tag)
    transceive(chip, b"\x26", 7)
    _, answer, _ = transceive(chip, bytes.fromhex("9320"))
    assert answer == UID + bytes((0xDE ^ 0xAD ^ 0xBE ^ 0xEF,))
    _, sak, _ = transceive(chip, with_crc(bytes.fromhex("9370") + answer))
    assert sak == with_crc(b"\x08") and tag.state is TagState.ACTIVE
    irq, _, _ = transceive(chip, with_crc(b"\x50\x00"))
    assert irq & TIMER_IRQ and tag.state is TagState.HALT
    assert not transceive(chip, b"\x26", 7)[0] & RX_IRQ  # halted: REQA ignored
    assert transceive(chip, b"\x52", 7)[1] == bytes.fromhex("0400")  # WUPA wakes it


def test_switching_the_field_off_resets_the_tag() -> None:
    tag = MifareClassic1K(UID)
    chip = ready_chip(tag)
    transceive(chip, b"\x52", 7)
    assert tag.state is TagState.READY
    wr(chip, Reg.TxControl, 0x80)
    wr(chip, Reg.TxControl, 0x83)
    transceive(chip, b"\x26", 7)  # powered up again: IDLE, so REQA works
    assert tag.state is TagState.READY


def test_collision_sets_coll_err_and_position() -> None:
    chip = ready_chip(TagStack(MifareClassic1K(bytes.fromhex("01000000")),
                               MifareClassic1K(bytes.fromhex("03000000"))))
    irq, _, _ = transceive(chip, b"\x52", 7)
    assert irq & RX_IRQ and not irq & ERR_IRQ  # same ATQA: no collision
    irq, _, _ = transceive(chip, bytes.fromhex("9320"))
    assert irq & ERR_IRQ and rd(chip, Reg.Error) & COLL_ERR
    assert rd(chip, Reg.Coll) & 0x1F == 2  # first differing bit: bit 2 of UID0


def mf_authenticate(chip: Mfrc522ChipSim, key: bytes, block: int = 4) -> int:
    wr(chip, Reg.Command, Cmd.Idle)
    wr(chip, Reg.ComIrq, 0x7F)
    wr(chip, Reg.FIFOData, 0x60, block, *key, *UID)
    wr(chip, Reg.Command, Cmd.MFAuthent)
    return rd(chip, Reg.ComIrq)


def activate(chip: Mfrc522ChipSim) -> None:
    transceive(chip, b"\x52", 7)
    _, answer, _ = transceive(chip, bytes.fromhex("9320"))
    transceive(chip, with_crc(bytes.fromhex("9370") + answer))


def test_mfauthent_right_key_sets_crypto1_and_read_returns_block() -> None:
    tag = MifareClassic1K(UID, blocks={5: bytes(range(16))})
    chip = ready_chip(tag)
    activate(chip)
    irq = mf_authenticate(chip, b"\xff" * 6)
    assert irq & IDLE_IRQ and rd(chip, Reg.Status2) & MF_CRYPTO1_ON
    _, block, _ = transceive(chip, with_crc(b"\x30\x05"))
    assert block == with_crc(bytes(range(16)))
    _, trailer, _ = transceive(chip, with_crc(b"\x30\x07"))
    assert trailer[:6] == bytes(6) and trailer[10:16] == b"\xff" * 6  # key A never readable
    wr(chip, Reg.Status2, 0x00)  # StopCrypto1
    assert not rd(chip, Reg.Status2) & MF_CRYPTO1_ON
    wr(chip, Reg.Status2, MF_CRYPTO1_ON)  # software cannot switch Crypto1 on
    assert not rd(chip, Reg.Status2) & MF_CRYPTO1_ON


def test_mfauthent_wrong_key_times_out_and_card_drops_out() -> None:
    tag = MifareClassic1K(UID)
    chip = ready_chip(tag)
    activate(chip)
    irq = mf_authenticate(chip, bytes(6))
    assert irq & TIMER_IRQ and not irq & IDLE_IRQ
    assert not rd(chip, Reg.Status2) & MF_CRYPTO1_ON
    assert tag.state is TagState.IDLE


def test_irq_pin_follows_enabled_requests_active_low() -> None:
    factory = MockFactory()
    pin = factory.pin(25)
    chip = ready_chip(MifareClassic1K(UID), irq_pin=pin)
    wr(chip, Reg.ComIEn, 0x80 | RX_IRQ)  # IRqInv: pin low while a request is pending
    wr(chip, Reg.ComIrq, 0x7F)
    assert pin.state == 1
    transceive(chip, b"\x52", 7)
    assert pin.state == 0
    wr(chip, Reg.ComIrq, 0x7F)
    assert pin.state == 1
    assert rd(chip, Reg.Status1) & 0x10 == 0


def test_unpowered_chip_reads_zero_and_comes_back_reset() -> None:
    cabinet = CabinetModel(slot_numbers=[1])
    chip = ready_chip(cabinet=cabinet)
    cabinet.power_cut()
    assert rd(chip, Reg.Version) == 0
    cabinet.power_restore()
    assert rd(chip, Reg.Version) == 0x92 and rd(chip, Reg.TxControl) == 0x80


# -- tags on their own --------------------------------------------------------------------
def test_read_without_authentication_is_nakked() -> None:
    tag = MifareClassic1K(UID)
    tag.handle(b"\x26", 7)
    tag.handle(bytes.fromhex("9320"))
    tag.handle(with_crc(bytes.fromhex("9370DEADBEEF22")))
    assert tag.handle(with_crc(b"\x30\x04")) == Response(b"\x04", 4)
    assert tag.state is TagState.IDLE


def test_gen1a_backdoor_only_on_the_clone() -> None:
    clone, genuine = Gen1aMifareClassic(UID, blocks={4: b"X" * 16}), MifareClassic1K(UID)
    assert genuine.handle(b"\x40", 7) is None
    assert clone.handle(b"\x40", 7) == Response(b"\x0a", 4)
    assert clone.handle(b"\x43") == Response(b"\x0a", 4)
    assert clone.handle(with_crc(b"\x30\x04")) == Response(with_crc(b"X" * 16))  # no auth


def test_select_of_another_uid_leaves_tag_out() -> None:
    tag = Iso14443aTag(UID)
    tag.handle(b"\x52", 7)
    assert tag.handle(with_crc(bytes.fromhex("937011223344") + b"\x44")) is None
    assert tag.state is TagState.IDLE


def test_select_with_bad_crc_is_ignored() -> None:
    tag = Iso14443aTag(UID)
    tag.handle(b"\x52", 7)
    assert tag.handle(bytes.fromhex("9370DEADBEEF220000")) is None


def test_card_from_uid_hex() -> None:
    card = card_from_uid_hex("04:A1:B2:C3:D4:E5:F6", magic=True)
    assert isinstance(card, Gen1aMifareClassic) and card.uid == bytes.fromhex("04A1B2C3D4E5F6")
    assert card.atqa == bytes.fromhex("4400")
    assert card.memory[0][:7] == card.uid


def test_nrstpd_low_powers_the_chip_down_and_a_pulse_resets_it() -> None:
    factory = MockFactory()
    rst = factory.pin(25)
    chip = Mfrc522ChipSim(rst_pin=rst)
    assert rd(chip, Reg.Version) == 0  # pin idles low
    rst.function = "output"
    rst.state = 1
    assert rd(chip, Reg.Version) == 0x92
    wr(chip, Reg.Mode, 0x3D)
    rst.state = 0
    rst.state = 1  # a pulse between two transfers
    assert rd(chip, Reg.Mode) == 0x3F
