"""``kiosk backup`` and ``kiosk restore``: keeping a cabinet's state safe off the device.

Exit codes follow ``kiosk.cli``: 0 done; 1 the archive failed a check or restoring was
refused; 2 bad usage, e.g. a PostgreSQL database (pg_dump is the tool for that).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Archive to write (.tar.gz). Default: DATA_DIR/backups/kiosk-CABINET-TIME.tar.gz.",
)
@click.pass_context
def backup(ctx: click.Context, out: Path | None) -> None:
    """Back up the database and device key; safe while the daemon runs.

    The archive holds the private signing key: it is written mode 0600; keep it so.
    """
    from kiosk.backup import create_backup

    path, manifest = create_backup(ctx.find_root().obj.settings, out)
    click.echo(
        f"backup of cabinet {manifest.cabinet_id} written to {path}\n"
        f"  audit head seq {manifest.audit_head_seq} {manifest.audit_head_hash[:16]}…, "
        f"schema {manifest.schema_revision}, members: {', '.join(manifest.members)}"
    )
    if "device_key.pem" not in manifest.members:
        click.echo("warning: no device key in this data folder; the archive holds none")


@click.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True,
              help="Restore even though a daemon is running on this data folder.")
@click.pass_context
def restore(ctx: click.Context, archive: Path, force: bool) -> None:
    """Check ARCHIVE (hashes, audit chain) and put its database and device key in place.

    Stop the daemon first (systemctl stop kiosk); what is replaced is moved aside.
    """
    from kiosk.backup import BackupRefused, restore_backup

    try:
        result = restore_backup(ctx.find_root().obj.settings, archive, force=force)
    except BackupRefused as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)
    m = result.manifest
    click.echo(
        f"restored cabinet {m.cabinet_id} from {archive} (made {m.created_at})\n"
        f"  audit log verified: {result.verify.checked} events, head seq {m.audit_head_seq}, "
        f"{result.verify.checkpoints} checkpoints\n"
        f"  database {result.database}"
        + (f"\n  previous files moved to {result.moved_aside}" if result.moved_aside else "")
    )
