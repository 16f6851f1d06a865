"""Settings: TOML plus KIOSK_* variables, and start-up errors that name the bad option."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from kiosk.cabinet import calendar_from
from kiosk.config import load_settings
from kiosk.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("KIOSK_ADMIN_PORT", "KIOSK_DATA_DIR", "KIOSK_DATABASE_URL", "KIOSK_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray ./kiosk.toml


def test_defaults_are_simulated_sqlite_in_var_shanghai_time() -> None:
    s = load_settings()
    assert s.simulate is True
    assert s.resolved_database_url == "sqlite:///var/kiosk.db"
    assert s.timezone == "Asia/Shanghai"
    assert s.business_hours.start == dt.time(8, 30)
    assert s.business_hours.weekdays == [1, 2, 3, 4, 5]


def test_toml_file_is_read_and_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        'admin_port = 9000\ncabinet_id = "tower-b"\n'
        '[business_hours]\nstart = "09:00"\nend = "17:30"\nholidays = ["2026-10-01"]\n',
        encoding="utf-8",
    )
    s = load_settings(cfg)
    assert (s.admin_port, s.cabinet_id) == (9000, "tower-b")
    assert s.business_hours.holidays == [dt.date(2026, 10, 1)]
    monkeypatch.setenv("KIOSK_ADMIN_PORT", "9100")
    assert load_settings(cfg).admin_port == 9100


def test_kiosk_toml_in_the_working_directory_is_the_default(tmp_path: Path) -> None:
    (tmp_path / "kiosk.toml").write_text('cabinet_id = "from-default-file"\n', encoding="utf-8")
    assert load_settings().cabinet_id == "from-default-file"


def test_out_of_range_value_names_option_and_range(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[audit]\ncheckpoint_every = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    message = str(err.value)
    assert "audit.checkpoint_every" in message
    assert "ge 1" in message and "bad.toml" in message


def test_environment_value_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_ADMIN_PORT", "70000")
    with pytest.raises(ConfigError, match=r"admin_port.*le 65535"):
        load_settings()


def test_unknown_option_is_a_startup_error(tmp_path: Path) -> None:
    cfg = tmp_path / "typo.toml"
    cfg.write_text('[business_hours]\nstrat = "09:00"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"business_hours\.strat"):
        load_settings(cfg)


def test_business_hours_must_start_before_they_end(tmp_path: Path) -> None:
    cfg = tmp_path / "hours.toml"
    cfg.write_text('[business_hours]\nstart = "18:00"\nend = "08:00"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="business_hours"):
        load_settings(cfg)


@pytest.mark.parametrize(("end", "open_at_the_last_second"),
                         [("24:00", True), ("23:59:59", False)])
def test_K8_a_site_open_until_midnight_says_24_00_and_its_last_second_is_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end: str,
        open_at_the_last_second: bool) -> None:
    """A round-the-clock site: "24:00" ends the day at midnight, so a badge at 23:59:59.5
    is still in business hours (no duty manager asked for, K8). "23:59:59", the only way to
    say it before, left that second closed: a browser test tapping then failed in CI."""
    cfg = tmp_path / "hours.toml"
    cfg.write_text(f'[business_hours]\nstart = "00:00"\nend = "{end}"\n'
                   'weekdays = [1, 2, 3, 4, 5, 6, 7]\n', encoding="utf-8")
    calendar = calendar_from(load_settings(cfg))
    last_second = dt.datetime(2026, 12, 6, 23, 59, 59, 500_000, tzinfo=calendar.zone)
    assert calendar.is_business_time(last_second) is open_at_the_last_second
    assert calendar.is_business_time(last_second + dt.timedelta(seconds=1))  # 00:00:00.5
    # and the environment says it the same way
    monkeypatch.setenv("KIOSK_BUSINESS_HOURS__END", "24:00")
    assert load_settings().business_hours.end == dt.time.max


def test_unknown_time_zone_and_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        load_settings(timezone="Mars/Olympus")
    broken = tmp_path / "broken.toml"
    broken.write_text("admin_port = = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_sensor_scan_interval_is_a_setting_with_bounds(tmp_path: Path) -> None:
    from kiosk.cabinet import options_from

    cfg = tmp_path / "pi-zero.toml"
    cfg.write_text("[cabinet]\nscan_interval_s = 0.25\n", encoding="utf-8")
    assert options_from(load_settings(cfg)).scan_interval == dt.timedelta(milliseconds=250)
    assert options_from(load_settings()).scan_interval == dt.timedelta(milliseconds=100)
    cfg.write_text("[cabinet]\nscan_interval_s = 0.001\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"cabinet.scan_interval_s.*ge 0.02"):
        load_settings(cfg)
