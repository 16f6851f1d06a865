"""``kiosk admin``: accounts of the admin API, managed on the device itself.

The first administrator cannot be created over the API (there is nobody to authorize it),
so it is made here, by someone with a shell on the cabinet. Changes are audit events with
the actor ``console``.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable

import click

from kiosk.store.models_auth import AccountRole


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@click.group()
def admin() -> None:
    """Admin API accounts (the first administrator is made here)."""


@admin.command("create")
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice([r.value for r in AccountRole]),
    default=AccountRole.ADMIN.value,
    show_default=True,
)
@click.option("--department", "department_code", help="Scope the account to this department code.")
@click.option("--person", "staff_no", help="Link the account to the person with this staff number.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@click.pass_context
def create(
    ctx: click.Context,
    username: str,
    role: str,
    department_code: str | None,
    staff_no: str | None,
    password_stdin: bool,
) -> None:
    """Create an account USERNAME (default role: admin)."""
    from sqlalchemy import select

    from kiosk.runtime import Runtime
    from kiosk.services import accounts, tx
    from kiosk.services.credentials import AuthPolicy
    from kiosk.store.models import Department, Person

    runtime = Runtime.open(ctx.find_root().obj.settings)
    try:
        password = _read_password(password_stdin)
        with tx.write(runtime.audit) as session:
            department_id: uuid.UUID | None = None
            person_id: uuid.UUID | None = None
            if department_code:
                department_id = session.scalar(
                    select(Department.id).where(Department.code == department_code)
                )
                if department_id is None:
                    raise click.UsageError(f"no department with code {department_code!r}")
            if staff_no:
                person_id = session.scalar(select(Person.id).where(Person.staff_no == staff_no))
                if person_id is None:
                    raise click.UsageError(f"no person with staff number {staff_no!r}")
            account = accounts.create_account(
                session,
                runtime.audit,
                by=None,
                username=username,
                password=password,
                role=AccountRole(role),
                person_id=person_id,
                department_id=department_id,
                policy=AuthPolicy(),
            )
            click.echo(f"created {account.role.value} account {account.username} ({account.id})")
    finally:
        runtime.close()


@admin.command("list")
@click.pass_context
def list_accounts(ctx: click.Context) -> None:
    """List accounts: username, role, active (or awaiting confirmation), department scope."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from kiosk.runtime import Runtime
    from kiosk.store.models_auth import Account

    runtime = Runtime.open(ctx.find_root().obj.settings)
    try:
        with Session(runtime.engine) as session:
            for account in session.scalars(select(Account).order_by(Account.username)):
                scope = account.department.code if account.department else "-"
                state = "active" if account.active else "inactive"
                if account.awaiting_confirmation:
                    state = "awaiting-confirmation"
                click.echo(f"{account.username}\t{account.role.value}\t{state}\t{scope}")
    finally:
        runtime.close()


def _on_account(ctx: click.Context, username: str, act: Callable[..., object], done: str) -> None:
    """Run one account operation on the device (``by=None``: the operator at the console)."""
    from kiosk.runtime import Runtime
    from kiosk.services import accounts, tx

    runtime = Runtime.open(ctx.find_root().obj.settings)
    try:
        with tx.write(runtime.audit) as session:
            account = accounts.find_by_username(session, username)
            if account is None:
                raise click.ClickException(f"no account {username!r}")
            act(session, runtime.audit, by=None, account_id=account.id)
        click.echo(f"{done} {username}")
    finally:
        runtime.close()


@admin.command("unlock")
@click.argument("username")
@click.pass_context
def unlock(ctx: click.Context, username: str) -> None:
    """End the lockout of USERNAME after repeated failed logins."""
    from kiosk.services import accounts

    _on_account(ctx, username, accounts.unlock, "unlocked")


@admin.command("confirm")
@click.argument("username")
@click.pass_context
def confirm(ctx: click.Context, username: str) -> None:
    """Confirm USERNAME, an administrator made over the API (dual control, issue 16)."""
    from kiosk.services import dual_control

    _on_account(ctx, username, dual_control.confirm_account, "confirmed")
