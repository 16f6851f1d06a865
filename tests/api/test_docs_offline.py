"""``/api/v1/docs`` and ``/api/v1/redoc`` need nothing from the Internet (issue 11 item 1).

A building LAN has no route to a CDN: the pages may reference only this server, and every
file they reference must be served by it.
"""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import World

V1 = "/api/v1"
URL = re.compile(r"""(?:src|href)=["']([^"']+)["']|(?:url|spec-url)\s*[:=]\s*["']([^"']+)["']""")


def _references(html: str) -> list[str]:
    return [a or b for a, b in URL.findall(html)]


@pytest.mark.parametrize("page", ["docs", "redoc"])
def test_docs_pages_reference_only_local_files_that_are_served(world: World, page: str) -> None:
    response = world.client.get(f"{V1}/{page}")
    assert response.status_code == 200
    refs = _references(response.text)
    assert refs, "the page references no script at all"
    remote = [r for r in refs if re.match(r"^(https?:)?//", r)]
    assert remote == [], f"/{page} loads from outside the cabinet: {remote}"
    assert "fonts.googleapis" not in response.text and "cdn.jsdelivr" not in response.text
    for ref in refs:
        got = world.client.get(ref)
        assert got.status_code == 200, f"{ref}: {got.status_code}"
        assert len(got.content) > 0


def test_vendored_viewers_carry_their_licences(world: World) -> None:
    for name in ("LICENSE-swagger-ui", "LICENSE-redoc"):
        assert world.client.get(f"{V1}/docs/static/{name}").status_code == 200
