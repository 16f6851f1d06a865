"""Long lists come in pages of 25 (a tower has hundreds of people and rights: a phone must
not scroll through all of them), with the filters kept from page to page."""

from __future__ import annotations

from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World
from tests.console.conftest import console_user


def test_people_come_in_pages_and_keep_the_filter(world: World) -> None:
    for i in range(60):
        world.person(f"Z{i:03d}", dept="A")
    user = console_user(world, AccountRole.ADMIN)
    first = user.get("/console/people")
    assert "第 1 页，共 3 页" in first.text
    assert first.text.count('href="/console/people/') == 25
    filtered = user.get(f"/console/people?department_id={world.ids['dept:A']}")
    assert "page=2" in filtered.text and "department_id=" in filtered.text
    second = user.get("/console/people?page=2")
    assert "第 2 页，共 3 页" in second.text
    assert user.get("/console/people?page=0").status_code == 422


def test_every_list_answers_with_paging(world: World) -> None:
    user = console_user(world, AccountRole.ADMIN)
    for path in ("/console/rights?page=1", "/console/keys?page=1", "/console/owners?page=1",
                 "/console/alarms?page=1"):
        assert user.get(path).status_code == 200, path
