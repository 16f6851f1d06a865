"""``kiosk commission``: the commissioning steps of docs/hardware.md, run on demand against
the configured hardware (or the simulated cabinet) and printed for the person installing it.

1. Board scan with 0x32 variant detection (Kerong buses): which boards answer, which reply
   variant their firmware speaks, which mapped boards are missing.
2. Coil time set and read back per board.
3. Identity check of every slot (cabinets with receptors): each receptor is read and its fob
   ROM compared with the key the records put in that slot.

The daemon runs these at every start too; this command is for the bench and the hand-over,
so it refuses to share the bus with a running daemon (one conversation on a serial bus).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from drivers.errors import DriverError
from kiosk import records
from kiosk.runtime import Runtime
from kiosk.store.models import Key


@dataclass
class SlotCheck:
    slot: int
    expected: str | None
    """The key the records put in this slot now (None: empty or its key is out)."""
    read: str | None
    """The fob ROM the receptor read (None: no fob)."""
    found: str | None = None
    """The key whose fob that ROM is (None: unpaired or unknown)."""
    fault: str | None = None

    @property
    def problem(self) -> str | None:
        if self.fault:
            return f"receptor not readable: {self.fault}"
        if self.expected is None:
            return None if self.read is None else f"holds {self.found or 'an unknown fob'}, expected empty"
        if self.read is None:
            return f"{self.expected} expected, no fob read"
        if self.found != self.expected:
            return f"{self.expected} expected, holds {self.found or 'an unknown fob ' + self.read}"
        return None


@dataclass
class Commissioning:
    variant: str | None = None
    answering: tuple[int, ...] = ()
    missing: tuple[int, ...] = ()
    coil_ms: dict[int, int | None] = field(default_factory=dict)
    bus_error: str | None = None
    identity: bool = False
    slots: list[SlotCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.bus_error is None and not self.missing \
            and not any(c.problem for c in self.slots)


def commission(runtime: Runtime, locks: Any, identity: Any | None) -> Commissioning:
    """Run the steps against ``locks`` (a lock bank; Kerong banks know ``commission()``)
    and ``identity`` (a ``SlotIdentityReader`` or None)."""
    result = Commissioning(identity=identity is not None)
    run = getattr(locks, "commission", None)
    if run is not None:
        try:
            report = run()
            result.variant, result.answering = report.variant, report.answering
            result.missing, result.coil_ms = report.missing, dict(report.coil_ms)
        except DriverError as exc:
            result.bus_error = str(exc)
    if identity is None:
        return result
    with Session(runtime.engine) as s:
        cabinet = records.cabinet_row(s, code=runtime.settings.cabinet_id)
        expected = records.expected_roms(s, cabinet_id=cabinet.id)
        by_rom = {rom: number for number, rom in s.execute(
            select(Key.key_number, Key.fob_rom).where(Key.fob_rom.is_not(None)))}
    try:
        sweep = identity.sweep()
    except DriverError as exc:
        result.bus_error = f"identity bridges: {exc}"
        return result
    for slot in sorted(set(sweep.fobs) | set(sweep.faults)):
        rom = sweep.fobs.get(slot)
        read = rom.hex if rom is not None else None
        result.slots.append(SlotCheck(
            slot=slot, expected=expected.get(slot, (None, None))[0], read=read,
            found=by_rom.get(read) if read else None, fault=sweep.faults.get(slot)))
    return result


def render(result: Commissioning) -> list[str]:
    """What the installer reads, one finding a line."""
    lines = []
    if result.bus_error:
        lines.append(f"lock bus: FAULT {result.bus_error}")
    elif result.variant is not None or result.answering:
        lines.append(f"1. board scan: boards answering {list(result.answering)}, 0x32 reply "
                     f"variant {result.variant!r}"
                     + (f", MISSING {list(result.missing)}" if result.missing else ""))
        coil = ", ".join(f"board {b}: {'not readable' if ms is None else f'{ms} ms'}"
                         for b, ms in sorted(result.coil_ms.items()))
        lines.append(f"2. coil time read back: {coil or 'no board answered'}")
    else:
        lines.append("1-2. board scan and coil time: not a Kerong bus, nothing to scan")
    if not result.identity:
        lines.append("3. identity check: presence-only cabinet ([hardware.identity] off)")
    else:
        bad = [c for c in result.slots if c.problem]
        lines.append(f"3. identity check: {len(result.slots)} slots read, "
                     f"{len(result.slots) - len(bad)} as the records say")
        lines += [f"   slot {c.slot}: {c.problem}" for c in bad]
    lines.append("OK" if result.ok else "NOT OK: fix the lines above before going into service")
    return lines


@click.command("commission")
@click.option("--simulate", "simulate_flag", is_flag=True,
              help="Run against the simulated cabinet even if the config has [hardware].")
@click.pass_context
def commission_command(ctx: click.Context, simulate_flag: bool) -> None:
    """Commissioning: board scan with variant detection, coil time read-back, identity
    check of every slot (docs/hardware.md). Exit status 1 if anything is wrong."""
    from kiosk import runlock, wiring

    settings = ctx.obj.settings
    if runlock.is_running(settings.data_dir):
        raise click.ClickException("the daemon is running: stop it first (one conversation on "
                                   "the lock bus at a time)")
    runtime = Runtime.open(settings)
    try:
        if settings.simulate or simulate_flag:
            runtime.ensure_cabinet()
            hw: Any = wiring.build_simulated(runtime)
            locks, identity = hw.locks, hw.identity
        else:
            hw = wiring.build_real(settings)
            locks, identity = hw.locks, hw.identity
        try:
            result = commission(runtime, locks, identity)
        finally:
            hw.close()
    finally:
        runtime.close()
    for line in render(result):
        click.echo(line)
    if not result.ok:
        ctx.exit(1)
