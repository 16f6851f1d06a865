"""The MFRC522 driver, talking register by register to the chip simulator."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.errors import ReaderError
from drivers.rfid import CardRead, CardReader
from drivers.rfid.iso14443a import crc_a, with_crc
from drivers.rfid.mfrc522 import Mfrc522Config, Mfrc522Reader, open_spidev
from drivers.rfid.mfrc522_regs import FORCE_100_ASK, T_AUTO, Cmd, Reg, write_address
from simulators import mfrc522_chip
from simulators.cabinet import CabinetModel
from simulators.mfrc522_chip import Mfrc522ChipSim
from simulators.tags import Gen1aMifareClassic, MifareClassic1K, TagStack

UID4 = bytes.fromhex("DEADBEEF")
UID7 = bytes.fromhex("04A1B2C3D4E5F6")
CREDENTIAL = bytes.fromhex("4B43000000000000000000000000C0DE")
SITE_KEY = bytes.fromhex("A0A1A2A3A4A5")
FAST: dict[str, Any] = {"poll_interval_s": 0.01, "hold_off_s": 0.05, "hold_off_polls": 2,
                        "command_timeout_s": 0.05}

ReaderFactory = Callable[..., Mfrc522Reader]


@pytest.fixture
def cabinet() -> CabinetModel:
    return CabinetModel(slot_numbers=[1, 2])


@pytest.fixture
def chip(cabinet: CabinetModel) -> Mfrc522ChipSim:
    return Mfrc522ChipSim(cabinet)


@pytest.fixture
def make_reader(chip: Mfrc522ChipSim) -> Iterator[ReaderFactory]:
    readers: list[Mfrc522Reader] = []

    def make(spi: Any = None, /, **options: Any) -> Mfrc522Reader:
        wiring = {k: options.pop(k) for k in ("irq_pin", "rst_pin", "pin_factory")
                  if k in options}
        reader = Mfrc522Reader(spi if spi is not None else chip,
                               Mfrc522Config(**{**FAST, **options}), **wiring)
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.close()


def badge(uid: bytes = UID4, **kwargs: Any) -> MifareClassic1K:
    return MifareClassic1K(uid, **kwargs)


def test_reader_satisfies_the_common_interface(make_reader: ReaderFactory) -> None:
    assert isinstance(make_reader(), CardReader)


def test_open_initialises_the_chip(chip: Mfrc522ChipSim, make_reader: ReaderFactory) -> None:
    make_reader()
    assert Cmd.SoftReset in chip.commands
    assert chip.register(Reg.TMode) & T_AUTO
    assert chip.register(Reg.TxASK) == FORCE_100_ASK
    assert chip.register(Reg.Mode) & 0x03 == 0x01  # CRC preset 0x6363
    assert chip.field_on


def test_reads_a_4_byte_uid(cabinet: CabinetModel, chip: Mfrc522ChipSim,
                            make_reader: ReaderFactory) -> None:
    reader = make_reader()
    cabinet.place_tag(badge(UID4))
    chip.air_log.clear()
    read = reader.wait_for_card(1.0)
    assert read == CardRead(uid=UID4, reader_id="mfrc522", credential=None, magic=False)
    assert read.uid_hex == "DEADBEEF"
    select = bytes.fromhex("9370DEADBEEF") + bytes((0xDE ^ 0xAD ^ 0xBE ^ 0xEF,))
    assert list(chip.air_log) == [
        (bytes((0x52,)), 7),  # WUPA, 7-bit short frame
        (bytes.fromhex("9320"), 0),  # anticollision cascade level 1
        (select + crc_a(select), 0),  # SELECT with CRC_A from the chip's CalcCRC
        (bytes.fromhex("500057CD"), 0),  # HLTA
        (bytes((0x40,)), 7),  # Gen1a probe: a genuine card stays silent
    ]


def test_reads_a_7_byte_uid_over_two_cascade_levels(
        cabinet: CabinetModel, chip: Mfrc522ChipSim, make_reader: ReaderFactory) -> None:
    reader = make_reader()
    cabinet.place_tag(badge(UID7))
    chip.air_log.clear()
    read = reader.wait_for_card(1.0)
    assert read is not None
    assert read.uid == UID7
    assert read.uid_hex == "04A1B2C3D4E5F6"
    frames = [frame for frame, _bits in chip.air_log]
    assert frames[1] == bytes.fromhex("9320")
    assert frames[2] == with_crc(bytes.fromhex("9370" "8804A1B2") + bytes((0x88 ^ 0x04 ^ 0xA1 ^ 0xB2,)))
    assert frames[3] == bytes.fromhex("9520")
    assert frames[4] == with_crc(bytes.fromhex("9570C3D4E5F604"))


def test_reads_a_10_byte_uid(cabinet: CabinetModel, make_reader: ReaderFactory) -> None:
    reader = make_reader()
    uid = bytes(range(1, 11))
    cabinet.place_tag(badge(uid))
    read = reader.wait_for_card(1.0)
    assert read is not None and read.uid == uid


def test_reads_the_credential_block_with_the_right_key(
        cabinet: CabinetModel, chip: Mfrc522ChipSim, make_reader: ReaderFactory) -> None:
    reader = make_reader(credential_block=5, key=SITE_KEY)
    tag = badge(UID7, blocks={5: CREDENTIAL})
    tag.set_sector_keys(1, key_a=SITE_KEY, key_b=bytes(6))
    cabinet.place_tag(tag)
    read = reader.wait_for_card(1.0)
    assert read is not None
    assert read.credential == CREDENTIAL
    assert Cmd.MFAuthent in chip.commands
    assert not chip.crypto1_on  # StopCrypto1 after the read


def test_reads_the_credential_with_key_b(cabinet: CabinetModel,
                                         make_reader: ReaderFactory) -> None:
    reader = make_reader(credential_block=9, key=SITE_KEY, key_type="B")
    tag = badge(UID4, blocks={9: CREDENTIAL})
    tag.set_sector_keys(2, key_a=bytes(6), key_b=SITE_KEY)
    cabinet.place_tag(tag)
    read = reader.wait_for_card(1.0)
    assert read is not None and read.credential == CREDENTIAL


def test_wrong_key_reports_the_uid_without_credential(
        cabinet: CabinetModel, chip: Mfrc522ChipSim, make_reader: ReaderFactory) -> None:
    reader = make_reader(credential_block=5, key=SITE_KEY)
    cabinet.place_tag(badge(UID4, blocks={5: CREDENTIAL}))  # still the transport key
    read = reader.wait_for_card(1.0)
    assert read == CardRead(uid=UID4, reader_id="mfrc522", credential=None, magic=False)
    assert not chip.crypto1_on
    assert reader.wait_for_card(0.2) is None  # a refused card is still one tap


def test_no_credential_read_unless_configured(
        cabinet: CabinetModel, chip: Mfrc522ChipSim, make_reader: ReaderFactory) -> None:
    reader = make_reader()
    cabinet.place_tag(badge(UID4, blocks={4: CREDENTIAL}))
    read = reader.wait_for_card(1.0)
    assert read is not None and read.credential is None
    assert Cmd.MFAuthent not in chip.commands


def test_gen1a_clone_is_flagged_magic(cabinet: CabinetModel, chip: Mfrc522ChipSim,
                                      make_reader: ReaderFactory) -> None:
    reader = make_reader(credential_block=4)
    cabinet.place_tag(Gen1aMifareClassic(UID4, blocks={4: CREDENTIAL}))
    read = reader.wait_for_card(1.0)
    assert read == CardRead(uid=UID4, reader_id="mfrc522", credential=CREDENTIAL, magic=True)
    assert (bytes((0x43,)), 0) in chip.air_log


def test_genuine_card_is_not_magic(cabinet: CabinetModel, make_reader: ReaderFactory) -> None:
    reader = make_reader()
    cabinet.place_tag(badge(UID4))
    read = reader.wait_for_card(1.0)
    assert read is not None and read.magic is False


def test_magic_probe_can_be_switched_off(cabinet: CabinetModel, chip: Mfrc522ChipSim,
                                         make_reader: ReaderFactory) -> None:
    reader = make_reader(detect_magic=False)
    cabinet.place_tag(Gen1aMifareClassic(UID4))
    read = reader.wait_for_card(1.0)
    assert read is not None and read.magic is False
    assert all(frame != bytes((0x40,)) for frame, _ in chip.air_log)


def test_no_card_returns_none_with_bounded_spi_traffic(
        chip: Mfrc522ChipSim, make_reader: ReaderFactory) -> None:
    reader = make_reader(poll_interval_s=0.05)
    before = chip.xfer_count
    timeout = 0.5
    assert reader.wait_for_card(timeout) is None
    transfers = chip.xfer_count - before
    polls = sum(1 for frame, bits in chip.air_log if frame == b"\x52" and bits == 7)
    assert polls >= 1
    assert polls <= timeout / 0.05 + 2
    assert transfers <= (timeout / 0.05 + 2) * 10  # about 8 SPI transfers per empty poll


def test_back_to_back_zero_timeouts_do_not_poll_faster_than_configured(
        chip: Mfrc522ChipSim, make_reader: ReaderFactory) -> None:
    reader = make_reader(poll_interval_s=0.5)
    started = time.monotonic()
    for _ in range(200):
        assert reader.wait_for_card(0) is None
    elapsed = time.monotonic() - started
    polls = sum(1 for frame, _ in chip.air_log if frame == b"\x52")
    assert 1 <= polls <= 1 + elapsed / 0.5  # a caller in a tight loop cannot speed up polling


def test_held_card_is_read_once_then_again_after_removal(
        cabinet: CabinetModel, make_reader: ReaderFactory) -> None:
    reader = make_reader()
    tag = badge(UID4)
    cabinet.place_tag(tag)
    assert not reader.holding
    assert reader.wait_for_card(1.0) is not None
    assert reader.wait_for_card(0.2) is None  # still lying on the antenna
    assert reader.holding  # "take the card away first"
    cabinet.remove_tag()
    assert reader.wait_for_card(0.2) is None
    assert reader.wait_for_card(0.3) is None  # the hold-off (0.3 s, two polls) has passed
    assert not reader.holding
    cabinet.place_tag(tag)
    read = reader.wait_for_card(1.0)
    assert read is not None and read.uid == UID4


def test_two_cards_at_once_read_nothing_until_one_is_taken_away(
        cabinet: CabinetModel, make_reader: ReaderFactory) -> None:
    reader = make_reader()
    mine, yours = badge(UID4), badge(bytes.fromhex("11223344"))
    cabinet.place_tag(TagStack(mine, yours))
    assert reader.wait_for_card(0.2) is None
    cabinet.place_tag(mine)
    read = reader.wait_for_card(1.0)
    assert read is not None and read.uid == UID4


def test_irq_pin_replaces_register_polling(cabinet: CabinetModel,
                                           make_reader: ReaderFactory) -> None:
    factory = MockFactory()
    pin = factory.pin(24)
    chip = Mfrc522ChipSim(cabinet, irq_pin=pin)
    reader = make_reader(chip, irq_pin=24, pin_factory=factory, credential_block=4)
    cabinet.place_tag(badge(UID7, blocks={4: CREDENTIAL}))
    chip.reads.clear()
    chip.commands.clear()
    pin.clear_states()
    read = reader.wait_for_card(1.0)
    assert read is not None and read.uid == UID7 and read.credential == CREDENTIAL
    waited = sum(1 for c in chip.commands if c in (Cmd.Transceive, Cmd.MFAuthent))
    crcs = sum(1 for c in chip.commands if c == Cmd.CalcCRC)
    assert chip.reads[Reg.ComIrq] == waited  # one read per command: after the pin fired
    assert chip.reads[Reg.DivIrq] == crcs
    assert [state.state for state in pin.states].count(False) >= waited  # active low


def test_irq_pin_no_card_returns_none(cabinet: CabinetModel,
                                      make_reader: ReaderFactory) -> None:
    factory = MockFactory()
    chip = Mfrc522ChipSim(cabinet, irq_pin=factory.pin(24))
    reader = make_reader(chip, irq_pin=24, pin_factory=factory)
    assert reader.wait_for_card(0.1) is None


def test_dead_irq_wire_is_a_reader_error(make_reader: ReaderFactory) -> None:
    reader = make_reader(irq_pin=24, pin_factory=MockFactory())  # chip drives no pin
    with pytest.raises(ReaderError, match="IRQ"):
        reader.wait_for_card(0.5)


@pytest.mark.parametrize(("version", "message"), [(0x12, "0x12"), (0x00, "wiring"),
                                                  (0xFF, "wiring"), (0x88, "0x88")])
def test_wrong_chip_version_fails_at_open(version: int, message: str) -> None:
    chip = Mfrc522ChipSim(version=version)
    with pytest.raises(ReaderError, match=message):
        Mfrc522Reader(chip)
    assert chip.closed  # the transport is released on a failed open


def test_a_clone_chip_can_be_accepted_explicitly(make_reader: ReaderFactory) -> None:
    chip = Mfrc522ChipSim(version=0x88)
    reader = make_reader(chip, accepted_versions=(0x88,))
    assert reader.version == 0x88


def test_power_loss_is_a_reader_error_and_reset_recovers(
        cabinet: CabinetModel, make_reader: ReaderFactory) -> None:
    reader = make_reader()
    cabinet.place_tag(badge(UID4))
    cabinet.power_cut()
    with pytest.raises(ReaderError):
        reader.wait_for_card(0.5)
    cabinet.power_restore()
    reader.reset()  # the chip came back in its reset state; set it up again
    read = reader.wait_for_card(1.0)
    assert read is not None and read.uid == UID4


def test_close_wakes_a_waiting_thread_and_releases_the_chip(
        chip: Mfrc522ChipSim, make_reader: ReaderFactory) -> None:
    reader = make_reader(poll_interval_s=0.2)
    results: list[CardRead | None] = []
    waiter = threading.Thread(target=lambda: results.append(reader.wait_for_card(30.0)))
    waiter.start()
    reader.close()
    waiter.join(10.0)
    assert not waiter.is_alive() and results == [None]
    assert chip.closed and not chip.field_on
    with pytest.raises(ReaderError, match="closed"):
        reader.wait_for_card(0.1)


@pytest.mark.parametrize(
    "bad",
    [
        {"poll_interval_s": 0.001},
        {"command_timeout_s": 0.01},
        {"credential_block": 7},  # sector trailer
        {"credential_block": 0},  # manufacturer block
        {"credential_block": 64},
        {"key": bytes(5)},
        {"key_type": "C"},
        {"accepted_versions": ()},
        {"rx_gain": 8},
        {"reader_id": ""},
    ],
)
def test_config_bounds(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Mfrc522Config(**bad)


def test_open_spidev_without_spidev_is_a_reader_error() -> None:
    with pytest.raises(ReaderError, match="spidev"):
        open_spidev(0, 0)
    with pytest.raises(ValueError):
        open_spidev(0, 0, max_speed_hz=50_000_000)


def test_rst_pin_powers_the_chip_and_reset_is_a_hard_reset(
        cabinet: CabinetModel, make_reader: ReaderFactory) -> None:
    factory = MockFactory()
    rst = factory.pin(25)  # idles low: the chip is powered down until the driver drives it
    chip = Mfrc522ChipSim(cabinet, rst_pin=rst)
    reader = make_reader(chip, rst_pin=25, pin_factory=factory)
    cabinet.place_tag(badge(UID4))
    assert reader.wait_for_card(1.0) is not None
    # TModeReg scribbled (ESD): the chip's timer no longer ends an exchange with a silent card
    chip.xfer2([write_address(Reg.TMode), 0x00])
    cabinet.remove_tag()
    with pytest.raises(ReaderError, match="did not complete"):
        reader.wait_for_card(0.5)
    rst.clear_states()
    reader.reset()
    assert [entry.state for entry in rst.states] == [True, False, True]
    cabinet.place_tag(badge(UID7))
    read = reader.wait_for_card(1.0)
    assert read is not None and read.uid == UID7


def test_a_long_running_simulated_reader_keeps_bounded_logs(
    cabinet: CabinetModel, make_reader: ReaderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator's command, air and IRQ-pin logs are for tests; a simulated daemon
    polls for weeks, and once grew 9 MB per 1,000 draws from these logs alone."""
    monkeypatch.setattr(mfrc522_chip, "LOG_LENGTH", 64)
    factory = MockFactory()
    pin = factory.pin(24)
    chip = Mfrc522ChipSim(cabinet, irq_pin=pin)
    reader = make_reader(chip, irq_pin=24, pin_factory=factory)
    for i in range(20):  # two badges in turn: each one is a new tap (no hold-off to wait)
        cabinet.place_tag(badge(UID7 if i % 2 else UID4))
        assert reader.wait_for_card(1.0) is not None
    assert chip.xfer_count > 64 * 4, "enough traffic to overflow every log"
    assert len(chip.commands) <= 64 and len(chip.air_log) <= 64
    assert len(pin.states) <= 64 + 1


def test_a_simulated_readers_log_is_as_short_as_it_is_told(
    cabinet: CabinetModel, make_reader: ReaderFactory
) -> None:
    """``kiosk run`` keeps a short log (kiosk/wiring.py): full within seconds of polling, so
    the daemon's memory stops moving then and not after an hour of draws (issue 15)."""
    factory = MockFactory()
    pin = factory.pin(24)
    chip = Mfrc522ChipSim(cabinet, irq_pin=pin, log_length=16)
    reader = make_reader(chip, irq_pin=24, pin_factory=factory)
    for i in range(10):
        cabinet.place_tag(badge(UID7 if i % 2 else UID4))
        read = reader.wait_for_card(1.0)
        assert read is not None and read.uid == (UID7 if i % 2 else UID4)
    assert chip.xfer_count > 16 * 4, "enough traffic to overflow every log"
    assert len(chip.commands) == 16 and len(chip.air_log) == 16
    assert len(pin.states) <= 16 + 1
