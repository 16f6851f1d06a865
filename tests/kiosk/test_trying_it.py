"""Trying the cabinet (issue 14, items 14 and 16): the demo works at any hour, names a badge
per role, prints `kiosk sim` lines that reach the daemon actually running, and a real
cabinet's config never starts the simulation by accident."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest
from click.testing import CliRunner
from rig import SH, close_rig, make_rig
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiosk import records
from kiosk.cli import cli
from kiosk.config import Settings
from kiosk.demo import demo_badges, load_demo, try_it
from kiosk.runtime import Runtime
from kiosk.store.models import DutyShift

SAT_2PM = dt.datetime(2026, 11, 28, 14, 0, tzinfo=SH)  # a weekend afternoon: after hours


def _runtime(tmp_path: Path, **settings: object) -> Runtime:
    cfg = Settings(data_dir=tmp_path / "var", cabinet_id="cab-01", **settings)  # type: ignore[arg-type]
    return Runtime.open(cfg)


def test_demo_roster_covers_every_hour_of_the_next_two_weeks(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    try:
        start = dt.datetime(2026, 11, 27, 0, 0, tzinfo=SH)
        load_demo(runtime, now=start)
        with Session(runtime.engine) as s:
            gaps = [start + dt.timedelta(minutes=30 * n) for n in range(2 * 24 * 13)
                    if not records.roster_at(s, at=start + dt.timedelta(minutes=30 * n))]
        assert gaps == [], f"K8: no duty manager on the roster at {gaps[:3]}"
        with Session(runtime.engine) as s:  # and no one is on twice in a row
            shifts = sorted(s.scalars(select(DutyShift)), key=lambda x: x.starts_at)
        assert all(a.person_id != b.person_id for a, b in itertools.pairwise(shifts))
    finally:
        runtime.close()


async def test_K8_first_try_on_a_weekend_afternoon_goes_through(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, start=SAT_2PM)
    try:
        badges = {b.role: b for b in demo_badges(rig.runtime, now=rig.clock())}
        assert set(badges) == {"staff", "custodian", "duty manager", "leader", "proxy",
                               "supervisor"}
        await rig.cabinet.tap(badges["staff"].uid)
        assert rig.cabinet.screen()["state"] == "await_manager"
        await rig.cabinet.tap(badges["duty manager"].uid)
        screen = rig.cabinet.screen()
        assert screen["state"] == "choosing" and screen["manager"] == badges["duty manager"].name
    finally:
        await close_rig(rig)


def test_demo_data_list_names_a_badge_per_role(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"KIOSK_DATA_DIR": str(tmp_path / "var"), "KIOSK_DATABASE_URL": ""}
    assert runner.invoke(cli, ["demo-data"], env=env).exit_code == 0
    listed = runner.invoke(cli, ["demo-data", "--list"], env=env)
    assert listed.exit_code == 0, listed.output
    roles = [line.split("  ")[0].strip() for line in listed.output.splitlines()[1:]]
    assert roles == ["staff", "custodian", "duty manager", "leader", "proxy", "supervisor"]


def test_try_it_lines_use_the_config_and_the_port_in_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIOSK_KIOSK_PORT", "9181")
    runtime = _runtime(tmp_path, kiosk_port=9181)
    try:
        load_demo(runtime)
        lines = try_it(runtime, config=Path("/etc/kiosk/site.toml")).splitlines()
        commands = [line for line in lines if "sim " in line or "demo-data" in line]
        assert commands and all(
            line.strip().startswith(
                "KIOSK_KIOSK_PORT=9181 .venv/bin/kiosk --config /etc/kiosk/site.toml ")
            for line in commands), lines
        staff = demo_badges(runtime)[0]
        assert any(f"sim tap {staff.uid}" in line for line in lines)
        monkeypatch.delenv("KIOSK_KIOSK_PORT")
        plain = try_it(runtime)
        assert "KIOSK_KIOSK_PORT" not in plain and "--config" not in plain
    finally:
        runtime.close()


# ------------------------------------------------------------------------------ item 16
def test_run_refuses_simulation_on_a_config_with_real_wiring(tmp_path: Path) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "var"}"\nsimulate = true\n\n'
        '[hardware.locks]\ndriver = "kerong"\nurl = "/dev/ttyUSB0"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "run"])
    assert result.exit_code == 2
    assert "[hardware]" in result.output and "--simulate" in result.output
    assert not (tmp_path / "var").exists(), "refused before opening the database"


async def test_the_screen_says_simulation_in_simulate_mode(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    try:
        assert rig.cabinet.screen()["simulated"] is True
    finally:
        await close_rig(rig)
