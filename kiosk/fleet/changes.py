"""Configuration flows down by version cursor: what the hub authored, and "what changed
since N".

Every change of a configuration row (departments, people and their roles, cards, key
groups, access rights, the duty roster) takes the next version from the single
``hub_config_head`` row (locked until commit, so versions become visible in order) and
records ``(version, entity, row id)``: on the hub's PostgreSQL by triggers ``kiosk hub``
installs at start, so a write from any process (the API, a CLI, plain SQL) is seen;
elsewhere (SQLite, in tests) by an ORM listener. A cabinet asks for the changes after its
cursor and gets the current state of each changed row; cursor 0 means "everything" (a new cabinet,
or rows written before tracking, e.g. by ``kiosk demo-data`` on the hub).

Rows travel with their natural keys (department code, staff number, card UID, key group
code) as well as their ids: a cabinet that already holds the same tower (loaded from the
same import) matches them instead of duplicating them.
"""

from __future__ import annotations

import datetime as dt
import uuid
import weakref
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, event, func, insert, select, update
from sqlalchemy.orm import Session

from kiosk.store.models import (
    AccessRight,
    Card,
    Department,
    DutyShift,
    KeyGroup,
    Person,
    PersonRole,
)
from kiosk.store.models_fleet import HubConfigChange, HubConfigHead

ENTITIES: dict[type[Any], str] = {
    Department: "department", Person: "person", Card: "card", KeyGroup: "key_group",
    AccessRight: "access_right", DutyShift: "duty_shift",
}
ORDER = ("department", "key_group", "person", "card", "access_right", "duty_shift")
"""Apply order at the cabinet: a row's references arrive before it."""
MAX_CHANGES = 1000
_tracked: weakref.WeakSet[Engine] = weakref.WeakSet()


def install_change_tracking(engine: Engine) -> None:
    """Record configuration changes made through ``engine`` from now on. On PostgreSQL the
    triggers of migration 0012 already record every change, from any process or plain SQL;
    this ORM listener stands in where there are none (SQLite, in tests)."""
    if engine.dialect.name == "postgresql":
        return
    if not event.contains(Session, "after_flush", _record_changes):
        event.listen(Session, "after_flush", _record_changes)
    _tracked.add(engine)


def _engine_of(session: Session) -> Engine | None:
    bind = session.bind
    if isinstance(bind, Connection):
        return bind.engine
    return bind if isinstance(bind, Engine) else None


def _changed(session: Session) -> set[tuple[str, uuid.UUID, bool]]:
    found: set[tuple[str, uuid.UUID, bool]] = set()
    for obj, deleted in [*((o, False) for o in session.new),
                         *((o, False) for o in session.dirty if session.is_modified(o)),
                         *((o, True) for o in session.deleted)]:
        if isinstance(obj, PersonRole):
            found.add(("person", obj.person_id, False))
            continue
        entity = ENTITIES.get(type(obj))
        if entity is not None and obj.id is not None:
            found.add((entity, obj.id, deleted))
    return found


def _record_changes(session: Session, _context: Any) -> None:
    if _engine_of(session) not in _tracked:
        return
    changed = _changed(session)
    if not changed:
        return
    conn = session.connection()
    version = conn.execute(update(HubConfigHead).where(HubConfigHead.id == 1)
                           .values(version=HubConfigHead.version + 1)
                           .returning(HubConfigHead.version)).scalar_one()
    conn.execute(insert(HubConfigChange), [
        {"version": version, "entity": entity, "row_id": row_id, "deleted": deleted}
        for entity, row_id, deleted in sorted(changed, key=lambda c: (c[0], str(c[1])))])


def current_version(session: Session) -> int:
    return int(session.scalar(select(HubConfigHead.version).where(HubConfigHead.id == 1)) or 0)


