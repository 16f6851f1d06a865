"""The ``kiosk`` command: the composition root that wires settings, store, API and simulators.

Exit codes: 0 success; 1 the check failed (e.g. the audit log does not verify); 2 bad usage
or configuration.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kiosk import cli_admin, cli_commission, cli_fleet, cli_notify, cli_ops, cli_reports
from kiosk.config import Settings, load_settings
from kiosk.errors import KioskError


class _Context:
    def __init__(self, config: Path | None) -> None:
        self.config = config
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings


pass_ctx = click.make_pass_decorator(_Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML config file (default: ./kiosk.toml when present). KIOSK_* variables override it.",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """Electronic key cabinet and access kiosk."""
    ctx.obj = _Context(config)


def refuse_simulation_on_real_hardware(settings: Settings, simulate_flag: bool) -> None:
    """A config that describes real wiring (``[hardware]``) but says ``simulate = true`` is
    most likely a production Pi one edit away from its real settings: loading the demo tower
    into its database and serving ``/sim`` there must be asked for (``--simulate``)."""
    if settings.simulate and "hardware" in settings.model_fields_set and not simulate_flag:
        raise click.UsageError(
            "simulate = true, but the config has a [hardware] section: this looks like a real "
            "cabinet. Set simulate = false to drive the hardware, or pass --simulate to run "
            "the simulated demo cabinet (demo data, /sim) on purpose."
        )


@cli.command()
@click.option("--simulate", "simulate_flag", is_flag=True,
              help="Run on simulated hardware (the demo cabinet and /sim) on purpose, even "
                   "though the config has a [hardware] section or says simulate = false.")
@click.option("--empty", "empty_flag", is_flag=True,
              help="Simulate mode: on an empty database, do not load the demo tower; start "
                   "with an empty register and the simulated cabinet's 16 slots (the same "
                   "as demo_data = false).")
@pass_ctx
def run(ctx: _Context, simulate_flag: bool, empty_flag: bool) -> None:
    """Run the daemon (simulated hardware unless the config says otherwise)."""
    from sqlalchemy.exc import SQLAlchemyError

    from kiosk.daemon import run as run_daemon
    from kiosk.errors import AuditError, StoreError
    from kiosk.store.faults import storage_fault

    settings = ctx.settings
    refuse_simulation_on_real_hardware(settings, simulate_flag)
    if simulate_flag and not settings.simulate:
        settings = settings.model_copy(update={"simulate": True})
    if empty_flag:
        settings = settings.model_copy(update={"demo_data": False})
    try:
        run_daemon(settings, config=ctx.config)
    except (SQLAlchemyError, AuditError, OSError) as exc:
        # A full or failing disk at start-up: one line naming it, not a traceback.
        what = storage_fault(exc)
        if what is None:
            raise
        raise StoreError(f"cannot run the daemon: {what}") from None


# --------------------------------------------------------------------------------- db
@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_ctx
def db_upgrade(ctx: _Context, revision: str) -> None:
    """Migrate the schema up to REVISION (default: the newest)."""
    from kiosk.store import migrate
    from kiosk.store.db import describe_database, make_engine

    engine = make_engine(ctx.settings.resolved_database_url)
    migrate.upgrade(engine, revision)
    click.echo(f"{describe_database(engine)}: schema at {migrate.current_revision(engine)}")


@db.command("downgrade")
@click.argument("revision")
@pass_ctx
def db_downgrade(ctx: _Context, revision: str) -> None:
    """Migrate the schema down to REVISION ('base' removes every table)."""
    from kiosk.store import migrate
    from kiosk.store.db import describe_database, make_engine

    engine = make_engine(ctx.settings.resolved_database_url)
    migrate.downgrade(engine, revision)
    click.echo(f"{describe_database(engine)}: schema at {migrate.current_revision(engine)}")


@db.command("current")
@pass_ctx
def db_current(ctx: _Context) -> None:
    """Print the schema revision of the database and the newest one this version knows."""
    from kiosk.store import migrate
    from kiosk.store.db import make_engine

    engine = make_engine(ctx.settings.resolved_database_url)
    click.echo(f"current {migrate.current_revision(engine)} head {migrate.HEAD_REVISION}")


# ------------------------------------------------------------------------------ audit
@cli.group()
def audit() -> None:
    """The tamper-evident event log."""


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A checkpoint exported earlier (kiosk audit export / checkpoint --out); catches a "
    "cut or re-chained tail.",
)
@click.option("--public-key", help="Expected device public key (hex); default: this device's.")
@click.option(
    "--checkpoint-every",
    type=click.IntRange(1, 1_000_000),
    help="The [audit] checkpoint_every the log was written with (default: the setting); a "
    "signed checkpoint is required at each multiple.",
)
@pass_ctx
def audit_verify(
    ctx: _Context, checkpoint_file: Path | None, public_key: str | None,
    checkpoint_every: int | None,
) -> None:
    """Check the hash chain and the signed checkpoints; exit 1 naming the first bad row.

    Requires a signed checkpoint at every multiple of checkpoint_every and reports the
    events after the newest one as an unsigned tail (see README, "The audit log").
    """
    from kiosk.audit.device_key import load, public_from_hex
    from kiosk.audit.verify import ExportedCheckpoint, verify_log
    from kiosk.store.db import make_engine

    settings = ctx.settings
    engine = make_engine(settings.resolved_database_url)
    if public_key:
        key = public_from_hex(public_key)
    elif settings.device_key_path.exists():
        key = load(settings.device_key_path).public
    else:
        key = None
        click.echo("warning: no device key here; checkpoint signatures of the log are not checked")
    exported = ExportedCheckpoint.read(checkpoint_file) if checkpoint_file else None
    result = verify_log(engine, cabinet_id=settings.cabinet_id, public_key=key, exported=exported,
                        checkpoint_every=checkpoint_every or settings.audit.checkpoint_every)
    click.echo(
        f"cabinet {result.cabinet_id}: {result.checked} events, last seq {result.last_seq}, "
        f"{result.checkpoints} stored checkpoints"
        + (f", exported checkpoint at seq {exported.seq}" if exported else "")
    )
    if result.unsigned_tail is not None:
        click.echo(f"warning: {result.unsigned_tail}")
    if result.ok:
        click.echo("OK: the chain and every checkpoint verify")
        return
    click.echo(f"FAILED: first bad sequence number {result.first_bad_seq}", err=True)
    for problem in result.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


@audit.command("export")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write to, e.g. a mounted USB stick (default: [audit] export_path).",
)
@click.option("--log/--no-log", "with_log", default=None,
              help="Also append the events (default: [audit] export_log).")
@pass_ctx
def audit_export(ctx: _Context, out: Path | None, with_log: bool | None) -> None:
    """Sign the head and copy the checkpoints (and the events) off the device."""
    from kiosk.audit.export import export_to
    from kiosk.runtime import Runtime

    settings = ctx.settings
    folder = out or settings.audit.export_path
    if folder is None:
        raise click.UsageError("give --out FOLDER or set [audit] export_path")
    runtime = Runtime.open(settings)
    try:
        summary = export_to(runtime.audit, folder,
                            with_log=settings.audit.export_log if with_log is None else with_log)
    finally:
        runtime.close()
    click.echo(
        f"exported {summary.checkpoints} checkpoints (newest at seq {summary.checkpoint_seq}) "
        f"to {summary.folder}"
        + (f", {summary.events_added} new events" if summary.events_added is not None else "")
    )
    click.echo(f"verify with: kiosk audit verify --checkpoint {summary.folder}/latest-checkpoint.json")


@audit.command("checkpoint")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the signed checkpoint here (keep it off the device). Default: print it.",
)
@pass_ctx
def audit_checkpoint(ctx: _Context, out: Path | None) -> None:
    """Sign the current head of the log now and export it."""
    from kiosk.runtime import Runtime

    runtime = Runtime.open(ctx.settings)
    row = runtime.audit.checkpoint()
    doc = json.dumps(runtime.audit.export_checkpoint(row), indent=2, ensure_ascii=False)
    if out:
        out.write_text(doc + "\n", encoding="utf-8")
        click.echo(f"checkpoint at seq {row.seq} written to {out}")
    else:
        click.echo(doc)


@audit.command("pubkey")
@pass_ctx
def audit_pubkey(ctx: _Context) -> None:
    """Print this device's public key (hex) to pin in an off-device verifier."""
    from kiosk.audit.device_key import load_or_create

    click.echo(load_or_create(ctx.settings.device_key_path).public_hex)


