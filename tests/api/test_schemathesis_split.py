"""The schemathesis run's parts (``PARTS`` in ``tests/api/schemathesis_run.py``) together
run every operation of the admin API's OpenAPI document exactly once: a route added with a
new tag, a tag renamed, or an operation given the tags of two parts would otherwise drop
out of the property-based run, or run twice, without any test saying so.

The parts are checked here, on SQLite; the ``_postgres`` files run the same parts.
"""

from __future__ import annotations

import collections
import glob
from pathlib import Path

import schemathesis
from schemathesis.core.result import Ok

from api.app import create_admin_app
from api.deps import AdminOptions
from kiosk.runtime import Runtime
from kiosk.services.credentials import AuthPolicy
from tests.api.schemathesis_run import PARTS, part_schema
from tests.api.schemathesis_run import sqlite_db_url as db_url  # noqa: F401

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _documented(document: dict[str, object]) -> set[str]:
    """``METHOD /path`` of every operation the document states, read from it directly."""
    paths = document["paths"]
    assert isinstance(paths, dict)
    return {
        f"{method.upper()} {path}"
        for path, item in paths.items()
        for method in item
        if method in METHODS
    }


def test_every_operation_runs_in_exactly_one_part(runtime: Runtime, policy: AuthPolicy) -> None:
    app = create_admin_app(runtime, AdminOptions(auth_policy=policy))
    documented = _documented(app.openapi())
    loaded = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    runs: collections.Counter[str] = collections.Counter()
    for part in PARTS:
        # What schemathesis's pytest plugin does with a part's filters when its test runs.
        filters = loaded.config.operations.filter_set_with(include=part_schema(part).filter_set)
        chosen = loaded.clone(filter_set=filters)
        labels = []
        for result in chosen.get_all_operations():
            assert isinstance(result, Ok), result  # an operation the document cannot describe
            labels.append(result.ok().label)
        assert labels, f"part {part!r} runs no operation"
        runs.update(labels)
    assert sorted(documented - set(runs)) == [], "operations in no part"
    assert sorted(set(runs) - documented) == [], "parts run operations the document lacks"
    assert sorted(label for label, times in runs.items() if times > 1) == [], (
        "operations in more than one part"
    )


def test_every_part_has_a_file_on_each_database() -> None:
    """A part listed in ``PARTS`` but without its files would never run."""
    here = Path(__file__).parent
    for part in PARTS:
        for name in (f"test_schemathesis_{part}.py", f"test_schemathesis_{part}_postgres.py"):
            text = (here / name).read_text(encoding="utf-8")
            assert f'conformance_test("{part}")' in text, name
    files = {Path(p).name for p in glob.glob(str(here / "test_schemathesis_*.py"))}
    expected = {f"test_schemathesis_{part}.py" for part in PARTS}
    expected |= {f"test_schemathesis_{part}_postgres.py" for part in PARTS}
    assert files - {"test_schemathesis_split.py"} == expected


def test_every_part_starts_early() -> None:
    """Each part is among the suite's longest files, started first on its own worker
    (``LONGEST_FILES_FIRST`` in ``tests/conftest.py``)."""
    from tests.conftest import LONGEST_FILES_FIRST

    for part in PARTS:
        for suffix in ("", "_postgres"):
            assert f"tests/api/test_schemathesis_{part}{suffix}.py" in LONGEST_FILES_FIRST
