"""What the kiosk listener answers to a request it cannot take, exactly (issue 15, item 4).

The screen's listener used to be a FastAPI app and is a Starlette one now, so the daemon does
not load FastAPI at start (``tests/test_daemon_memory.py``). The page, a test rig or a local
script sees the same answers as before: these tests were written against the FastAPI app
and pin what it answered, status, body and headers, for a body that is not JSON, is not an
object, has the wrong content type or is missing; a bad query parameter; an unknown path
or method; a refusal by the cabinet or by the simulated hardware.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from rig import Rig

from api.kiosk.app import create_kiosk_app

SCREEN = "http://127.0.0.1:8081"
JSON = {"Content-Type": "application/json"}
NOT_AN_OBJECT = "Input should be a valid dictionary or object to extract fields from"


@pytest.fixture
async def screen(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    app = create_kiosk_app(rig.cabinet, port=8081)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=SCREEN) as client:
        yield client


@pytest.fixture
async def simulated(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    app = create_kiosk_app(rig.cabinet, rig.hw, port=8081)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=SCREEN) as client:
        yield client


def invalid(*errors: tuple[list[str], str]) -> dict[str, Any]:
    """The 422 body: each refused field named in both languages, then each error."""
    names = ", ".join(".".join(loc[1:]) or "body" for loc, _ in errors)
    return {
        "code": "invalid_input", "zh": f"输入无效：{names}", "en": f"Invalid input: {names}",
        "detail": "; ".join(f"{'.'.join(loc)}: {msg}" for loc, msg in errors),
        "errors": [{"loc": loc, "msg": msg} for loc, msg in errors],
    }


# ------------------------------------------------------------------------- bodies
BODIES: list[tuple[bytes, dict[str, str], list[tuple[list[str], str]]]] = [
    # not JSON: the position where parsing failed is named
    (b"{not json", JSON, [(["body", "1"], "JSON decode error")]),
    (b'{"keys": ["U1001"], "reason_code": "repair"} and more', JSON,
     [(["body", "45"], "JSON decode error")]),
    # no body at all, with or without a content type
    (b"", JSON, [(["body"], "Field required")]),
    (b"", {}, [(["body"], "Field required")]),
    # JSON, but not an object
    (b"null", JSON, [(["body"], NOT_AN_OBJECT)]),
    (b"[]", JSON, [(["body"], NOT_AN_OBJECT)]),
    (b"3", JSON, [(["body"], NOT_AN_OBJECT)]),
    # an object, but not sent as JSON: the body is not read as JSON
    (b"{}", {"Content-Type": "text/plain"}, [(["body"], NOT_AN_OBJECT)]),
    (b"keys=U1001", {"Content-Type": "application/x-www-form-urlencoded"},
     [(["body"], NOT_AN_OBJECT)]),
    (b"{}", {"Content-Type": "application/jsonx"}, [(["body"], NOT_AN_OBJECT)]),
    (b'{"keys": ["U1001"], "reason_code": "repair"}', {}, [(["body"], NOT_AN_OBJECT)]),
    # any JSON media type is JSON, whatever its parameters or case
    (b"{}", {"Content-Type": "application/json; charset=utf-8"},
     [(["body", "keys"], "Field required"), (["body", "reason_code"], "Field required")]),
    (b"{}", {"Content-Type": "APPLICATION/JSON"},
     [(["body", "keys"], "Field required"), (["body", "reason_code"], "Field required")]),
    (b"{}", {"Content-Type": "application/vnd.kiosk+json"},
     [(["body", "keys"], "Field required"), (["body", "reason_code"], "Field required")]),
    # each refused field by its path, an unknown field too
    (b'{"keys": ["a b", 3], "reason_code": "r\\n", "status": "open"}', JSON, [
        (["body", "keys", "0"], "String should match pattern '^[^\\x00-\\x20\\x7f]+$'"),
        (["body", "keys", "1"], "Input should be a valid string"),
        (["body", "reason_code"], "String should match pattern "
         "'^[^\\x00-\\x1f\\x7f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$'"),
        (["body", "status"], "Extra inputs are not permitted")]),
]
"""(body, headers, what the 422 names) for a draw; one cabinet serves them all."""


async def test_a_body_the_draw_cannot_take_is_a_422_naming_what_is_wrong(
    rig: Rig, screen: httpx.AsyncClient,
) -> None:
    uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(uid)
    before = len(rig.events())
    for content, headers, errors in BODIES:
        got = await screen.post("/kiosk/api/draw", content=content, headers=headers)
        case = (content, headers, got.text)
        assert got.status_code == 422, case
        assert got.headers["content-type"] == "application/json", case
        assert got.json() == invalid(*errors), case
    assert rig.cabinet.session.state.value == "choosing"
    assert len(rig.events()) == before, "a refused input leaves nothing behind"


async def test_a_body_that_is_not_utf8_is_a_400(screen: httpx.AsyncClient) -> None:
    for content in (b"\xff\xfe{", b'{"keys": "\xff"}'):
        got = await screen.post("/kiosk/api/draw", content=content, headers=JSON)
        assert (got.status_code, got.json()) == (
            400, {"detail": "There was an error parsing the body"}), content


async def test_an_optional_body_must_still_be_sent(screen: httpx.AsyncClient) -> None:
    """H1: the handover's notes are optional, its JSON object is not."""
    got = await screen.post("/kiosk/api/handover/start", content=b"", headers=JSON)
    assert (got.status_code, got.json()) == (422, invalid((["body"], "Field required")))
    empty = await screen.post("/kiosk/api/handover/start", json={})
    assert empty.status_code == 409 and empty.json()["code"] == "busy"  # no keeper signed in


