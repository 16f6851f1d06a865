"""The schemathesis run of tests/api/test_schemathesis.py on PostgreSQL (collected only when
the suite runs PostgreSQL too: ``CI=true`` or ``KIOSK_TEST_POSTGRES=1``).

The same fixture and test, imported; only the database differs. Kept in a file of its own
because the suite spreads whole files over its workers and this run is its longest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_schemathesis import (  # noqa: F401 (collected here, on PostgreSQL)
    api_schema,
    test_every_operation_conforms_and_never_fails,
)
from tests.conftest import database_url


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url("postgres", request, tmp_path) as url:
        yield url
