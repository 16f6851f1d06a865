"""Part "rest" of the schemathesis run (``tests/api/schemathesis_run.py``) on PostgreSQL
(collected only when the suite runs PostgreSQL too: ``CI=true`` or
``KIOSK_TEST_POSTGRES=1``): the operations tagged alarms (F1), loans, the attached cabinet,
notifications, and every tag no other part names."""

from tests.api.schemathesis_run import (  # noqa: F401 (the fixtures this file's test uses)
    api_schema,
    conformance_test,
)
from tests.api.schemathesis_run import postgres_db_url as db_url  # noqa: F401

test_every_operation_conforms_and_never_fails = conformance_test("rest")
