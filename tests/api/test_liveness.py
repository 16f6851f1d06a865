"""The liveness check answered before the admin API is made (issue 15 item 4, issue 12).

A monitor polls ``GET /api/v1/health`` every few seconds; had the poll made the daemon's
admin API, its 12 MB would be held on every monitored cabinet from the first poll on. The
daemon answers it from ``api.liveness`` until something else makes the admin API. What a
monitor or a security review would notice if the two answers drifted apart: a different body
(another status or version, the hub link missing), or missing security headers. So each
case compares the early answer, byte for byte and header for header, with the one the made
admin API gives for the same cabinet."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_admin_app
from api.liveness import LivenessAnswer
from kiosk.config import Settings
from kiosk.daemon import AdminOnFirstRequest
from kiosk.fleet import state as fleet_state
from kiosk.runtime import Runtime

HEADERS = ("content-type", "cache-control", "x-content-type-options", "x-frame-options",
           "referrer-policy", "strict-transport-security")


def _enrol(runtime: Runtime, *, online: bool, since: dt.datetime | None) -> None:
    fleet_state.save_enrolment(runtime.engine, fleet_state.Enrolment(
        hub_url="https://hub.example:8443", hub_public_key="00" * 32, site="tower-a",
        cabinet_id=runtime.settings.cabinet_id))
    fleet_state.save_link(runtime.engine, online=online, offline_since=since,
                          last_contact=since, shipped_seq=41)


async def _both(runtime: Runtime, base_url: str) -> tuple[httpx.Response, httpx.Response, bool]:
    made: list[int] = []

    def build() -> FastAPI:
        made.append(1)
        return create_admin_app(runtime, lazy_console=True)

    lazy = AdminOnFirstRequest(build, LivenessAnswer(runtime))
    eager = create_admin_app(runtime, lazy_console=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lazy),
                                 base_url=base_url) as client:
        early = await client.get("/api/v1/health")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=eager),
                                 base_url=base_url) as client:
        by_api = await client.get("/api/v1/health")
    return early, by_api, bool(made)


@pytest.mark.parametrize("link", ["no hub", "online", "offline since 14:02"])
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_the_early_liveness_answer_is_the_admin_apis_own(
    tmp_path: Path, link: str, scheme: str,
) -> None:
    runtime = Runtime.open(Settings(data_dir=tmp_path, cabinet_id="cab-01",
                                    timezone="Asia/Shanghai"))
    try:
        if link == "online":
            _enrol(runtime, online=True, since=None)
        elif link.startswith("offline"):
            _enrol(runtime, online=False, since=dt.datetime(2026, 12, 5, 6, 2, tzinfo=dt.UTC))
        early, by_api, made = await _both(runtime, f"{scheme}://admin")
    finally:
        runtime.close()
    assert not made  # the poll did not make the admin API
    assert (early.status_code, by_api.status_code) == (200, 200)
    assert early.content == by_api.content
    assert {h: early.headers.get(h) for h in HEADERS} == {h: by_api.headers.get(h) for h in HEADERS}
    body = json.loads(early.content)
    assert body["status"] == "ok"
    if link == "no hub":
        assert "fleet" not in body
    elif link == "online":
        assert body["fleet"]["online"] is True and body["fleet"]["offline_since"] is None
    else:  # the cabinet's wall clock, as its screen shows it (issue 12)
        assert body["fleet"]["online"] is False
        assert body["fleet"]["offline_since_local"] == "14:02"
    if scheme == "https":
        assert early.headers["strict-transport-security"].startswith("max-age=")


async def test_only_the_public_get_is_answered_early(tmp_path: Path) -> None:
    """The details (``audit:read``), another method or a look-alike path go to the admin API,
    which makes itself for them and refuses what it refuses."""
    runtime = Runtime.open(Settings(data_dir=tmp_path, cabinet_id="cab-01"))
    made: list[int] = []

    def build() -> FastAPI:
        made.append(1)
        return create_admin_app(runtime, lazy_console=True)

    lazy = AdminOnFirstRequest(build, LivenessAnswer(runtime))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=lazy),
                                     base_url="http://admin") as client:
            assert (await client.post("/api/v1/health")).status_code == 405
            assert made == [1]
            assert (await client.get("/api/v1/health/details")).status_code == 401
    finally:
        runtime.close()