# ------------------------------------------------------------------------------ demo
@cli.command("demo-data")
@click.option("--seed", default=20261127, show_default=True, help="Random seed for names.")
@click.option("--list", "list_badges", is_flag=True,
              help="Load nothing: name a demo badge for each role (staff, custodian, duty "
                   "manager on the roster now, leader, proxy, supervisor).")
@pass_ctx
def demo_data(ctx: _Context, seed: int, list_badges: bool) -> None:
    """Fill an empty database with a realistic office tower (百富国际大厦)."""
    from kiosk.demo import demo_badges, load_demo
    from kiosk.runtime import Runtime

    runtime = Runtime.open(ctx.settings)
    if list_badges:
        badges = demo_badges(runtime)
        if not badges:
            raise click.ClickException("no demo people here: run `kiosk demo-data` first")
        width = max(len(b.name) for b in badges)
        click.echo(f"{'role':<13} {'badge':<15} {'name':<{width}}  what to try")
        for b in badges:
            click.echo(f"{b.role:<13} {b.uid:<15} {b.name:<{width}}  {b.note}")
        return
    summary = load_demo(runtime, seed=seed)
    click.echo(", ".join(f"{n} {what}" for what, n in summary.items()))


def _register_simulators() -> None:
    from kiosk.cli_sim import register
    from simulators.cli import sim  # its Modbus board command loads on first use

    register(sim)
    cli.add_command(sim)


_register_simulators()
cli.add_command(cli_admin.admin)
cli.add_command(cli_reports.report)
cli.add_command(cli_notify.notify)
cli.add_command(cli_ops.backup)
cli.add_command(cli_ops.restore)
cli.add_command(cli_commission.commission_command)
cli.add_command(cli_fleet.hub)
cli.add_command(cli_fleet.fleet)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KioskError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
