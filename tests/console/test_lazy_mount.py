"""The daemon loads the console on its first request, not at start (issue 15, item 4: the
pages, Jinja2 and their templates are memory an idle cabinet does not need).

Run in a fresh interpreter so "not loaded yet" means what it says: the admin app made as the
daemon makes it, on a real SQLite database, answers the API at once; the console's pages
arrive with the first request under /console and then serve every console path, its static
files and its 404s as an eagerly mounted console does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = """
import json, sys, tempfile
from pathlib import Path
from fastapi.testclient import TestClient
from api.app import create_admin_app
from kiosk.config import Settings
from kiosk.runtime import Runtime

seen = {}
with tempfile.TemporaryDirectory() as tmp:
    runtime = Runtime.open(Settings(data_dir=Path(tmp), cabinet_id="cab-01"))
    app = create_admin_app(runtime, lazy_console=sys.argv[1] == "lazy")
    client = TestClient(app, follow_redirects=False)
    seen["loaded_at_start"] = "api.console.routes" in sys.modules
    seen["health"] = client.get("/api/v1/health").status_code
    seen["loaded_after_api"] = "api.console.routes" in sys.modules
    login = client.get("/console/login")
    seen["login"] = [login.status_code, 'name="csrf"' in login.text]
    seen["loaded_after_console"] = "api.console.routes" in sys.modules
    seen["static"] = client.get("/console/static/console.css").status_code
    seen["unknown"] = client.get("/console/no-such-page").status_code
    seen["dashboard_signed_out"] = client.get("/console/").status_code
    seen["routes"] = sorted(getattr(r, "path", "") for r in app.routes
                            if getattr(r, "path", "").startswith("/console"))
    runtime.close()
print(json.dumps(seen))
"""


def _app(mode: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=True)
    seen: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


def test_the_daemon_loads_the_console_with_its_first_request_and_serves_it_unchanged() -> None:
    lazy, eager = _app("lazy"), _app("eager")
    assert lazy["loaded_at_start"] is False
    assert lazy["health"] == 200 and lazy["loaded_after_api"] is False
    assert lazy["login"] == [200, True] and lazy["loaded_after_console"] is True
    for what in ("login", "static", "unknown", "dashboard_signed_out", "routes"):
        assert lazy[what] == eager[what], what
    assert eager["loaded_at_start"] is True
