"""``kiosk hub`` and ``kiosk fleet ...``: the central role and a cabinet's enrolment.

``kiosk hub`` serves the admin API for every site plus the fleet routes, on PostgreSQL
only. ``kiosk fleet site-add`` and ``kiosk fleet code`` are the hub administrator's
shortcuts (the same services as ``POST /hub/v1/sites`` and
``POST /hub/v1/sites/{code}/enrolment-codes``), run on the hub machine.
``kiosk fleet enrol URL CODE`` is run once on a cabinet.
"""

from __future__ import annotations

import json
import sys

import click

from kiosk.config import Settings
from kiosk.errors import ConfigError


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj.settings
    return settings


def require_postgres(settings: Settings) -> None:
    """The hub holds every cabinet's log, served by several processes: PostgreSQL only."""
    url = settings.resolved_database_url
    if not url.startswith("postgresql"):
        raise ConfigError(
            "kiosk hub runs on PostgreSQL only (partitioned event storage, several hub "
            "processes on one database); this config points at "
            f"{url.split(':', 1)[0]}. Set KIOSK_DATABASE_URL=postgresql+psycopg://USER@HOST/DB "
            "or database_url in the config file.")


@click.command("hub")
@click.pass_context
def hub(ctx: click.Context) -> None:
    """Run the hub: the fleet's central server (PostgreSQL only)."""
    settings = _settings(ctx)
    require_postgres(settings)
    from kiosk.daemon import run_hub

    run_hub(settings)


@click.group()
def fleet() -> None:
    """Sites, enrolment and this cabinet's link to a hub."""


@fleet.command("site-add")
@click.argument("code")
@click.argument("name")
@click.pass_context
def site_add(ctx: click.Context, code: str, name: str) -> None:
    """(hub) Add a site (building) with CODE and NAME."""
    from kiosk.fleet.hub import create_site, validate_site_code
    from kiosk.runtime import Runtime
    from kiosk.store.db import write_session

    settings = _settings(ctx)
    require_postgres(settings)
    runtime = Runtime.open(settings)
    with write_session(runtime.engine) as session:
        create_site(session, runtime.audit, code=validate_site_code(code), name=name,
                    actors=["cli"])
    click.echo(f"site {code} added")


@fleet.command("code")
@click.argument("site")
@click.pass_context
def enrolment_code(ctx: click.Context, site: str) -> None:
    """(hub) Print a one-time code that enrols one cabinet of SITE (valid 24 h)."""
    from kiosk.fleet.hub import create_enrolment_code
    from kiosk.runtime import Runtime
    from kiosk.store.db import write_session

    settings = _settings(ctx)
    require_postgres(settings)
    runtime = Runtime.open(settings)
    with write_session(runtime.engine) as session:
        code, expires = create_enrolment_code(session, runtime.audit, site_code=site,
                                              actors=["cli"])
    click.echo(code)
    click.echo(f"(site {site}, valid until {expires.isoformat()})", err=True)


@fleet.command("enrol")
@click.argument("hub_url")
@click.argument("code")
@click.pass_context
def enrol(ctx: click.Context, hub_url: str, code: str) -> None:
    """(cabinet) Enrol this cabinet at HUB_URL (…/hub/v1) with a one-time CODE."""
    import httpx

    from kiosk.audit.device_key import key_id_of, public_from_hex
    from kiosk.fleet import state
    from kiosk.fleet.client import HubError, enrol_request
    from kiosk.runtime import Runtime

    settings = _settings(ctx)
    runtime = Runtime.open(settings)
    if state.enrolment(runtime.engine) is not None:
        raise ConfigError("this cabinet is already enrolled (kiosk fleet status)")
    ca = settings.fleet.hub_ca_file
    try:
        done = enrol_request(hub_url, code, cabinet_id=settings.cabinet_id,
                             public_key_hex=runtime.device_key.public_hex,
                             verify=str(ca) if ca else True)
    except HubError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except httpx.HTTPError as exc:
        click.echo(f"error: cannot reach the hub at {hub_url}: {exc}", err=True)
        sys.exit(1)
    state.save_enrolment(runtime.engine, done)
    hub_key_id = key_id_of(public_from_hex(done.hub_public_key))
    click.echo(f"cabinet {done.cabinet_id} enrolled at {done.hub_url}, site {done.site}; "
               f"hub key {hub_key_id} pinned (compare with `kiosk hub`'s start-up line)")
    if settings.fleet.hub_url is None:
        click.echo(f"now set [fleet] hub_url = \"{done.hub_url}\" (or KIOSK_FLEET__HUB_URL) "
                   "and restart the daemon")


@fleet.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """(cabinet) Enrolment, online/offline, configuration version, shipped sequence."""
    from kiosk.fleet import state
    from kiosk.runtime import Runtime

    link = state.link_status(Runtime.open(_settings(ctx)).engine)
    click.echo(json.dumps(link.as_dict() if link else {"enrolled": False}, indent=2))
