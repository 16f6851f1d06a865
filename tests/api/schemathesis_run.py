"""Property-based run of schemathesis over every operation of the app's own OpenAPI document.

Every response must be documented (status code, content type, body schema, problem details
for errors) and no input may produce a 5xx. The app runs in-process (ASGI) on the test
database, with an administrator's and an auditor's token, and every check
runs (``--checks all``); the live feed ends its streams quickly here so a
generated request to it returns. Generated ids are swapped, some of the time, for ids of
records that exist, so the runs reach past "404 not found" into the state changes.

The run is split by the operations' tags into the parts of ``PARTS``, a test file each
(``tests/api/test_schemathesis_<part>.py`` on SQLite, ``..._<part>_postgres.py`` on
PostgreSQL): the suite hands whole files to its workers (``--dist loadfile``), and one file
of all 128 operations was a single test of several minutes that the other workers waited
for. The last part takes every operation the others leave, so a route with a new tag still
runs; ``tests/api/test_schemathesis_split.py`` checks that the parts together cover every
operation exactly once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import CheckFunction
from schemathesis.config import SchemathesisConfig
from schemathesis.pytest.lazy import LazySchema
from schemathesis.specs.openapi.checks import negative_data_rejection

from api.app import create_admin_app
from api.deps import AdminOptions
from api.schemas import MAX_SEQ
from kiosk.runtime import Runtime
from kiosk.services.credentials import AuthPolicy
from kiosk.store.models import Role
from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World, attached_cabinet, build_world
from tests.conftest import database_url

TOKENS: dict[AccountRole, dict[str, str]] = {}
WORLD: list[World] = []


@pytest.fixture(name="db_url")
def sqlite_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite: imported as ``db_url`` by the SQLite parts."""
    with database_url("sqlite", request, tmp_path) as url:
        yield url


@pytest.fixture(name="db_url")
def postgres_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """PostgreSQL: imported as ``db_url`` by the ``_postgres`` parts (collected only when
    the suite runs PostgreSQL too: ``CI=true`` or ``KIOSK_TEST_POSTGRES=1``)."""
    with database_url("postgres", request, tmp_path) as url:
        yield url


@pytest.fixture
def api_schema(
    request: pytest.FixtureRequest, runtime: Runtime, policy: AuthPolicy
) -> Iterator[schemathesis.BaseSchema]:
    # schemathesis 4.32 renames the running item through ``node._nodeid``, which pytest 9.2
    # no longer has as an attribute; give it one so the per-operation reports carry names.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    options = AdminOptions(
        auth_policy=policy, stream_heartbeat_seconds=0.05, stream_max_seconds=0.1
    )
    app = create_admin_app(runtime, options)
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(TestClient(app))
        world: World = build_world(runtime, client, policy)
        stack.enter_context(attached_cabinet(world))  # the live and remote-unlock endpoints
        # K2: an administrator acts as a person who holds the admin role (issue 16).
        admin_person = world.person("ADM-ST", dept=None, roles=(Role.STAFF, Role.CUSTODIAN,
                                                                 Role.ADMIN))
        TOKENS.clear()
        TOKENS[AccountRole.ADMIN] = world.token(AccountRole.ADMIN, person=admin_person)
        TOKENS[AccountRole.AUDITOR] = world.token(AccountRole.AUDITOR)
        WORLD[:] = [world]
        loaded = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, config=CONFIG)
        pools = _pools(world)

        @loaded.hook
        def flatmap_path_parameters(
            context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
        ) -> st.SearchStrategy[Any]:
            if path_parameters is None:
                return st.just(path_parameters)
            return _swap_ids(path_parameters, pools)

        @loaded.hook
        def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
            if isinstance(body, dict):
                return _swap_ids(body, pools)
            return st.just(body)

        yield loaded


def _pools(world: World) -> dict[str, list[Any]]:
    """Ids of existing records by parameter name (one of each kind the tower lacks is made)."""
    from kiosk.store.models import Alarm, Approval, DutyShift

    now = dt.datetime.now(dt.UTC)
    approval = Approval(key_id=world.ids["key:E-PWR"], requested_for_id=world.ids["staff_a"],
                        reason="检修", valid_until=now + dt.timedelta(hours=2))
    shift = DutyShift(person_id=world.ids["manager"], starts_at=now,
                      ends_at=now + dt.timedelta(hours=8))
    alarms = [Alarm(kind="test", message="测试") for _ in range(3)]
    world.add(approval, shift, *alarms)
    loan = world.loan("U1202", world.ids["staff_b"], drawn_hours_ago=3, due_in_hours=-1)
    people = [world.ids[k] for k in ("custodian", "staff_a", "staff_b", "leader_a", "manager",
                                    "proxy")]
    keys = [world.ids[k] for k in ("key:U1201", "key:U1202", "key:E-PWR")]
    return {
        "person_id": people, "requested_for_id": people, "proxy_id": people,
        "called_by_id": people, "custodian_id": people,
        "owner_id": [world.ids["owner"], *people],
        "key_id": keys, "group_id": [world.ids["group"]], "key_group_id": [world.ids["group"]],
        "slot_id": [world.ids[f"slot:{i}"] for i in (1, 4, 5)],
        "unit_id": [world.ids["unit"], world.ids["power_unit"]],
        "department_id": [world.ids["dept:A"], world.ids["dept:B"]],
        "cabinet_id": [world.ids["cabinet"]], "card_id": [world.ids["card_a"]],
        "approval_id": [approval.id], "shift_id": [shift.id], "loan_id": [loan],
        "alarm_id": [a.id for a in alarms], "seq": [1, 2, 3],
    }


