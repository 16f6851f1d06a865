"""``[hardware]``: wiring mistakes stop start-up; a configured Kerong bus is really driven."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from drivers.locks.kerong.codec import (
    CMD_READ_UNLOCK_TIME,
    CMD_SET_UNLOCK_TIME,
    CMD_STATUS,
    CMD_STATUS_ALL,
)
from kiosk.config import load_settings
from kiosk.errors import ConfigError
from simulators.cabinet import CabinetModel
from simulators.kerong_board import KerongBoardServer, KerongBoardSim
from tests.ports import free_port


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_slot_on_two_lock_channels_is_a_startup_error(tmp_path: Path) -> None:
    cfg = _write(tmp_path, 'simulate = false\n[hardware.locks]\ndriver = "kerong"\n'
                           'url = "/dev/ttyUSB0"\nslots = { "1" = [0, 1], "2" = [0, 1] }\n')
    with pytest.raises(ConfigError, match=r"slots 1 and 2 are both on board 0 channel 1"):
        load_settings(cfg)


def test_a_gpio_pin_wired_twice_is_a_startup_error(tmp_path: Path) -> None:
    cfg = _write(tmp_path, '[hardware.locks]\ndriver = "gpio"\n[hardware.locks.slots.1]\n'
                           'lock = 17\n[hardware.door]\nreed_pin = 17\n')
    with pytest.raises(ConfigError, match="GPIO17 is wired twice: slot 1 lock and door reed"):
        load_settings(cfg)


def test_pulse_beyond_the_coil_rating_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    cfg = _write(tmp_path, '[hardware.locks]\ndriver = "kerong"\nurl = "loop://"\n'
                           'max_pulse_ms = 5000\n')
    with pytest.raises(ConfigError, match=r"hardware\.locks\.kerong\.max_pulse_ms.*le 2000"):
        load_settings(cfg)
    cfg = _write(tmp_path, '[hardware.reader]\ndriver = "mfrc522"\nirq = 24\n')
    with pytest.raises(ConfigError, match=r"hardware\.reader\.irq"):
        load_settings(cfg)


def test_real_mode_needs_a_lock_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"needs a \[hardware.locks\] section"):
        load_settings(_write(tmp_path, "simulate = false\n"))


def test_kiosk_run_drives_the_configured_kerong_bus(tmp_path: Path) -> None:
    """simulate = false: the daemon opens the Kerong URL from the config (here a board
    simulator on a socket, as it would open /dev/ttyUSB0) and secures and scans it."""
    model = CabinetModel(range(1, 17), pop_open=True)
    sim = KerongBoardSim(model, answers_unlock=False)
    with KerongBoardServer(sim) as server:
        cfg = _write(tmp_path, f'simulate = false\ndata_dir = "{tmp_path / "var"}"\n'
                               f'admin_port = {free_port()}\nkiosk_port = {free_port()}\n'
                               f'[hardware.locks]\ndriver = "kerong"\nurl = "{server.url}"\n')
        settings = load_settings(cfg)
        proc = subprocess.Popen([sys.executable, "-m", "kiosk", "--config", str(cfg), "run"],
                                env={**os.environ, "KIOSK_DATABASE_URL": ""},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            body = None
            deadline = time.monotonic() + 120  # a first start migrates; a bound, not a timing
            while body is None and time.monotonic() < deadline and proc.poll() is None:
                try:
                    body = httpx.get(f"http://127.0.0.1:{settings.admin_port}/api/v1/health",
                                     timeout=1).json()
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert body is not None and body["status"] == "ok"
            commands = {frame.cmd for frame in list(sim.received)}
            assert CMD_SET_UNLOCK_TIME in commands, "lock_all at start sets the shortest unlock time"
            assert commands & {CMD_STATUS, CMD_STATUS_ALL}, "the start-up scan reads the board"
            # issue 13: commissioning asks every board (0x32, variant detected) and reads
            # the coil time back after setting it
            assert CMD_READ_UNLOCK_TIME in commands, "coil time read back at start-up"
            # The screen listener answers on loopback without the simulation surface.
            kiosk = httpx.get(f"http://127.0.0.1:{settings.kiosk_port}/sim/state", timeout=2)
            assert kiosk.status_code == 404
        finally:
            proc.send_signal(signal.SIGTERM)
            output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
