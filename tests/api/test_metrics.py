"""``GET /api/v1/metrics``: counters derived from committed audit events, scoped by token."""

from __future__ import annotations

import itertools
import re
import sqlite3

from fastapi.testclient import TestClient

from api.app import create_admin_app
from kiosk.audit import NewEvent
from kiosk.metrics import AuditMetrics
from kiosk.runtime import Runtime
from kiosk.services import accounts, alarms, tx
from kiosk.store.models_auth import AccountRole
from tests.api.conftest import World

URL = "/api/v1/metrics"
_n = itertools.count(1)


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of one sample (``name{labels}``) in the exposition text."""
    pattern = rf"^{re.escape(name)}{re.escape('{' + labels + '}') if labels else ''} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    assert found, f"{name}{{{labels}}} not in:\n{text}"
    return float(found.group(1))


def metrics_token(world: World) -> dict[str, str]:
    """What a Prometheus server gets: an API token scoped to metrics:read alone."""
    username = f"prometheus-{next(_n)}"
    world.token(AccountRole.AUDITOR, username=username)  # makes the account
    with tx.write(world.audit) as session:
        account = accounts.find_by_username(session, username)
        assert account is not None
        _, secret = accounts.create_api_token(
            session, world.audit, by=None, account_id=account.id, name="prometheus",
            scopes=["metrics:read"], expires_at=None,
        )
    return {"Authorization": f"Bearer {secret}"}


def alarm(world: World, kind: str, *, slot: int | None = None, rule: str = "K2") -> None:
    with tx.write(world.audit) as session:
        alarms.raise_alarm(
            session, world.audit, kind=kind, message=f"test {kind}", rule=rule, actors=[],
            cabinet_id=world.ids["cabinet"],
            slot_id=world.ids[f"slot:{slot}"] if slot is not None else None,
        )


def test_metrics_count_events_committed_after_start(world: World) -> None:
    headers = metrics_token(world)
    before = world.client.get(URL, headers=headers)
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    assert sample(before.text, "kiosk_draws_total") == 0

    audit = world.audit
    for _ in range(3):
        audit.append(NewEvent(type="key.drawn", slot=1, key_number="U1201", decision="allow",
                              rules=["K3"]))
    audit.append(NewEvent(type="key.returned", slot=1, key_number="U1201", rules=["K4"]))
    audit.append(NewEvent(type="access.denied", decision="deny", rules=["K3"]))
    audit.append(NewEvent(type="access.denied", decision="deny", rules=["K8", "K3"]))
    audit.append(NewEvent(type="access.denied", decision="deny", rules=["K7"]))
    alarm(world, "door_forced")
    alarm(world, "door_forced")
    alarm(world, "bus_fault")
    alarm(world, "lock_fault", slot=2)
    alarm(world, "lock_fault", slot=2)
    alarm(world, "lock_fault", slot=3)
    world.loan("U1201", world.ids["staff_a"], drawn_hours_ago=1, due_in_hours=2)
    world.loan("U1202", world.ids["staff_a"], drawn_hours_ago=5, due_in_hours=-1)

    text = world.client.get(URL, headers=headers).text
    assert sample(text, "kiosk_draws_total") == 3
    assert sample(text, "kiosk_returns_total") == 1
    assert sample(text, "kiosk_denials_total", 'rule="K3"') == 2
    assert sample(text, "kiosk_denials_total", 'rule="K8"') == 1
    assert sample(text, "kiosk_denials_total", 'rule="K7"') == 1
    assert sample(text, "kiosk_alarms_total", 'kind="door_forced"') == 2
    assert sample(text, "kiosk_alarms_total", 'kind="lock_fault"') == 3
    assert sample(text, "kiosk_lock_bus_errors_total") == 1
    assert sample(text, "kiosk_lock_faults_total", 'slot="2"') == 2
    assert sample(text, "kiosk_lock_faults_total", 'slot="3"') == 1
    assert sample(text, "kiosk_audit_head_seq") == audit.head()[0]
    assert sample(text, "kiosk_open_loans") == 2
    assert sample(text, "kiosk_overdue_loans") == 1

    # A second scrape counts nothing twice.
    again = world.client.get(URL, headers=headers).text
    assert sample(again, "kiosk_denials_total", 'rule="K3"') == 2
    assert sample(again, "kiosk_lock_faults_total", 'slot="2"') == 2


def test_metrics_need_a_token_with_the_scope(world: World) -> None:
    assert world.client.get(URL).status_code == 401
    assert world.client.get(URL, headers=world.token(AccountRole.CUSTODIAN)).status_code == 403
    assert world.client.get(URL, headers=world.token(AccountRole.SUPERVISOR)).status_code == 200
    # The scraper's token reads metrics and nothing else.
    scraper = metrics_token(world)
    assert world.client.get("/api/v1/events", headers=scraper).status_code == 403


def test_listener_is_attached_while_the_app_runs(runtime: Runtime) -> None:
    def ours() -> list[object]:
        return [fn for fn in runtime.audit.listeners
                if isinstance(getattr(fn, "__self__", None), AuditMetrics)]

    with TestClient(create_admin_app(runtime)):
        assert len(ours()) == 1
    assert ours() == []  # the app stopped: its lifespan detached the collector


def test_refusals_heard_between_scrapes_are_counted_without_keeping_each_one(
    world: World,
) -> None:
    # A cabinet whose admin API was used once and that no Prometheus server scrapes hears
    # every refusal for months: what the collector keeps for the next scrape must not grow
    # with them (issue 15, item 4), and the next scrape still counts each one by rule.
    headers = metrics_token(world)
    assert world.client.get(URL, headers=headers).status_code == 200
    collector = next(owner for fn in world.audit.listeners
                     if isinstance(owner := getattr(fn, "__self__", None), AuditMetrics))

    def held() -> int:
        return sum(len(v) for v in vars(collector).values() if isinstance(v, list | dict | set))

    before = held()
    for n in range(400):
        world.audit.append(NewEvent(type="access.denied", decision="deny",
                                    rules=["K3"] if n % 2 else ["K8", "K7"]))
    for slot in (2, 2, 3):
        alarm(world, "lock_fault", slot=slot)
    assert held() <= before + 10  # a few new labels and event types, not 403 entries
    text = world.client.get(URL, headers=headers).text
    assert sample(text, "kiosk_denials_total", 'rule="K3"') == 200
    assert sample(text, "kiosk_denials_total", 'rule="K8"') == 200
    assert sample(text, "kiosk_denials_total", 'rule="K7"') == 200
    assert sample(text, "kiosk_lock_faults_total", 'slot="2"') == 2
    assert sample(text, "kiosk_lock_faults_total", 'slot="3"') == 1


def test_metrics_show_the_memory_sqlite_holds(world: World) -> None:
    """Issue 15, item 4: a cabinet's RSS grows while SQLite's page caches fill; the scrape
    says how much SQLite holds, so an operator can tell a cache filling from a leak."""
    headers = metrics_token(world)
    if world.runtime.engine.dialect.name != "sqlite":  # the server's memory, not the cabinet's
        assert "kiosk_sqlite_memory_bytes" not in world.client.get(URL, headers=headers).text
        return
    before = sample(world.client.get(URL, headers=headers).text, "kiosk_sqlite_memory_bytes")
    extra = sqlite3.connect(":memory:")
    try:
        extra.execute("CREATE TABLE filler (b BLOB)")
        extra.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 100,)] * 20_000)
        held = sample(world.client.get(URL, headers=headers).text, "kiosk_sqlite_memory_bytes")
        assert held - before > 1_500_000  # its pages, about 2 MB, in SQLite's own heap
    finally:
        extra.close()
    after = sample(world.client.get(URL, headers=headers).text, "kiosk_sqlite_memory_bytes")
    assert after < held - 1_500_000  # given back with the connection
