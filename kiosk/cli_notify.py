"""``kiosk notify``: check the notification setup and read the delivery log on the device.

``kiosk notify test`` sends one message now, straight through the configured SMTP server
or webhook (not through the outbox), and prints what happened: the check an installer
runs after writing ``[notifications]``. It exits 1 when the message did not go out.
"""

from __future__ import annotations

import sys

import click


@click.group()
def notify() -> None:
    """Email and webhook notifications (see docs/notifications.md)."""


@notify.command("test")
@click.option("--email", "address", default=None, help="Send a test email to this address.")
@click.option("--webhook", "name", default=None,
              help="Send a signed test request to this configured webhook.")
@click.option("--wecom", default=None, help="Send a test message to this WeCom group robot.")
@click.option("--dingtalk", default=None,
              help="Send a test message to this DingTalk group robot.")
@click.pass_context
def notify_test(ctx: click.Context, address: str | None, name: str | None,
                wecom: str | None, dingtalk: str | None) -> None:
    """Send a test message now and print the outcome."""
    from kiosk.notify.dispatcher import send_test
    from kiosk.notify.settings import check_address

    if sum(x is not None for x in (address, name, wecom, dingtalk)) != 1:
        raise click.UsageError("give exactly one of --email ADDRESS, --webhook NAME, "
                               "--wecom NAME or --dingtalk NAME")
    if wecom is not None or dingtalk is not None:
        robot = send_test(ctx.find_root().obj.settings, wecom=wecom, dingtalk=dingtalk)
        click.echo(f"{'wecom' if wecom else 'dingtalk'} robot {wecom or dingtalk}: "
                   f"{robot.describe()}")
        if not robot.ok:
            sys.exit(1)
        return
    if address is not None:
        try:
            check_address(address)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--email") from None
    settings = ctx.find_root().obj.settings
    outcome = send_test(settings, email=address, webhook=name)
    where = f"email to {address}" if address else f"webhook {name}"
    if name is not None and name in settings.notifications.webhooks:
        where += f" ({settings.notifications.webhooks[name].url})"
    elif address is not None and settings.notifications.smtp is not None:
        smtp = settings.notifications.smtp
        where += f" via {smtp.host}:{smtp.port} ({smtp.security})"
    click.echo(f"{where}: {outcome.describe()}")
    if not outcome.ok:
        sys.exit(1)


@notify.command("log")
@click.option("--state", type=click.Choice(["pending", "delivered", "failed"]), default=None)
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@click.pass_context
def notify_log(ctx: click.Context, state: str | None, limit: int) -> None:
    """The most recent deliveries, newest first."""
    from kiosk.notify import outbox
    from kiosk.runtime import Runtime
    from kiosk.services import tx

    settings = ctx.find_root().obj.settings
    runtime = Runtime.open(settings)
    try:
        with tx.read(runtime.audit) as session:
            rows, total = outbox.list_deliveries(session, state=state, limit=limit)
            zone = settings.zone
            for row in rows:
                when = row.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
                error = f"  {row.last_error}" if row.last_error and row.state != "delivered" else ""
                click.echo(f"{when}  #{row.event_seq:<6} {row.event_type:<24} {row.channel:<7} "
                           f"{row.target:<28} {row.state:<9} {row.attempts} attempt(s)  "
                           f"{row.id}{error}")
    finally:
        runtime.close()
    click.echo(f"{len(rows)} of {total} deliveries" + (f" ({state})" if state else ""))
