"""The hub's merged log by event type (issue 12, migration 0027): ``type=`` narrows the
events of every cabinet in view to one type, a rare one (an alarm, read from its own index)
as well as a common one (a draw, met every few rows of the log), in the list's order and
paged by position; a site-scoped account never sees another tower's events of that type;
a type that is no event type is refused with a clear message."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient

from kiosk.audit import NewEvent
from kiosk.store.models_auth import AccountRole
from kiosk.store.types import utcnow
from tests.fleet.site_records import ship_pending
from tests.fleet.test_hub_scope import (  # noqa: F401  (fleet: the fixture)
    Hub,
    _get,
    fleet,
)
from tests.fleet.test_hub_site_lists import _scoped
from tests.fleet.test_hub_site_records import _positions, _walk

T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
RARE = "alarm.door_forced"


def _write(fleet: Hub, code: str, events: list[tuple[str, int]]) -> None:  # noqa: F811
    """Events of ``(type, seconds after T0)`` at ``code``, by its clock, then shipped."""
    cab = fleet.cabinets[code]
    try:
        for kind, seconds in events:
            cab.audit.clock = lambda s=seconds: T0 + dt.timedelta(seconds=s)  # type: ignore[misc]
            cab.audit.append(NewEvent(type=kind, key_number=f"K-{code}"))
    finally:
        cab.audit.clock = utcnow
    ship_pending(fleet.runtime.audit, cab)


def _day(fleet: Hub) -> None:  # noqa: F811
    """Both towers: draws and refused taps around a few forced doors; two of them at the
    same second at both cabinets (the order then goes by cabinet, then seq)."""
    _write(fleet, "cab-a", [("key.drawn", 10), (RARE, 20), ("access.denied", 30),
                            (RARE, 40), ("key.drawn", 50), (RARE, 60)])
    _write(fleet, "cab-b", [(RARE, 15), ("key.drawn", 20), (RARE, 40), ("access.denied", 45)])


def _types(client: TestClient, path: str, headers: dict[str, str]) -> list[str]:
    return [e["type"] for e in _get(client, path, headers)["items"]]


def test_the_merged_log_of_one_type_lists_that_type_of_every_site_in_order(
        fleet: Hub) -> None:  # noqa: F811
    _day(fleet)
    admin = fleet.token("fleet-admin", AccountRole.ADMIN)
    client = fleet.client
    rare = _get(client, f"/hub/v1/site-events?type={RARE}", admin)
    # cab-a's seq 2.. are its day (the fixture's draw is seq 1); newest first, then by
    # cabinet and seq where two events share a second (40 s: cab-b's, then cab-a's)
    assert _positions(rare) == [("cab-a", 7), ("cab-b", 4), ("cab-a", 5), ("cab-a", 3),
                                ("cab-b", 2)]
    assert {e["type"] for e in rare["items"]} == {RARE} and rare["next"] is None
    assert {e["site"] for e in rare["items"]} == {"tower-a", "tower-b"}
    # the same rows as the whole log, filtered by hand
    whole = _get(client, "/hub/v1/site-events?limit=200", admin)
    assert _positions(rare) == [(e["cabinet_id"], e["seq"]) for e in whole["items"]
                                if e["type"] == RARE]
    drawn = _get(client, "/hub/v1/site-events?type=key.drawn", admin)
    assert _positions(drawn) == [p for e in whole["items"] if e["type"] == "key.drawn"
                                 for p in [(e["cabinet_id"], e["seq"])]]
    assert len(drawn["items"]) == 5  # each cabinet's first draw (the fixture's) and the day's
    # paged by position, one type throughout: the pages add up to the whole list
    for limit in (1, 2):
        assert _walk(client, f"/hub/v1/site-events?type={RARE}", admin, limit) == _positions(
            rare)
    assert _positions(_get(client, f"/hub/v1/site-events?type={RARE}&site=tower-b",
                           admin)) == [("cab-b", 4), ("cab-b", 2)]
    assert _positions(_get(client, f"/hub/v1/site-events?type={RARE}&cabinet_id=cab-a",
                           admin)) == [("cab-a", 7), ("cab-a", 5), ("cab-a", 3)]
    # a type no cabinet wrote: nothing (the filter is not a hint)
    assert _get(client, "/hub/v1/site-events?type=alarm.flooded", admin)["items"] == []


def test_a_site_scoped_supervisor_never_sees_another_towers_events_of_a_type(
        fleet: Hub) -> None:  # noqa: F811
    _day(fleet)
    sup = _scoped(fleet, "sup-a", AccountRole.SUPERVISOR)
    client = fleet.client
    for kind in (RARE, "key.drawn", "access.denied"):
        mine = _get(client, f"/hub/v1/site-events?type={kind}", sup)
        assert mine["items"] and {e["cabinet_id"] for e in mine["items"]} == {"cab-a"}, kind
        for probe in ("site=tower-b", "cabinet_id=cab-b"):
            assert _get(client, f"/hub/v1/site-events?type={kind}&{probe}", sup)["items"] == []
        # a page of one walks tower A's events of the type, never a tower B row left out
        assert _walk(client, f"/hub/v1/site-events?type={kind}", sup, 1) == _positions(mine)


def test_a_type_that_is_no_event_type_is_a_clear_422(fleet: Hub) -> None:  # noqa: F811
    admin = fleet.token("fleet-admin", AccountRole.ADMIN)
    for bad in ("Key.Drawn", "key drawn", "key..drawn", ".", "key.drawn'--", "k" * 65, ""):
        answer = fleet.client.get("/hub/v1/site-events", params={"type": bad}, headers=admin)
        assert answer.status_code == 422, bad
        assert "not an event type" in answer.text and "key.drawn" in answer.text, answer.text


def test_the_consoles_merged_log_has_a_type_filter(fleet: Hub) -> None:  # noqa: F811
    _day(fleet)
    fleet.token("fleet-admin", AccountRole.ADMIN)
    _scoped(fleet, "sup-a", AccountRole.SUPERVISOR)
    whole = fleet.console("fleet-admin")
    page = whole.get(f"/console/fleet/log?type={RARE}")
    assert page.status_code == 200, page.text
    assert 'id="f-type" name="type"' in page.text and f'value="{RARE}"' in page.text
    rows = re.findall(r'data-cabinet="([\w-]+)" data-seq="(\d+)"', page.text)
    assert rows == [("cab-a", "7"), ("cab-b", "4"), ("cab-a", "5"), ("cab-a", "3"),
                    ("cab-b", "2")]
    mine = fleet.console("sup-a").get(f"/console/fleet/log?type={RARE}").text
    assert re.findall(r'data-cabinet="([\w-]+)"', mine) == ["cab-a"] * 3
