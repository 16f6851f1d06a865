"""Simulation control over HTTP (simulate mode only, loopback only): a person or a test taps
a card, takes a key, puts one back, opens the door or cuts the power, and the simulated
hardware changes exactly as the physical cabinet would.

The hardware's calls block (a tap holds the card on the reader), so they run in a worker
thread, as FastAPI ran these endpoints, and the screen's long-poll keeps being answered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.kiosk.http import answer, body_of, query_of, route
from kiosk.errors import SimulationError

PREFIX = "/sim"


class SimControl(Protocol):
    """What the composition root's simulated hardware offers a person at the cabinet."""

    def tap(self, uid_hex: str, *, hold_s: float = 0.4) -> None: ...
    def take(self, slot: int, *, shut: bool = True, force: bool = False) -> str: ...
    def insert(self, fob: str, slot: int, *, shut: bool = True) -> None: ...
    def shut(self, slot: int) -> None: ...
    def door(self, open_: bool) -> None: ...
    def power(self, on: bool) -> None: ...
    def state(self) -> dict[str, Any]: ...


def hardware_of(request: Request) -> SimControl:
    hw: SimControl = request.app.state.hardware
    return hw


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tap(_Body):
    uid: str = Field(pattern=r"^[0-9A-Fa-f]{8,20}$")


class SlotAction(_Body):
    slot: int = Field(ge=1)
    shut: bool = Field(default=True, description="Shut the compartment afterwards.")
    force: bool = Field(default=False, description="Pull through a locked latch (tamper).")


class Insert(_Body):
    fob: str = Field(min_length=1, max_length=32)
    slot: int = Field(ge=1)
    shut: bool = True


class Door(_Body):
    open: bool


class Power(_Body):
    on: bool


async def _physical(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """``fn`` in a worker thread; what the cabinet physically cannot do is a 409."""
    try:
        return await run_in_threadpool(fn, *args, **kw)
    except SimulationError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None


async def tap(request: Request) -> Response:
    body = await body_of(request, Tap)
    await run_in_threadpool(hardware_of(request).tap, body.uid.upper())
    return answer({"tapped": body.uid.upper()})


async def take(request: Request) -> Response:
    body = await body_of(request, SlotAction)
    took = await _physical(hardware_of(request).take, body.slot, shut=body.shut,
                           force=body.force)
    return answer({"took": took, "slot": body.slot})


async def insert(request: Request) -> Response:
    body = await body_of(request, Insert)
    await _physical(hardware_of(request).insert, body.fob.upper(), body.slot, shut=body.shut)
    return answer({"inserted": body.fob.upper(), "slot": body.slot})


async def shut(request: Request) -> Response:
    body = await body_of(request, SlotAction)
    await _physical(hardware_of(request).shut, body.slot)
    return answer({"shut": body.slot})


async def door(request: Request) -> Response:
    body = await body_of(request, Door)
    hw = hardware_of(request)

    def move() -> dict[str, Any]:
        hw.door(body.open)
        return hw.state()

    return answer(await run_in_threadpool(move))


async def power(request: Request) -> Response:
    body = await body_of(request, Power)
    hw = hardware_of(request)

    def switch() -> dict[str, Any]:
        hw.power(body.on)
        return hw.state()

    return answer(await run_in_threadpool(switch))


async def state(request: Request) -> Response:
    return answer(await run_in_threadpool(hardware_of(request).state))


WITHIN_S = TypeAdapter(Annotated[float, Field(ge=0, le=60)])


async def writes(request: Request) -> Response:
    """Wait until the cabinet's writer thread has committed every write queued so far.

    The screen moves on as soon as a write is queued (issue 15: writes run off the event
    loop), so a person's next step never waits for the disk, but a test or a demo that reads
    the database file the moment the screen is idle can read it a moment too early. This
    answers once what was queued has landed: ``settled`` is false if it has not within
    ``within_s`` seconds (e.g. the database is held by another process)."""
    within_s = query_of(request, "within_s", WITHIN_S, 10.0)
    writer = request.app.state.cabinet.writer
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not (settled := await writer.drain(max(0.0, deadline - loop.time()))):
        if loop.time() >= deadline:
            break
        await asyncio.sleep(0.05)  # stalled on a busy database: drain answers at once
    return answer({"settled": settled, "pending": writer.pending, "stalled": writer.stalled})


ROUTES: list[Route] = [
    route(PREFIX + path, endpoint, method) for path, endpoint, method in (
        ("/tap", tap, "POST"),
        ("/take", take, "POST"),
        ("/insert", insert, "POST"),
        ("/shut", shut, "POST"),
        ("/door", door, "POST"),
        ("/power", power, "POST"),
        ("/state", state, "GET"),
        ("/writes", writes, "GET"),
    )
]
"""The simulation surface, mounted only when the daemon runs simulated hardware."""