def _valid(value: Any) -> bool:
    """Only a well-formed id is swapped: a deliberately invalid one (a negative test case)
    must reach the API as generated."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 1 <= value <= MAX_SEQ
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str) and len(value) == 36


def _swap_ids(values: dict[str, Any], pools: dict[str, list[Any]]) -> st.SearchStrategy[Any]:
    choices: dict[str, st.SearchStrategy[Any]] = {}
    for name, value in values.items():
        pool = pools.get(name)
        if pool and _valid(value):
            existing = [v if isinstance(v, int) else str(v) for v in pool]
            choices[name] = st.sampled_from([value, *existing])
        else:
            choices[name] = st.just(value)
    return st.fixed_dictionaries(choices)


schema = schemathesis.pytest.from_fixture("api_schema")


def _drops_authorization(case: schemathesis.Case) -> bool:
    """A negative case whose point is a missing ``Authorization`` header: send it without
    one (the 401 is the expected answer) instead of adding the test's token back."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    data = meta.phase.data
    said = [str(getattr(data, "description", "") or "")]
    said += [str(m) for m in getattr(data, "mutations", ()) or ()]
    return any("Authorization" in text for text in said)


def _file_part_given_another_type(case: schemathesis.Case) -> bool:
    """A negative case that only gives a multipart *file* part another JSON type ("was
    string, became boolean"): on the wire every part is bytes, and a file whose content is
    ``true`` is a valid file (the import then names its unknown column), so there is nothing
    for the API to refuse. Its other checks still run."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    if not (case.media_type or "").startswith("multipart/form-data"):
        return False
    data = meta.phase.data
    said = " ".join([str(getattr(data, "description", "") or "")]
                    + [str(m) for m in getattr(data, "mutations", ()) or ()])
    return "/properties/file " in said and "violates `type`" in said


CONFIG = SchemathesisConfig.from_dict({"checks": {"positive_data_acceptance": {
    # A schema-valid request may still be refused for what no JSON Schema states: an unknown
    # id (404), a state that forbids it (409: a closed alarm, a used approval), a business
    # rule (422 without field errors, checked below), a locked account or address (429).
    "expected-statuses": ["2XX", "401", "403", "404", "409", "422", "429"],
}}})
"""``--checks all`` as the API's own rules allow: positive_data_acceptance runs too."""


@schemathesis.check
def schema_valid_request_passes_validation(
    ctx: schemathesis.CheckContext, response: Any, case: schemathesis.Case
) -> bool | None:
    """A request generated as valid from the document is never refused by the API's schema
    validation (a 422 problem document with per-field ``errors``)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    body = response.json()
    # The API's schema validation names where the request broke the document: body, query,
    # path or header. A bulk import's per-row problems name a row of the uploaded file
    # (loc ["file", row, column]): the file's content, which no JSON Schema describes.
    refused = [e for e in body.get("errors") or []
               if (e.get("loc") or [None])[0] in ("body", "query", "path", "header")]
    if refused:
        raise AssertionError(
            f"the document allows what the API's validation refuses: {refused}"
        )
    return None


def _check(case: schemathesis.Case, role: AccountRole) -> None:
    headers = TOKENS[role]
    if case.operation.path == "/api/v1/auth/logout":
        # Logging out ends the token it is sent with; spend a fresh one, keep the shared one.
        headers = WORLD[0].token(role)
    if _drops_authorization(case):
        headers = {}
    # Every check runs (CONFIG says which answers a schema-valid request may get), and one
    # more: a request the document calls valid must pass the API's own schema validation (a
    # 422 naming body/query/path/header fields is a disagreement); a rule no JSON Schema can
    # state (valid_until within the next 31 days, a K7 approval only for a special-room key)
    # may still answer its documented 422 problem without field errors.
    not_applicable: list[CheckFunction] = (
        [negative_data_rejection] if _file_part_given_another_type(case) else [])
    case.call_and_validate(
        headers=headers,
        excluded_checks=not_applicable,
        # generous: the suite shares the machine's two cores with browser and fleet tests,
        # and a 10 s read timeout failed a healthy /events page on a loaded machine
        timeout=60,
        additional_checks=[schema_valid_request_passes_validation],
    )


SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "phases": [Phase.explicit, Phase.generate],
    "suppress_health_check": list(HealthCheck),
}


PARTS: dict[str, tuple[str, ...]] = {
    "records": ("people", "cards", "owners and units", "keys", "cabinets"),
    "access": ("accounts", "auth", "access rights", "approvals (K7)",
               "owner authorizations (K6)", "duty roster (K8)", "health", "metrics"),
    "documents": ("reports (K9)", "handovers (H1)", "bulk import", "events", "audit"),
    "rest": (),
}
"""The operations' tags each part runs; the last (empty) part runs every tag the others do
not name, so no operation falls out of the split."""


def part_schema(part: str) -> LazySchema:
    """The operations of one part: the tags it names, or for the last part every tag that no
    other part names."""
    tags = PARTS[part]
    if tags:
        return schema.include(tag=list(tags))
    named = [tag for other in PARTS.values() for tag in other]
    return schema.exclude(tag=named)


def conformance_test(part: str) -> Callable[..., None]:
    """The test of one part, to be bound in its file as
    ``test_every_operation_conforms_and_never_fails``."""

    @part_schema(part).parametrize()
    @settings(max_examples=5, **SETTINGS)  # type: ignore[arg-type]
    def test_every_operation_conforms_and_never_fails(case: schemathesis.Case) -> None:
        """Each generated request is sent with an auditor's token, then an administrator's:
        the auditor reads everything and writes nothing (every write a documented 403), so
        its call changes no state before the administrator's. One generation serves both
        roles."""
        _check(case, AccountRole.AUDITOR)
        _check(case, AccountRole.ADMIN)

    return test_every_operation_conforms_and_never_fails