async def test_a_route_without_a_body_ignores_one(screen: httpx.AsyncClient) -> None:
    got = await screen.post("/kiosk/api/still-here", content=b"garbage", headers=JSON)
    assert (got.status_code, got.json()) == (200, {"ok": True})


async def test_lax_values_are_taken_as_before(rig: Rig, screen: httpx.AsyncClient) -> None:
    """A slot given as the string "3" or as true is a number, 3.5 is not (as FastAPI had it:
    the body is validated as Python values, not as strict JSON)."""
    for slot in ("3", True):
        got = await screen.post("/kiosk/api/return", json={"key_number": "NOPE", "slot": slot})
        assert got.status_code == 409 and got.json()["code"] == "key_unknown", got.text
    got = await screen.post("/kiosk/api/return", json={"key_number": "NOPE", "slot": 3.5})
    assert got.json() == invalid(
        (["body", "slot"], "Input should be a valid integer, got a number with a fractional part"))


# ------------------------------------------------------------------------- queries
async def test_a_bad_since_is_a_422(screen: httpx.AsyncClient) -> None:
    not_an_integer = "Input should be a valid integer, unable to parse string as an integer"
    for query, msg in (("since=abc", not_an_integer), ("since=", not_an_integer),
                       ("since=1.5", not_an_integer),
                       ("since=-1", "Input should be greater than or equal to 0")):
        got = await screen.get(f"/kiosk/api/screen?{query}")
        assert (got.status_code, got.json()) == (422, invalid((["query", "since"], msg))), query


async def test_the_last_since_counts_and_unknown_parameters_are_ignored(
    screen: httpx.AsyncClient,
) -> None:
    plain = (await screen.get("/kiosk/api/screen")).json()
    for query in ("since=abc&since=99", "other=1"):
        got = await screen.get(f"/kiosk/api/screen?{query}")
        assert (got.status_code, got.json()) == (200, plain)


# ------------------------------------------------------------- paths and methods
async def test_an_unknown_path_is_a_json_404(screen: httpx.AsyncClient) -> None:
    """The simulation surface is not there without simulated hardware."""
    for path in ("/nope", "/static/nope.js", "/kiosk/docs", "/docs", "/sim/state", "/sim/tap"):
        got = await screen.get(path)
        assert (got.status_code, got.json()) == (404, {"detail": "Not Found"}), path
        assert got.headers["content-type"] == "application/json"
        assert got.headers["x-frame-options"] == "DENY"  # the guard's headers on every answer


async def test_a_wrong_method_is_a_json_405_saying_the_right_one(
    screen: httpx.AsyncClient,
) -> None:
    for method, path, allow in (
        ("POST", "/", "GET"), ("HEAD", "/", "GET"), ("POST", "/kiosk/api/screen", "GET"),
        ("HEAD", "/kiosk/api/screen", "GET"), ("GET", "/kiosk/api/draw", "POST"),
        ("PUT", "/kiosk/api/draw", "POST"), ("DELETE", "/kiosk/api/cancel", "POST"),
    ):
        got = await screen.request(method, path)
        assert (got.status_code, got.headers["allow"]) == (405, allow), (method, path)
        if method != "HEAD":
            assert got.json() == {"detail": "Method Not Allowed"}


