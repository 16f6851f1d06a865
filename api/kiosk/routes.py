"""The screen's endpoints: what to show, and what the person chose.

Plain Starlette endpoints (``api.kiosk.http`` says why and what they keep of FastAPI's
rules); the request bodies are pydantic models, as in the admin API."""

from __future__ import annotations

import asyncio
import weakref
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.kiosk.http import answer, body_of, query_of, route
from api.text_rules import MULTI_LINE, SINGLE_LINE
from kiosk.cabinet import Cabinet

PREFIX = "/kiosk/api"


def cabinet_of(request: Request) -> Cabinet:
    cabinet: Cabinet = request.app.state.cabinet
    return cabinet


def _signature(cabinet: Cabinet) -> tuple[Any, ...]:
    """What the page shows, cheaply (no database). ``Cabinet.tick()`` moves the session (a key
    taken or put back, a timeout) without bumping ``version``; comparing this with what was
    served at a version lets the long-poll wake for those changes too."""
    session, message, person = cabinet.session, cabinet.message, cabinet.visit.person
    return (
        session.state,
        session.open_slots,
        session.pending_slots,
        (message.code, message.until) if message else None,
        person.id if person else None,
    )


_SERVED: weakref.WeakKeyDictionary[Cabinet, dict[int, tuple[Any, ...]]] = (
    weakref.WeakKeyDictionary()
)


def _served(cabinet: Cabinet) -> dict[int, tuple[Any, ...]]:
    """Version → signature of the last screen served at that version."""
    return _SERVED.setdefault(cabinet, {})


def view(cabinet: Cabinet) -> dict[str, Any]:
    """``cabinet.screen()``, remembering what was served at its version (for the long-poll)."""
    signature = _signature(cabinet)
    data = cabinet.screen()
    served = _served(cabinet)
    served[data["version"]] = signature
    for old in [v for v in served if v < data["version"] - 16]:
        del served[old]
    return data


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# The same text rules as the admin API (``api.text_rules``): no NUL, no line breaks in a
# one-line field, no invisible bidirectional controls (issue 16, item 9).
KioskKey = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[^\x00-\x20\x7f]+$")]
KioskCode = Annotated[str, Field(min_length=1, max_length=32, pattern=SINGLE_LINE)]


def _line(max_length: int) -> Any:
    return Field(min_length=1, max_length=max_length, pattern=SINGLE_LINE)


class DrawRequest(_Body):
    keys: list[KioskKey] = Field(min_length=1, max_length=5)
    reason_code: KioskCode
    reason_text: Annotated[str, _line(200)] | None = None


class PickRequest(_Body):
    keys: list[KioskKey] = Field(min_length=1, max_length=5)


class ReturnRequest(_Body):
    key_number: KioskKey
    slot: int | None = Field(default=None, ge=1, description=(
        "A free slot to return to instead of the key's home (identity cabinets, key groups "
        "with return_anywhere); omitted: its home slot."))


class ApprovalRequest(_Body):
    key_number: KioskKey


class IntakeRequest(_Body):
    key_number: str = Field(min_length=1, max_length=32, pattern=r"^[\w\-\u4e00-\u9fff]+$")
    label: Annotated[str, _line(200)]
    room_number: Annotated[str, _line(32)] | None = None
    delivered_by: Annotated[str, _line(100)]
    delivered_by_department: Annotated[str, _line(100)]
    key_count: int = Field(default=1, ge=1, le=99)
    deliverer_confirmed: bool = True
    group_code: KioskCode = "UNIT"
    fob_tag: str | None = Field(default=None, max_length=32, pattern=r"^[0-9A-Fa-f]{4,30}$")
    slot: int | None = Field(default=None, ge=1)
    # Additive: the key's category (KeyCategory value) so a public-area or equipment-room key
    # registered at the screen is not filed as a unit key; None keeps the cabinet's default.
    category: Literal["unit", "public_area", "equipment", "other"] | None = None


class IntakeCheckRequest(_Body):
    """The intake form's first step: the key and its room, before the deliverer's details."""

    key_number: str = Field(min_length=1, max_length=32, pattern=r"^[\w\-\u4e00-\u9fff]+$")
    label: Annotated[str, _line(200)] | None = None
    room_number: Annotated[str, _line(32)] | None = None
    group_code: KioskCode = "UNIT"


PinDigits = Annotated[str, Field(min_length=1, max_length=8, pattern=r"^[0-9]+$")]


class PinRequest(_Body):
    pin: PinDigits


class PinChangeRequest(_Body):
    old_pin: PinDigits | None = None
    new_pin: PinDigits
    duress_pin: PinDigits | None = None


class HandoverStartRequest(_Body):
    notes: Annotated[str, Field(min_length=1, max_length=500, pattern=MULTI_LINE)] | None = None


SINCE = TypeAdapter(Annotated[int | None, Field(ge=0)])
"""``?since=``: wait until the version moves past this."""


async def screen(request: Request) -> Response:
    """The whole screen state; with ``since`` it long-polls (up to 10 s) for a change.

    A poll ends at once when the daemon is stopping, so the open page gets its answer before
    the listener's graceful shutdown runs out and cancels it (a 500 and a traceback)."""
    since = query_of(request, "since", SINCE, None)
    cabinet = cabinet_of(request)
    if since is not None:
        seen = _served(cabinet).get(since)
        for _ in range(50):
            if cabinet.stopping or cabinet.version != since \
                    or (seen is not None and _signature(cabinet) != seen):
                break
            await asyncio.sleep(0.2)
    return answer(view(cabinet))


