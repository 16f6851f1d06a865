"""``kiosk sim tap|take|insert|shut|door|power-cut|power-restore|state``: play the person at
a simulated cabinet from a terminal. Each command is one HTTP call to the running daemon's
simulation control surface on loopback (``kiosk run`` in simulate mode)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

import click

from kiosk.config import load_settings


def _call(ctx: click.Context, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    config = ctx.find_root().params.get("config")
    port = load_settings(config).kiosk_port
    url = f"http://127.0.0.1:{port}/sim/{path}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("detail", exc.reason)
        click.echo(f"refused: {detail}", err=True)
        sys.exit(1)
    except urllib.error.URLError as exc:
        click.echo(f"no simulated cabinet at {url} ({exc.reason}): is `kiosk run` running?",
                   err=True)
        sys.exit(2)


def register(sim: click.Group) -> None:
    """Add the person-at-the-cabinet commands to the ``sim`` group."""

    @sim.command("tap")
    @click.argument("uid")
    @click.pass_context
    def tap(ctx: click.Context, uid: str) -> None:
        """Hold a badge or key fob with this UID (hex) to the reader."""
        click.echo(_call(ctx, "tap", {"uid": uid}))

    @sim.command("take")
    @click.argument("slot", type=int)
    @click.option("--leave-open", is_flag=True, help="Do not push the compartment shut.")
    @click.option("--force", is_flag=True, help="Pull it out of a locked slot (tamper).")
    @click.pass_context
    def take(ctx: click.Context, slot: int, leave_open: bool, force: bool) -> None:
        """Take the key out of SLOT."""
        click.echo(_call(ctx, "take", {"slot": slot, "shut": not leave_open, "force": force}))

    @sim.command("insert")
    @click.argument("fob")
    @click.argument("slot", type=int)
    @click.option("--leave-open", is_flag=True, help="Do not push the compartment shut.")
    @click.pass_context
    def insert(ctx: click.Context, fob: str, slot: int, leave_open: bool) -> None:
        """Hang the key with fob tag FOB in SLOT."""
        click.echo(_call(ctx, "insert", {"fob": fob, "slot": slot, "shut": not leave_open}))

    @sim.command("shut")
    @click.argument("slot", type=int)
    @click.pass_context
    def shut(ctx: click.Context, slot: int) -> None:
        """Push SLOT's compartment door shut."""
        click.echo(_call(ctx, "shut", {"slot": slot}))

    @sim.command("door")
    @click.argument("action", type=click.Choice(["open", "close"]))
    @click.pass_context
    def door(ctx: click.Context, action: str) -> None:
        """Open or close the cabinet's outer door."""
        click.echo(_call(ctx, "door", {"open": action == "open"})["door_open"])

    @sim.command("power-cut")
    @click.pass_context
    def power_cut(ctx: click.Context) -> None:
        """Cut the cabinet's power: coils drop, boards go silent."""
        click.echo(_call(ctx, "power", {"on": False})["powered"])

    @sim.command("power-restore")
    @click.pass_context
    def power_restore(ctx: click.Context) -> None:
        """Bring the power back."""
        click.echo(_call(ctx, "power", {"on": True})["powered"])

    @sim.command("state")
    @click.pass_context
    def state(ctx: click.Context) -> None:
        """Print the physical state: power, door, and every slot's fob and latch."""
        result = _call(ctx, "state")
        click.echo(f"power {'on' if result['powered'] else 'OFF'}, door "
                   f"{'OPEN' if result['door_open'] else 'shut'}")
        for slot, st in result["slots"].items():
            if st["fob"] is None or st["open"]:
                click.echo(f"  slot {slot}: {st['fob'] or 'empty'}{' (open)' if st['open'] else ''}")
