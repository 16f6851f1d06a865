"""A card pulled off the antenna in the middle of a read: no partial or garbled UID, no
exception, and the next tap reads cleanly (fault harness: reader faults)."""

from __future__ import annotations

from typing import Any

from drivers.rfid.mfrc522 import Mfrc522Config, Mfrc522Reader
from drivers.rfid.mfrc522_regs import Cmd
from simulators.cabinet import CabinetModel
from simulators.mfrc522_chip import Mfrc522ChipSim
from simulators.tags import MifareClassic1K

UID7 = bytes.fromhex("04A1B2C3D4E5F6")
FAST = Mfrc522Config(poll_interval_s=0.01, hold_off_s=0.05, hold_off_polls=2,
                     command_timeout_s=0.05)


class PullAfter:
    """An SPI transport that takes the card away after the chip has run N Transceives:
    the card leaves between the anticollision steps of one read."""

    def __init__(self, chip: Mfrc522ChipSim, cabinet: CabinetModel, transceives: int) -> None:
        self.chip, self.cabinet, self.left = chip, cabinet, transceives
        self.pulled = False

    def xfer2(self, data: list[int]) -> list[int]:
        out = self.chip.xfer2(data)
        if not self.pulled and self.cabinet.antenna is not None:
            done = sum(1 for c in self.chip.commands if c == Cmd.Transceive)
            if done >= self.left:
                self.cabinet.remove_tag()  # once: the person pulls the card away
                self.pulled = True
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.chip, name)


def test_card_pulled_mid_read_gives_no_read_and_the_next_tap_is_clean() -> None:
    for transceives in (1, 2, 3, 4):  # after REQA, after anticollision CL1, CL2...
        cabinet = CabinetModel(slot_numbers=[1])
        chip = Mfrc522ChipSim(cabinet)
        reader = Mfrc522Reader(PullAfter(chip, cabinet, len(chip.commands) + transceives), FAST)
        try:
            cabinet.place_tag(MifareClassic1K(UID7))
            # Pulled before SELECT completed: no read at all, never a partial UID.
            assert reader.wait_for_card(0.2) is None
            cabinet.place_tag(MifareClassic1K(UID7))
            read = reader.wait_for_card(1.0)
            assert read is not None and read.uid == UID7
        finally:
            reader.close()
