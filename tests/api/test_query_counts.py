"""A list page costs the same number of SQL statements for 1 row as for many.

A page that loads each row's key, slot or unit one by one (N+1) is what made the open-loans
page 16 ms on the benchmark dataset. Every list endpoint for which the test world holds
several rows (keys, loans, people, cards, events, alarms, departments...) is held to a
constant statement count, so an administrator's page stays as fast with 2,000 keys as with
20; the test names the ones it could check. Timings themselves are measured in bench/.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World

V1 = "/api/v1"


@pytest.fixture
def statements(world: World) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(world.runtime.engine, "before_cursor_execute", count)
    yield seen
    event.remove(world.runtime.engine, "before_cursor_execute", count)


def _list_paths(world: World, headers: dict[str, str]) -> list[str]:
    spec = world.client.get(f"{V1}/openapi.json", headers=headers).json()
    paths = []
    for path, ops in spec["paths"].items():
        params = {p["name"] for p in ops.get("get", {}).get("parameters", [])}
        if "{" not in path and "limit" in params and not path.endswith((".csv", "/stream")):
            paths.append(path.removeprefix(V1))
    return sorted(paths)


def test_a_list_page_costs_the_same_statements_for_1_row_as_for_many(
    world: World, statements: list[str]
) -> None:
    for n, key in enumerate(["U1201", "U1202", "E-PWR"]):
        world.loan(key, world.ids["staff_a"], drawn_hours_ago=3 + n, due_in_hours=-1 + n)
    admin = world.token(AccountRole.ADMIN)
    for code in ("OPS", "FIN"):  # logged writes, so the event list has rows too
        made = world.client.post(f"{V1}/departments", json={"code": code, "name": code},
                                 headers=admin)
        assert made.status_code == 201, made.text
    for key in ("U1201", "U1202"):  # alarms with a key each, raised as a person would
        raised = world.client.post(f"{V1}/alarms", headers=admin, json={
            "kind": "key_damaged", "message": f"{key} bent", "key_id": str(world.ids[f"key:{key}"])})
        assert raised.status_code == 201, raised.text
    paths = _list_paths(world, admin)
    assert {"/keys", "/loans", "/people", "/cards", "/events"} <= set(paths)
    checked = []
    for path in paths:
        costs, sizes = [], []
        for limit in (1, 50):
            statements.clear()
            page = world.client.get(f"{V1}{path}", params={"limit": limit}, headers=admin)
            assert page.status_code == 200, (path, page.text)
            costs.append(len(statements))
            sizes.append(len(page.json()["items"]))
        if sizes[1] > 1:
            checked.append(path)
            assert costs[0] == costs[1], (
                f"{path}: {costs[0]} statements for 1 row, {costs[1]} for {sizes[1]} rows")
    # the world has several of each of these, so the comparison above had teeth for them
    assert {"/keys", "/loans", "/people", "/cards", "/events", "/alarms"} <= set(checked)