async def test_a_trailing_slash_is_redirected(screen: httpx.AsyncClient) -> None:
    got = await screen.get("/kiosk/api/screen/")
    assert got.status_code == 307
    assert got.headers["location"] == f"{SCREEN}/kiosk/api/screen"


async def test_the_page_is_never_cached_and_its_files_are_served(
    screen: httpx.AsyncClient,
) -> None:
    page = await screen.get("/")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        got = await screen.get(f"/static/{name}")
        assert got.status_code == 200 and kind in got.headers["content-type"], name


# ------------------------------------------------------------------ refusals
async def test_a_cabinet_refusal_is_a_409_in_both_languages(screen: httpx.AsyncClient) -> None:
    got = await screen.post("/kiosk/api/draw", json={"keys": ["U1001"], "reason_code": "repair"})
    assert got.status_code == 409
    assert got.json() == {"code": "busy", "zh": "请稍候", "en": "Please wait",
                          "detail": "no draw can be chosen in state idle"}


async def test_the_simulated_hardware_refuses_what_the_cabinet_cannot_do(
    rig: Rig, simulated: httpx.AsyncClient,
) -> None:
    got = await simulated.post("/sim/take", json={"slot": 99999})
    assert (got.status_code, got.json()) == (409, {"detail": "the cabinet has no slot 99999"})
    fob = rig.hw.model.slots[1].fob
    got = await simulated.post("/sim/insert", json={"fob": "AB", "slot": 1})
    assert (got.status_code, got.json()) == (409, {"detail": f"slot 1 already holds {fob}"})
    got = await simulated.post("/sim/door", json={"open": "maybe"})
    assert (got.status_code, got.json()) == (422, invalid(
        (["body", "open"], "Input should be a valid boolean, unable to interpret input")))
    got = await simulated.post("/sim/tap", content=b"{}", headers={"Content-Type": "text/plain"})
    assert (got.status_code, got.json()) == (422, invalid((["body"], NOT_AN_OBJECT)))
    got = await simulated.get("/sim/writes?within_s=61")
    assert (got.status_code, got.json()) == (422, invalid(
        (["query", "within_s"], "Input should be less than or equal to 60")))
    got = await simulated.post("/sim/state")
    assert (got.status_code, got.headers["allow"]) == (405, "GET")


async def test_the_simulated_hardware_moves_as_asked(rig: Rig, simulated: httpx.AsyncClient) -> None:
    got = await simulated.post("/sim/power", json={"on": 1})  # 1 is true, as before
    assert got.status_code == 200 and got.json()["powered"] is True
    got = await simulated.post("/sim/door", json={"open": True})
    assert got.json()["door_open"] is True and rig.hw.model.door_open
    got = await simulated.post("/sim/tap", json={"uid": "04a1b2c3"})
    assert (got.status_code, got.json()) == (200, {"tapped": "04A1B2C3"})
    writes = await simulated.get("/sim/writes?within_s=0")
    assert writes.status_code == 200 and set(writes.json()) == {"settled", "pending", "stalled"}


# --------------------------------------------------------------------- the pick
async def test_a_pick_answers_how_many_slots_it_armed_and_refuses_a_bad_body(
    rig: Rig, screen: httpx.AsyncClient,
) -> None:
    """``POST /kiosk/api/pick``: a hint sent when a key is touched on the list (issue 15)."""
    got = await screen.post("/kiosk/api/pick", json={"keys": ["U1203"]})
    assert (got.status_code, got.json()) == (200, {"armed": 0})  # nobody is choosing
    uid, _ = rig.card_of(dept="ENG")
    await rig.cabinet.tap(uid)
    got = await screen.post("/kiosk/api/pick", json={"keys": ["U1203"]})
    assert (got.status_code, got.json()) == (200, {"armed": 1})
    got = await screen.post("/kiosk/api/pick", json={"keys": ["U1203"]})
    assert got.json() == {"armed": 0}  # already armed for this visit
    got = await screen.post("/kiosk/api/pick", json={"keys": []})
    assert got.status_code == 422
    assert got.json()["errors"] == [
        {"loc": ["body", "keys"], "msg": "List should have at least 1 item after validation, "
                                        "not 0"}]
    assert not any(rig.hw.model.is_unlocked(s) for s in rig.hw.model.slots)
