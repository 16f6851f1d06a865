"""Configuration flows down by version cursor: what the hub authored, and "what changed
since N".

Every change of a configuration row (departments, people and their roles, cards, key
groups, access rights, the duty roster; keys and their home slots, approvals, units, owners
and owners' letters of authorization; a site's settings) takes the next version from the single
``hub_config_head`` row (locked until commit, so versions become visible in order) and
records ``(version, entity, row id)``: on the hub's PostgreSQL by triggers ``kiosk hub``
installs at start, so a write from any process (the API, a CLI, plain SQL) is seen;
elsewhere (SQLite, in tests) by an ORM listener. A cabinet asks for the changes after its
cursor and gets the current state of each changed row; cursor 0 means "everything" (a new cabinet,
or rows written before tracking, e.g. by ``kiosk demo-data`` on the hub).

People, cards and rights go to every cabinet; keys and what hangs off them only to the
cabinets that need them (``kiosk.fleet.config_keys``).

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

from kiosk.fleet import site_settings, site_settings_hub
from kiosk.fleet.config_keys import (
    KEYED_ENTITIES,
    dependents,
    key_home,
    needed_by,
    serialise_keyed,
    snapshot_for,
)
from kiosk.store.models import (
    AccessRight,
    Approval,
    AuthorizationUnit,
    Card,
    Department,
    DutyShift,
    Key,
    KeyGroup,
    Owner,
    OwnerAuthorization,
    Person,
    PersonRole,
    Unit,
)
from kiosk.store.models_fleet import HubConfigChange, HubConfigHead, HubSiteSettings

ENTITIES: dict[type[Any], str] = {
    Department: "department", Person: "person", Card: "card", KeyGroup: "key_group",
    AccessRight: "access_right", DutyShift: "duty_shift", Owner: "owner", Unit: "unit",
    Key: "key", OwnerAuthorization: "owner_authorization", Approval: "approval",
}
ORDER = ("site_settings", "department", "key_group", "owner", "unit", "person", "card", "access_right",
         "duty_shift", "key", "owner_authorization", "approval")
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
        if isinstance(obj, AuthorizationUnit):
            found.add(("owner_authorization", obj.authorization_id, False))
            continue
        if isinstance(obj, HubSiteSettings):  # keyed by its site: the site's document
            found.add((site_settings.ENTITY, obj.site_id, False))
            continue
        entity = ENTITIES.get(type(obj))
        if entity is not None and obj.id is not None:
            found.add((entity, obj.id, deleted))
    return found


def _record_changes(session: Session, _context: Any) -> None:
    if _engine_of(session) not in _tracked:
        return
    record_change(session, _changed(session))


def record_change(session: Session, changed: set[tuple[str, uuid.UUID, bool]]) -> None:
    """Take the next version for ``changed`` rows (also used by ingest: an approval spent
    at a cabinet is news for the others)."""
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
    if entity in KEYED_ENTITIES:
        return serialise_keyed(session, entity, row_id)
    if entity == site_settings.ENTITY:
        return site_settings_hub.serialise(session, row_id)
    raise ValueError(f"unknown entity {entity}")


def _all_rows(session: Session, cabinet_id: str | None) -> Iterable[tuple[str, uuid.UUID]]:
    for model, entity in ENTITIES.items():
        if entity in KEYED_ENTITIES and cabinet_id is not None:
            continue
        for row_id in session.scalars(select(model.id)):
            yield entity, row_id
    yield from site_settings_hub.snapshot_for(session, cabinet_id)
    if cabinet_id is not None:
        yield from snapshot_for(session, cabinet_id)


def _for_cabinet(session: Session, rows: list[tuple[str, uuid.UUID]],
                 cabinet_id: str) -> list[tuple[str, uuid.UUID]]:
    """Keep what ``cabinet_id`` needs; a key newly homed there brings its dependents."""
    out: list[tuple[str, uuid.UUID]] = []
    arrived: list[uuid.UUID] = []
    for entity, row_id in rows:
        if entity == site_settings.ENTITY:  # a site's settings go to its cabinets only
            if site_settings_hub.needed_by(session, row_id, cabinet_id):
                out.append((entity, row_id))
        elif entity not in KEYED_ENTITIES or serialise(session, entity, row_id) is None:
            out.append((entity, row_id))  # deletions go to everyone: harmless where unknown
        elif needed_by(session, entity, row_id, cabinet_id):
            out.append((entity, row_id))
            if entity == "key":
                key = session.get(Key, row_id)
                home = key_home(session, key) if key is not None else None
                if home is not None and home[0] == cabinet_id:
                    arrived.append(row_id)
    return out + dependents(session, arrived)


def changes_since(session: Session, since: int, cabinet_id: str | None = None
                  ) -> tuple[int, list[dict[str, Any]]]:
    """``(version, changes)``: every change after ``since`` up to ``version``, oldest first
    within an entity and entities in apply order. ``since`` 0 is the whole configuration.
    With ``cabinet_id``, only what that cabinet needs (keys homed there and what hangs off
    them; a moved key goes to every cabinet so the one it left learns of it)."""
    if since <= 0:
        version = current_version(session)  # read first: later changes come next time
        rows = list(dict.fromkeys(_all_rows(session, cabinet_id)))
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
        rows = [(entity, row_id) for entity, row_id, _v in latest]
        if cabinet_id is not None:
            rows = list(dict.fromkeys(_for_cabinet(session, rows, cabinet_id)))
    out: list[dict[str, Any]] = []
    for entity, row_id in sorted(rows, key=lambda r: (ORDER.index(r[0]), str(r[1]))):
        body = serialise(session, entity, row_id)
        out.append({"entity": entity, "id": str(row_id), "deleted": body is None,
                    "row": body})
    return version, out


TRACKED_TABLES = {"departments": "department", "people": "person", "cards": "card",
                  "key_groups": "key_group", "access_rights": "access_right",
                  "duty_roster": "duty_shift", "owners": "owner", "units": "unit",
                  "keys": "key", "owner_authorizations": "owner_authorization",
                  "approvals": "approval"}
CHILD_TABLES = (("person_roles", "person_id", "person", "hub_track_person_role"),
                ("authorization_units", "authorization_id", "owner_authorization",
                 "hub_track_authorization_unit"),
                # keyed by site_id; a deleted row is the site's document emptied
                ("hub_site_settings", "site_id", site_settings.ENTITY,
                 "hub_track_site_settings"))
"""``(table, column, entity, trigger function)``: a row of these changes the row its column
names (a person's role is the person's change), never deleted with it. The functions keep
the names migration 0012 drops."""
_TRACK_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v bigint; rid uuid; del boolean := {deleted};
BEGIN
  IF TG_OP = 'DELETE' THEN rid := OLD.{column}; ELSE rid := NEW.{column}; END IF;
  UPDATE hub_config_head SET version = version + 1 WHERE id = 1 RETURNING version INTO v;
  INSERT INTO hub_config_changes (version, entity, row_id, deleted)
    VALUES (v, {entity}, rid, del) ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$
"""


def tracking_sql() -> list[str]:
    """The statements that make every tracked table record its changes: one trigger
    function of one shape per table kind (the configuration tables share one, told their
    entity by the trigger's argument) and a trigger on each table. Names come from the
    code's own lists, never from input."""
    functions = [_TRACK_FUNCTION.format(function="hub_track_change", deleted="TG_OP = 'DELETE'",
                                        column="id", entity="TG_ARGV[0]")]
    calls = {table: f"hub_track_change('{entity}')" for table, entity in TRACKED_TABLES.items()}
    for table, column, entity, function in CHILD_TABLES:
        functions.append(_TRACK_FUNCTION.format(function=function, deleted="false",
                                                column=column, entity=f"'{entity}'"))
        calls[table] = f"{function}()"
    triggers = [statement for table, call in calls.items() for statement in (
        f"DROP TRIGGER IF EXISTS hub_track_{table} ON {table}",
        f"CREATE TRIGGER hub_track_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {call}")]
    return functions + triggers


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
            for statement in tracking_sql():
                session.execute(text(statement))
        session.execute(update(HubConfigHead).where(HubConfigHead.id == 1,
                                                    HubConfigHead.version == 0)
                        .values(version=1))
