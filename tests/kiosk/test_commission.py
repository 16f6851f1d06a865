"""``kiosk commission`` (docs/hardware.md, issue 13): board scan with 0x32 variant detection,
coil time read-back, and the identity check of every slot, against the simulated cabinet
(real Kerong and DS2482 drivers over the simulators)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from rig import Rig, close_rig, make_rig

from kiosk.cli import cli
from kiosk.cli_commission import commission, render
from kiosk.config import Settings
from kiosk.demo import load_demo
from kiosk.runtime import Runtime


def _config(tmp_path: Path, identity: bool) -> Path:
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "var"}"\ncabinet_id = "cab-01"\nsimulate = true\n'
        f'database_url = ""\n\n[hardware.identity]\nenabled = {str(identity).lower()}\n',
        encoding="utf-8")
    runtime = Runtime.open(Settings(data_dir=tmp_path / "var", cabinet_id="cab-01"))
    load_demo(runtime)
    runtime.close()
    return config


def test_commission_scans_the_boards_reads_back_coil_times_and_checks_every_slot(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, identity=True)
    result = CliRunner().invoke(cli, ["--config", str(config), "commission"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("1. board scan: boards answering [0, 1, 2,")
    assert "0x32 reply variant" in lines[0] and "MISSING" not in lines[0]
    assert lines[1].startswith("2. coil time read back: board 0: 500 ms")
    assert lines[2] == "3. identity check: 208 slots read, 208 as the records say"
    assert lines[-1] == "OK"


def test_commission_on_a_presence_only_cabinet_says_so(tmp_path: Path) -> None:
    config = _config(tmp_path, identity=False)
    result = CliRunner().invoke(cli, ["--config", str(config), "commission"])
    assert result.exit_code == 0, result.output
    assert "3. identity check: presence-only cabinet" in result.output


async def test_commission_names_each_slot_holding_the_wrong_key(tmp_path: Path) -> None:
    rig: Rig = await make_rig(tmp_path, hardware={"identity": {"enabled": True}})
    try:
        (a, _), (b, fb) = rig.key("U606"), rig.key("U701")
        model = rig.hw.model
        for slot in (a, b):
            rig.hw.locks.unlock(slot)
            model.take(slot)
        model.insert(fb, a)
        model.shut_slot(a)  # U701 hangs in U606's slot; U701's own slot stays empty
        model.shut_slot(b)
        outcome = commission(rig.runtime, rig.hw.locks, rig.hw.identity)
        assert not outcome.ok
        lines = render(outcome)
        assert f"   slot {a}: U606 expected, holds U701" in lines
        assert f"   slot {b}: U701 expected, no fob read" in lines
        assert lines[-1].startswith("NOT OK")
    finally:
        await close_rig(rig)
