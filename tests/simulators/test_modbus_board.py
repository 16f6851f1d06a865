"""simulators.modbus_board: pymodbus's server playing a relay board, driven by a raw client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from drivers.locks.modbus_relay import ModbusRelayConfig, encode_flash
from simulators.cabinet import CabinetModel
from simulators.modbus_board import (
    RelayBoardSim,
    RunningBoard,
    modbus_command,
    parse_listen,
    run_in_thread,
)
from tests.drivers.test_kerong_field_faults import SocatLink

CONFIG = ModbusRelayConfig(channels=8, unit=3, key_input_base=0)


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll until ``condition`` holds; the board's own timers run on its own thread."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def model() -> CabinetModel:
    m = CabinetModel(slot_numbers=range(1, 9))
    m.load({4: "FOB-D"})
    return m


@pytest.fixture
def sim(model: CabinetModel) -> RelayBoardSim:
    return RelayBoardSim(model, CONFIG)


@pytest.fixture
def running(model: CabinetModel, sim: RelayBoardSim) -> Iterator[RunningBoard]:
    board = run_in_thread(model, board=sim)
    yield board
    board.stop()


@pytest.fixture
def client(running: RunningBoard) -> Iterator[ModbusTcpClient]:
    c = ModbusTcpClient(running.host, port=running.port, timeout=0.3, retries=0)
    assert c.connect()
    yield c
    c.close()


def test_coil_on_unlocks_and_off_relocks(
    client: ModbusTcpClient, model: CabinetModel, sim: RelayBoardSim
) -> None:
    assert not client.write_coil(1, True, device_id=3).isError()
    assert model.is_unlocked(2) is True
    assert client.read_coils(0, count=8, device_id=3).bits[:8] == [
        False, True, False, False, False, False, False, False,
    ]  # fmt: skip
    assert not client.write_coil(1, False, device_id=3).isError()
    assert model.is_unlocked(2) is False
    assert sim.coils == [False] * 8


def test_write_coils_all_at_once(client: ModbusTcpClient, model: CabinetModel) -> None:
    client.write_coils(0, [True] * 8, device_id=3)
    assert all(model.is_unlocked(n) for n in range(1, 9))
    client.write_coils(0, [False] * 8, device_id=3)
    assert not any(model.is_unlocked(n) for n in range(1, 9))


def test_flash_register_unlocks_for_its_time(
    client: ModbusTcpClient, model: CabinetModel, sim: RelayBoardSim
) -> None:
    value = encode_flash(200, command=CONFIG.flash_command, unit_ms=CONFIG.flash_unit_ms)
    reply = client.write_register(CONFIG.flash_register_base + 4, value, device_id=3)
    assert not reply.isError()
    assert model.is_unlocked(5) is True
    assert sim.coils[4] is True
    assert wait_for(lambda: not sim.coils[4])  # the board drops it by itself
    assert model.is_unlocked(5) is False


def test_an_unknown_register_command_is_refused(
    client: ModbusTcpClient, model: CabinetModel
) -> None:
    reply = client.write_register(CONFIG.flash_register_base, 0x0105, device_id=3)
    assert reply.isError() and reply.exception_code == 3
    assert model.is_unlocked(1) is False


def test_discrete_inputs_report_keys(client: ModbusTcpClient, model: CabinetModel) -> None:
    assert client.read_discrete_inputs(0, count=8, device_id=3).bits[:8] == [
        False, False, False, True, False, False, False, False,
    ]  # fmt: skip
    client.write_coil(3, True, device_id=3)
    model.take(4)
    assert client.read_discrete_inputs(0, count=8, device_id=3).bits[3] is False


def test_no_key_inputs_means_illegal_address(model: CabinetModel) -> None:
    board = run_in_thread(model, ModbusRelayConfig(channels=8))
    c = ModbusTcpClient(board.host, port=board.port, timeout=0.3, retries=0)
    reply = c.read_discrete_inputs(0, count=8, device_id=1)
    assert reply.isError() and reply.exception_code == 2
    c.close()
    board.stop()


def test_power_cut_silences_the_board_and_drops_relays(
    client: ModbusTcpClient, model: CabinetModel, sim: RelayBoardSim
) -> None:
    client.write_coil(0, True, device_id=3)
    model.power_cut()
    assert sim.coils == [False] * 8
    with pytest.raises(ModbusException):
        client.read_coils(0, count=8, device_id=3)
    model.power_restore()
    client.close()
    assert client.read_coils(0, count=8, device_id=3).bits[0] is False


def test_stop_drops_relays_and_closes_the_port(model: CabinetModel, sim: RelayBoardSim) -> None:
    board = run_in_thread(model, board=sim)
    c = ModbusTcpClient(board.host, port=board.port, timeout=0.3, retries=0)
    c.write_coil(2, True, device_id=3)
    assert model.is_unlocked(3) is True
    board.stop()
    board.stop()  # idempotent
    assert model.is_unlocked(3) is False
    c.close()
    assert c.connect() is False
    c.close()


def test_board_slots_must_exist_in_the_model() -> None:
    with pytest.raises(ValueError, match="slot"):
        RelayBoardSim(CabinetModel(slot_numbers=[1, 2]), CONFIG)


def test_parse_listen() -> None:
    assert parse_listen("tcp://127.0.0.1:5020")[1:] == ("127.0.0.1", 5020)
    with pytest.raises(ValueError):
        parse_listen("udp://127.0.0.1:5020")


def test_command_serves_and_stops() -> None:
    result = CliRunner().invoke(
        modbus_command,
        ["--listen", "tcp://127.0.0.1:0", "--channels", "4", "--unit", "2", "--run-for", "0.2"],
    )
    assert result.exit_code == 0, result.output
    assert "unit 2: 4 channels, slots 1-4, listening on tcp://127.0.0.1:" in result.output
    assert "relay board stopped" in result.output


def test_command_rejects_a_bad_listen_url() -> None:
    result = CliRunner().invoke(modbus_command, ["--listen", "serial:///dev/ttyS0"])
    assert result.exit_code == 2
    assert "--listen" in result.output


def test_command_attaches_to_a_serial_device_and_names_a_missing_one(tmp_path: Path) -> None:
    missing = CliRunner().invoke(modbus_command, ["--listen", str(tmp_path / "ttyUSB9")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    link = SocatLink(tmp_path)  # a real pty pair (socat is installed in CI, issue 13)
    link.plug()
    try:
        result = CliRunner().invoke(
            modbus_command, ["--listen", str(link.board_end), "--channels", "4", "--run-for", "0.2"])
    finally:
        link.unplug()
    assert result.exit_code == 0, result.output
    assert f"4 channels, slots 1-4, listening on RTU on {link.board_end}" in result.output


def test_kiosk_sim_modbus_serves_a_board_and_the_daemon_cli_does_not_load_pymodbus() -> None:
    """`kiosk sim modbus` works from the CLI; importing the CLI (as `kiosk run` does) leaves
    pymodbus out of the daemon's memory until that command is actually used."""
    import subprocess
    import sys

    probe = subprocess.run(
        [sys.executable, "-c", "import sys, kiosk.cli; print('pymodbus' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip() == "False"
    from click.testing import CliRunner

    from kiosk.cli import cli

    listed = CliRunner().invoke(cli, ["sim", "--help"])
    assert listed.exit_code == 0 and "modbus" in listed.output
    served = CliRunner().invoke(
        cli, ["sim", "modbus", "--listen", "tcp://127.0.0.1:0", "--channels", "4",
              "--run-for", "0.2"])
    assert served.exit_code == 0, served.output
    assert "4 channels, slots 1-4, listening on tcp://127.0.0.1:" in served.output
    assert "relay board stopped" in served.output
