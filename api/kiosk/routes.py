"""The screen's endpoints: what to show, and what the person chose."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from kiosk.cabinet import Cabinet

router = APIRouter(prefix="/kiosk/api", tags=["kiosk"])


def get_cabinet(request: Request) -> Cabinet:
    cabinet: Cabinet = request.app.state.cabinet
    return cabinet


CabinetDep = Annotated[Cabinet, Depends(get_cabinet)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DrawRequest(_Body):
    keys: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(min_length=1, max_length=5)
    reason_code: str = Field(min_length=1, max_length=32)
    reason_text: str | None = Field(default=None, max_length=200)


class ReturnRequest(_Body):
    key_number: str = Field(min_length=1, max_length=32)


class IntakeRequest(_Body):
    key_number: str = Field(min_length=1, max_length=32, pattern=r"^[\w\-\u4e00-\u9fff]+$")
    label: str = Field(min_length=1, max_length=200)
    room_number: str | None = Field(default=None, max_length=32)
    delivered_by: str = Field(min_length=1, max_length=100)
    delivered_by_department: str = Field(min_length=1, max_length=100)
    key_count: int = Field(default=1, ge=1, le=99)
    deliverer_confirmed: bool = True
    group_code: str = Field(default="UNIT", min_length=1, max_length=32)
    fob_tag: str | None = Field(default=None, max_length=32, pattern=r"^[0-9A-Fa-f]{4,30}$")
    slot: int | None = Field(default=None, ge=1)


@router.get("/screen")
async def screen(
    cabinet: CabinetDep,
    since: Annotated[int | None, Query(ge=0, description="Wait until the version moves past this.")] = None,
) -> dict[str, Any]:
    """The whole screen state; with ``since`` it long-polls (up to 10 s) for a change."""
    if since is not None:
        for _ in range(50):
            if cabinet.version != since:
                break
            await asyncio.sleep(0.2)
    return cabinet.screen()


@router.post("/draw")
async def draw(body: DrawRequest, cabinet: CabinetDep) -> dict[str, Any]:
    await cabinet.choose_draw(body.keys, body.reason_code, body.reason_text)
    return cabinet.screen()


@router.post("/return")
async def return_key(body: ReturnRequest, cabinet: CabinetDep) -> dict[str, Any]:
    await cabinet.choose_return(body.key_number)
    return cabinet.screen()


@router.post("/intake")
async def intake(body: IntakeRequest, cabinet: CabinetDep) -> dict[str, Any]:
    slot = await cabinet.choose_intake(**body.model_dump())
    return {**cabinet.screen(), "intake_slot": slot}


@router.post("/cancel")
async def cancel(cabinet: CabinetDep) -> dict[str, Any]:
    await cabinet.cancel()
    return cabinet.screen()
