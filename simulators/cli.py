"""``kiosk sim``: run simulated hardware as a process, so the daemon can be driven unchanged.

Each subcommand serves one kind of device on the same endpoint the real hardware would use
(a TCP port or a pty that ``serial_for_url`` opens). The composition root registers
:data:`sim` under the ``kiosk`` command; until then it runs on its own with
``python -c 'from simulators.cli import sim; sim()' board --help``.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, ClassVar

import click

from simulators.cabinet import CabinetModel
from simulators.kerong_board import KerongBoardServer, KerongBoardSim, KerongFaults

SignalHandler = Callable[[int, FrameType | None], Any] | int | None

SIM_HELP = """Simulated cabinet hardware that speaks the real bytes.

\b
Simulated devices, each a process of its own (prints the URL for the config):
  board   Kerong KR-CU16 RS-485 lock boards (TCP socket or pty), with fault injection.
  modbus  a Modbus relay board (pymodbus's own server).

\b
A person at the simulated cabinet of a running `kiosk run` (simulate mode):
  tap UID          hold a badge or key fob to the reader
  take SLOT        take the key out of a released slot
  insert FOB SLOT  hang a key in a released slot
  shut SLOT        push a compartment shut
  door open|close  the outer door (opened with no session: forced-door alarm)
  power-cut, power-restore, state
"""


class _LazyGroup(click.Group):
    """A group whose heavy subcommands are imported only when one of them is run or listed:
    ``kiosk run`` builds this group too, and the Modbus simulator would bring pymodbus
    (55 modules, several MB of resident memory) into the daemon for nothing."""

    LAZY: ClassVar[dict[str, str]] = {"modbus": "simulators.modbus_board:modbus_command"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            module, _, attr = self.LAZY[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(name="sim", help=SIM_HELP, cls=_LazyGroup)
def sim() -> None:
    """The group the lead registers into ``kiosk``; subcommands are added below."""


@sim.command("board")
@click.option(
    "--listen", default="socket://127.0.0.1:7001", show_default=True,
    help="socket://HOST:PORT (port 0 picks a free one), 'pty' (prints the slave path), or "
         "a serial device path (a USB adapter, or one end of a socat pty pair).",
)
@click.option("--status-all", "status_all", type=click.Choice(["per-board", "aggregate"]),
              default="per-board", show_default=True,
              help="How 0x32 is answered: one 0x35 per board, or one aggregate 0x36 frame.")
@click.option("--collisions", is_flag=True,
              help="Model the half-duplex wire: a frame sent during an answer garbles both.")
@click.option("--boards", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Boards on the bus; board b channel c is slot 16*b+c.")
@click.option("--unlock-time-ms", type=click.IntRange(10, 655350), default=500,
              show_default=True, help="Coil on-time until a 0x37 frame changes it.")
@click.option("--silent-unlock", is_flag=True,
              help="Boards do not answer unlock commands (some firmware does not).")
@click.option("--bit-set-means-unlocked", is_flag=True,
              help="Report a released lock as a set bit (the other firmware polarity).")
@click.option("--empty", is_flag=True, help="Start with no fob in any slot.")
@click.option("--no-reply", is_flag=True, help="Fault: boards obey but never answer.")
@click.option("--delay-ms", type=click.IntRange(0, 60000), default=0,
              help="Fault: answer this late.")
@click.option("--bad-checksum", is_flag=True, help="Fault: answers carry a wrong SUM.")
@click.option("--garbage", is_flag=True, help="Fault: line noise before each answer.")
@click.option("--garbage-only", is_flag=True, help="Fault: line noise instead of answers.")
@click.option("--offline-board", type=click.IntRange(0, 15), multiple=True,
              help="Fault: this board is dead (repeatable).")
@click.option("--jam", "jam_slots", type=click.IntRange(1), multiple=True,
              help="Fault: this slot's latch is jammed open (repeatable).")
@click.option("--console/--no-console", default=True, show_default=True,
              help="Read commands from stdin (type 'help') to switch faults or take keys.")
def board(
    listen: str, status_all: str, collisions: bool, boards: int, unlock_time_ms: int, silent_unlock: bool,
    bit_set_means_unlocked: bool, empty: bool, no_reply: bool, delay_ms: int,
    bad_checksum: bool, garbage: bool, garbage_only: bool, offline_board: tuple[int, ...],
    jam_slots: tuple[int, ...], console: bool,
) -> None:
    """Serve Kerong lock boards backed by a simulated cabinet until Ctrl-C."""
    model = CabinetModel(range(1, 16 * boards + 1))
    if not empty:
        model.load({slot: f"FOB-{slot:03d}" for slot in model.slots})
    for slot in jam_slots:
        if slot not in model.slots:
            raise click.BadParameter(f"no slot {slot} on {boards} board(s)", param_hint="--jam")
        model.set_jammed(slot)
    faults = KerongFaults(
        no_reply=no_reply, delay_s=delay_ms / 1000, bad_checksum=bad_checksum,
        garbage_before=garbage, garbage_instead=garbage_only, offline_boards=set(offline_board),
        collisions=collisions,
    )
    board_sim = KerongBoardSim(
        model, boards=boards, unlock_time_ms=unlock_time_ms, answers_unlock=not silent_unlock,
        bit_set_means_locked=not bit_set_means_unlocked, faults=faults,
        status_all_variant="aggregate" if status_all == "aggregate" else "per-board",
    )
    server = KerongBoardServer(board_sim, listen)
    try:
        server.start()
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot listen on {listen}: {exc}") from exc
    previous = _stop_on_signals()
    try:
        click.echo(f"kerong board simulator: {boards} board(s) on {server.url}")
        sys.stdout.flush()
        if console:
            for line in sys.stdin:
                answer = board_sim.control(line)
                if answer:
                    click.echo(answer)
                    sys.stdout.flush()
        threading.Event().wait()  # stdin closed (or no console): serve until Ctrl-C
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> dict[int, SignalHandler]:
    """Make Ctrl-C and SIGTERM stop the simulator cleanly, whatever the parent set.

    A process started in the background by a non-interactive shell inherits SIGINT as
    ignored, and a process manager stops with SIGTERM; both must still shut the server down.
    Returns the previous handlers so an in-process caller (tests) gets them back.
    """
    previous: dict[int, SignalHandler] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _interrupt)
    return previous


# More simulators (``modbus`` relay boards, ``reader`` for RFID, ...) register here with
# ``@sim.command("name")`` in the same style: build a CabinetModel, serve, wait for Ctrl-C.
