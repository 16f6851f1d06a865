"""Simulation control over HTTP (simulate mode only, loopback only): a person or a test taps
a card, takes a key, puts one back, opens the door or cuts the power, and the simulated
hardware changes exactly as the physical cabinet would."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from kiosk.errors import SimulationError

router = APIRouter(prefix="/sim", tags=["simulation"])


class SimControl(Protocol):
    """What the composition root's simulated hardware offers a person at the cabinet."""

    def tap(self, uid_hex: str, *, hold_s: float = 0.4) -> None: ...
    def take(self, slot: int, *, shut: bool = True, force: bool = False) -> str: ...
    def insert(self, fob: str, slot: int, *, shut: bool = True) -> None: ...
    def shut(self, slot: int) -> None: ...
    def door(self, open_: bool) -> None: ...
    def power(self, on: bool) -> None: ...
    def state(self) -> dict[str, Any]: ...


def get_hw(request: Request) -> SimControl:
    hw: SimControl = request.app.state.hardware
    return hw


HwDep = Annotated[SimControl, Depends(get_hw)]


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


def _physical(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        return fn(*args, **kw)
    except SimulationError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None


@router.post("/tap")
def tap(body: Tap, hw: HwDep) -> dict[str, str]:
    hw.tap(body.uid.upper())
    return {"tapped": body.uid.upper()}


@router.post("/take")
def take(body: SlotAction, hw: HwDep) -> dict[str, Any]:
    return {
        "took": _physical(hw.take, body.slot, shut=body.shut, force=body.force),
        "slot": body.slot,
    }


@router.post("/insert")
def insert(body: Insert, hw: HwDep) -> dict[str, Any]:
    _physical(hw.insert, body.fob.upper(), body.slot, shut=body.shut)
    return {"inserted": body.fob.upper(), "slot": body.slot}


@router.post("/shut")
def shut(body: SlotAction, hw: HwDep) -> dict[str, Any]:
    _physical(hw.shut, body.slot)
    return {"shut": body.slot}


@router.post("/door")
def door(body: Door, hw: HwDep) -> dict[str, Any]:
    hw.door(body.open)
    return hw.state()


@router.post("/power")
def power(body: Power, hw: HwDep) -> dict[str, Any]:
    hw.power(body.on)
    return hw.state()


@router.get("/state")
def state(hw: HwDep) -> dict[str, Any]:
    return hw.state()


@router.get("/writes")
async def writes(request: Request,
                 within_s: Annotated[float, Query(ge=0, le=60)] = 10.0) -> dict[str, Any]:
    """Wait until the cabinet's writer thread has committed every write queued so far.

    The screen moves on as soon as a write is queued (issue 15: writes run off the event
    loop), so a person's next step never waits for the disk, but a test or a demo that reads
    the database file the moment the screen is idle can read it a moment too early. This
    answers once what was queued has landed: ``settled`` is false if it has not within
    ``within_s`` seconds (e.g. the database is held by another process)."""
    writer = request.app.state.cabinet.writer
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not (settled := await writer.drain(max(0.0, deadline - loop.time()))):
        if loop.time() >= deadline:
            break
        await asyncio.sleep(0.05)  # stalled on a busy database: drain answers at once
    return {"settled": settled, "pending": writer.pending, "stalled": writer.stalled}
