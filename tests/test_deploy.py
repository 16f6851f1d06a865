"""deploy/: the scripts parse and pass shellcheck, the unit file is one systemd accepts.

shellcheck and systemd-analyze are used when installed (CI images often lack them); the
parts that need them are skipped, not faked, when they are absent.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kiosk.config import load_settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SCRIPTS = ["install.sh", "kiosk-screen.sh", "kiosk-cli.sh", "system-deps.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses_and_is_strict(script: str) -> None:
    path = DEPLOY / script
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert "set -euo pipefail" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_passes_shellcheck(script: str) -> None:
    tool = shutil.which("shellcheck")
    if tool is None:
        pytest.skip("shellcheck is not installed")
    out = subprocess.run([tool, str(DEPLOY / script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "kiosk.service", encoding="utf-8")
    return parser


def test_unit_is_a_watched_notify_service_with_hardening() -> None:
    service = unit()["Service"]
    assert service["Type"] == "notify"
    assert service["WatchdogSec"] == "30"
    assert service["Restart"] == "always"
    assert service["User"] == "kiosk" and service["StateDirectory"] == "kiosk"
    for option in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[option] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert set(service["SupplementaryGroups"].split()) == {"gpio", "spi", "dialout"}
    # DeviceAllow (or options implying it, like ProtectClock) would hide the lock bus.
    assert "PrivateDevices" not in service and "ProtectClock" not in service


def test_unit_file_verifies(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this venv's kiosk instead of /opt.
    kiosk = Path(sys.executable).parent / "kiosk"
    text = (DEPLOY / "kiosk.service").read_text(encoding="utf-8")
    (tmp_path / "kiosk.service").write_text(
        text.replace("/opt/kiosk/venv/bin/kiosk", str(kiosk)), encoding="utf-8")
    out = subprocess.run([tool, "verify", "--man=no", "--generators=no",
                          str(tmp_path / "kiosk.service")], capture_output=True, text=True)
    # Unknown keys and bad values are only warnings (exit 0): any message about the file fails.
    messages = [line for line in (out.stdout + out.stderr).splitlines() if "kiosk.service" in line]
    assert out.returncode == 0 and messages == [], out.stdout + out.stderr


def test_screen_autostart_runs_chromium_in_kiosk_mode() -> None:
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.read(DEPLOY / "kiosk-screen.desktop", encoding="utf-8")
    assert desktop["Desktop Entry"]["Exec"] == "/usr/local/bin/kiosk-screen"
    screen = (DEPLOY / "kiosk-screen.sh").read_text(encoding="utf-8")
    for flag in ("--kiosk", "--noerrdialogs", "--disable-session-crashed-bubble", "--incognito"):
        assert flag in screen
    assert "http://127.0.0.1:8081/" in screen


def test_example_config_is_valid_for_real_hardware() -> None:
    settings = load_settings(DEPLOY / "kiosk.toml.example")
    assert settings.simulate is False and settings.hardware.locks is not None
