"""Issue 13, item 6: docs/hardware.md agrees with the code.

An installer copies the TOML from the hardware page into kiosk.toml; every block there
must start the daemon's configuration without an error, and the channel numbering the
page teaches must be the one the config accepts.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from drivers.identity import Receptor, default_receptors
from kiosk.config import Settings
from kiosk.hardware_config import HardwareSettings, IdentitySettings, KerongLocks
from kiosk.wiring import identity_receptors

DOC = Path(__file__).resolve().parents[1] / "docs" / "hardware.md"
BLOCKS = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_toml_examples_for_every_part() -> None:
    text = "\n".join(BLOCKS)
    for section in ("[hardware.locks]", "[hardware.reader]", "[hardware.door]",
                    "[hardware.identity]", "[hardware.locks.duty]"):
        assert section in text, section
    assert len(BLOCKS) >= 7


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_every_toml_block_in_the_docs_is_accepted_by_settings(block: str) -> None:
    data = tomllib.loads(block)
    try:
        Settings(**data)
    except ValidationError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"docs/hardware.md block not accepted:\n{block}\n{exc}")


def test_an_unknown_option_would_be_caught_by_this_test() -> None:
    with pytest.raises(ValidationError):
        Settings(**tomllib.loads('[hardware.locks]\ndriver = "modbus"\nurl = "x"\nflash = 1\n'))


def test_kerong_channels_are_1_to_16_in_docs_and_config() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert "channel 0–15" not in text and "channel **1–16**" in text
    assert KerongLocks(url="loop://", slots={1: (0, 16)}).slot_map() == {1: (0, 16)}
    with pytest.raises(ValidationError):
        KerongLocks(url="loop://", slots={1: (0, 0)})
    assert KerongLocks(url="loop://", boards=2).slot_map()[17] == (1, 1)


def test_the_documented_receptor_map_is_the_default() -> None:
    # "slot n: bridge 0x18 + ((n-1) // 8) mod 8, channel (n-1) % 8, mux channel (n-1) // 64"
    for n in (1, 8, 9, 64, 65, 72, 130):
        expected = Receptor(0x18 + ((n - 1) // 8) % 8, (n - 1) % 8,
                            (0x70, (n - 1) // 64) if n > 64 else None)
        got = identity_receptors(IdentitySettings(enabled=True), list(range(1, 131)))[n]
        assert got.address == expected.address and got.channel == expected.channel
        if n > 64:
            assert got.mux == expected.mux
    assert default_receptors([9])[9] == Receptor(0x19, 0)


def test_identity_is_off_unless_a_cabinet_says_it_has_receptors() -> None:
    assert HardwareSettings().identity.enabled is False
    with pytest.raises(ValidationError, match="share one receptor"):
        IdentitySettings(slots={1: (0x18, 0), 2: (0x18, 0)})
    with pytest.raises(ValidationError, match="needs mux_address"):
        IdentitySettings(slots={1: (1, 0x18, 0)})
