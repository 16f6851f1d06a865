"""``/api/v1/docs`` renders in a real Chromium that may reach nothing but the cabinet.

Every request the page makes to any other host is aborted and recorded: the page must
still list the API's operations (issue 11 item 1: Swagger UI used to come from a CDN and
was a blank page on a building LAN).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from api.app import create_admin_app
from kiosk.runtime import Runtime
from tests.ports import free_port

pytestmark = pytest.mark.browser


@pytest.fixture
def admin_url(runtime: Runtime) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        create_admin_app(runtime), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the admin app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _offline_page(browser: Any, base: str) -> tuple[Any, list[str]]:
    blocked: list[str] = []
    page = browser.new_page(viewport={"width": 1366, "height": 768})

    def only_the_cabinet(route: Any) -> None:
        if route.request.url.startswith(base + "/"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_cabinet)
    return page, blocked


def test_swagger_ui_lists_operations_without_network(
    browser: Any, admin_url: str, screenshots: Any
) -> None:
    page, blocked = _offline_page(browser, admin_url)
    page.goto(f"{admin_url}/api/v1/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=90_000)  # a bound, not a timing
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/reports" in p for p in paths)
    assert any("/api/v1/auth/login" in p for p in paths)
    assert page.locator(".information-container .title").inner_text().startswith("Key cabinet")
    page.screenshot(path=str(screenshots / "api-docs-swagger.png"))
    page.context.close()
    assert blocked == []


def test_redoc_lists_operations_without_network(browser: Any, admin_url: str) -> None:
    page, blocked = _offline_page(browser, admin_url)
    page.goto(f"{admin_url}/api/v1/redoc")
    page.locator("h1", has_text="Key cabinet admin API").wait_for(timeout=90_000)
    assert page.get_by_text("reports (K9)").count() > 0  # the menu lists the operations' tags
    assert page.get_by_text("/api/v1/reports/{report_id}/download").count() > 0
    page.context.close()
    assert blocked == []