async def draw(request: Request) -> Response:
    body = await body_of(request, DrawRequest)
    cabinet = cabinet_of(request)
    await cabinet.choose_draw(body.keys, body.reason_code, body.reason_text)
    return answer(view(cabinet))


async def pick(request: Request) -> Response:
    """Keys touched on the list, the reasons not yet: the cabinet arms their locks' boards
    (nothing opens; ``kiosk.cabinet.arming``). Answers how many slots were newly armed."""
    body = await body_of(request, PickRequest)
    armed = await cabinet_of(request).pick(body.keys)
    return answer({"armed": armed})


async def acknowledge_alarms(request: Request) -> Response:
    """F1: a keeper signed in at the screen acknowledges the cabinet's open alarms."""
    cabinet = cabinet_of(request)
    await cabinet.acknowledge_alarms()
    return answer(view(cabinet))


async def request_approval(request: Request) -> Response:
    """K7: refused a special-room key, the person at the screen asks their leader."""
    body = await body_of(request, ApprovalRequest)
    cabinet = cabinet_of(request)
    await cabinet.request_approval(body.key_number)
    return answer(view(cabinet))


async def enter_pin(request: Request) -> Response:
    """The PIN for a draw waiting for it. The duress PIN gets exactly this answer too."""
    body = await body_of(request, PinRequest)
    cabinet = cabinet_of(request)
    await cabinet.enter_pin(body.pin)
    return answer(view(cabinet))


async def change_pin(request: Request) -> Response:
    """Set or change the PIN of the person at the screen (badge + current PIN)."""
    body = await body_of(request, PinChangeRequest)
    cabinet = cabinet_of(request)
    await cabinet.change_pin(body.old_pin, body.new_pin, body.duress_pin)
    return answer(view(cabinet))


async def return_key(request: Request) -> Response:
    body = await body_of(request, ReturnRequest)
    cabinet = cabinet_of(request)
    await cabinet.choose_return(body.key_number, body.slot)
    return answer(view(cabinet))


async def return_without_badge(request: Request) -> Response:
    """K5: a key's fob was tapped and its returner has no badge: open, and flag the return."""
    cabinet = cabinet_of(request)
    await cabinet.return_without_badge()
    return answer(view(cabinet))


async def intake(request: Request) -> Response:
    body = await body_of(request, IntakeRequest)
    cabinet = cabinet_of(request)
    slot = await cabinet.choose_intake(**body.model_dump())
    return answer({**view(cabinet), "intake_slot": slot})


async def stock(request: Request) -> Response:
    """K1/K2: the custodian at the screen stocks the cabinet: the home slots of the keys on
    record that have never been in it are released, each key hung is ``key.stocked``."""
    cabinet = cabinet_of(request)
    slots = await cabinet.start_stock()
    return answer({**view(cabinet), "stock_slots": slots})


async def stock_finish(request: Request) -> Response:
    """完成: stocking ends; every released slot is locked again."""
    cabinet = cabinet_of(request)
    await cabinet.finish_stock()
    return answer(view(cabinet))


async def intake_check(request: Request) -> Response:
    """Issue 14, item 7: refuse an unknown room or a taken key number at the first step; a
    second delivery for a room that has a key comes back with its own number (``U606-2``)."""
    body = await body_of(request, IntakeCheckRequest)
    return answer(await cabinet_of(request).check_intake(**body.model_dump()))


async def still_here(request: Request) -> Response:
    """Any touch while choosing restarts the choice timer (the page throttles these)."""
    await cabinet_of(request).still_here()
    return answer({"ok": True})


async def cancel(request: Request) -> Response:
    cabinet = cabinet_of(request)
    await cabinet.cancel()
    return answer(view(cabinet))


async def handover_start(request: Request) -> Response:
    """H1: the keeper at the screen starts a handover; the incoming keeper taps next."""
    body = await body_of(request, HandoverStartRequest)
    cabinet = cabinet_of(request)
    await cabinet.start_handover(body.notes)
    return answer(view(cabinet))


async def handover_accept(request: Request) -> Response:
    """H1: the keeper at the screen (signed in by their badge tap) accepts the waiting one."""
    cabinet = cabinet_of(request)
    await cabinet.accept_handover()
    return answer(view(cabinet))


ROUTES: list[Route] = [
    route(PREFIX + path, endpoint, method) for path, endpoint, method in (
        ("/screen", screen, "GET"),
        ("/draw", draw, "POST"),
        ("/pick", pick, "POST"),
        ("/alarms/acknowledge", acknowledge_alarms, "POST"),
        ("/request-approval", request_approval, "POST"),
        ("/pin", enter_pin, "POST"),
        ("/pin/change", change_pin, "POST"),
        ("/return", return_key, "POST"),
        ("/return-without-badge", return_without_badge, "POST"),
        ("/intake", intake, "POST"),
        ("/stock", stock, "POST"),
        ("/stock/finish", stock_finish, "POST"),
        ("/intake/check", intake_check, "POST"),
        ("/still-here", still_here, "POST"),
        ("/cancel", cancel, "POST"),
        ("/handover/start", handover_start, "POST"),
        ("/handover/accept", handover_accept, "POST"),
    )
]
"""The screen's endpoints, each answering one method (``api.kiosk.http.route``)."""