def _iso(at: dt.datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _time(t: dt.time | None) -> str | None:
    return t.isoformat() if t is not None else None


def serialise(session: Session, entity: str, row_id: uuid.UUID) -> dict[str, Any] | None:
    """The current state of one row as it travels; None if it no longer exists."""
    if entity == "department":
        d = session.get(Department, row_id)
        return None if d is None else {"id": str(d.id), "code": d.code, "name": d.name,
                                       "name_en": d.name_en}
    if entity == "key_group":
        g = session.get(KeyGroup, row_id)
        return None if g is None else {"id": str(g.id), "code": g.code, "name": g.name,
                                       "requires_cosign": g.requires_cosign,
                                       "loan_minutes": g.loan_minutes}
    if entity == "person":
        p = session.get(Person, row_id)
        return None if p is None else {
            "id": str(p.id), "staff_no": p.staff_no, "name": p.name, "phone": p.phone,
            "active": p.active, "department": p.department.code if p.department else None,
            "roles": sorted(r.role.value for r in p.roles)}
    if entity == "card":
        c = session.get(Card, row_id)
        return None if c is None else {
            "id": str(c.id), "uid": c.uid, "person": c.person.staff_no, "kind": c.kind.value,
            "status": c.status.value, "valid_from": _iso(c.valid_from),
            "valid_to": _iso(c.valid_to)}
    if entity == "access_right":
        r = session.get(AccessRight, row_id)
        if r is None:
            return None
        person = session.get(Person, r.person_id) if r.person_id else None
        group = session.get(KeyGroup, r.key_group_id)
        return {"id": str(r.id), "person": person.staff_no if person else None,
                "role": r.role.value if r.role else None,
                "key_group": group.code if group else None, "weekdays": r.weekdays,
                "start_time": _time(r.start_time), "end_time": _time(r.end_time),
                "valid_from": _iso(r.valid_from), "valid_to": _iso(r.valid_to)}
    if entity == "duty_shift":
        shift = session.get(DutyShift, row_id)
        return None if shift is None else {
            "id": str(shift.id), "person": shift.person.staff_no,
            "starts_at": _iso(shift.starts_at), "ends_at": _iso(shift.ends_at)}
    raise ValueError(f"unknown entity {entity}")


def _all_rows(session: Session) -> Iterable[tuple[str, uuid.UUID]]:
    for model, entity in ENTITIES.items():
        for row_id in session.scalars(select(model.id)):
            yield entity, row_id


def changes_since(session: Session, since: int) -> tuple[int, list[dict[str, Any]]]:
    """``(version, changes)``: every change after ``since`` up to ``version``, oldest first
    within an entity and entities in apply order. ``since`` 0 is the whole configuration."""
    if since <= 0:
        version = current_version(session)  # read first: later changes come next time
        rows = [(entity, row_id, False) for entity, row_id in _all_rows(session)]
    else:
        top = session.execute(
            select(HubConfigChange.version).where(HubConfigChange.version > since)
            .order_by(HubConfigChange.version).limit(MAX_CHANGES)).scalars().all()
        if not top:
            return since, []
        version = top[-1]
        latest = session.execute(
            select(HubConfigChange.entity, HubConfigChange.row_id,
                   func.max(HubConfigChange.version))
            .where(HubConfigChange.version > since, HubConfigChange.version <= version)
            .group_by(HubConfigChange.entity, HubConfigChange.row_id)).all()
        rows = [(entity, row_id, False) for entity, row_id, _v in latest]
    out: list[dict[str, Any]] = []
    for entity, row_id, _ in sorted(rows, key=lambda r: (ORDER.index(r[0]), str(r[1]))):
        body = serialise(session, entity, row_id)
        out.append({"entity": entity, "id": str(row_id), "deleted": body is None,
                    "row": body})
    return version, out


TRACKED_TABLES = {"departments": "department", "people": "person", "cards": "card",
                  "key_groups": "key_group", "access_rights": "access_right",
                  "duty_roster": "duty_shift"}
_TRACK_FUNCTIONS = """
CREATE OR REPLACE FUNCTION hub_track_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v bigint; rid uuid; del boolean := TG_OP = 'DELETE';
BEGIN
  IF del THEN rid := OLD.id; ELSE rid := NEW.id; END IF;
  UPDATE hub_config_head SET version = version + 1 WHERE id = 1 RETURNING version INTO v;
  INSERT INTO hub_config_changes (version, entity, row_id, deleted)
    VALUES (v, TG_ARGV[0], rid, del) ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION hub_track_person_role() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v bigint; pid uuid;
BEGIN
  IF TG_OP = 'DELETE' THEN pid := OLD.person_id; ELSE pid := NEW.person_id; END IF;
  UPDATE hub_config_head SET version = version + 1 WHERE id = 1 RETURNING version INTO v;
  INSERT INTO hub_config_changes (version, entity, row_id, deleted)
    VALUES (v, 'person', pid, false) ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
"""


def prepare_hub_database(engine: Engine) -> None:
    """At hub start. On PostgreSQL, triggers on the configuration tables record every row
    change with the next version (idempotent; several hub processes may start at once: an
    advisory lock makes them take turns). Then version 0 ("never tracked") moves to 1, so the
    snapshot a new cabinet takes (cursor 0) has a version of its own."""
    from sqlalchemy import text

    from kiosk.store.db import write_session

    with write_session(engine) as session:
        if engine.dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(7412012)"))
            session.execute(text(_TRACK_FUNCTIONS))
            triggers = {**{t: f"hub_track_change('{e}')" for t, e in TRACKED_TABLES.items()},
                        "person_roles": "hub_track_person_role()"}
            for table, call in triggers.items():
                session.execute(text(f"DROP TRIGGER IF EXISTS hub_track_{table} ON {table}"))
                session.execute(text(
                    f"CREATE TRIGGER hub_track_{table} AFTER INSERT OR UPDATE OR DELETE ON "
                    f"{table} FOR EACH ROW EXECUTE FUNCTION {call}"))
        session.execute(update(HubConfigHead).where(HubConfigHead.id == 1,
                                                    HubConfigHead.version == 0)
                        .values(version=1))
