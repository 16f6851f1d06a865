"""Settings per site, authored at the hub (issue 12): what a building decides centrally
reaches its cabinets by the same version cursor as people and keys.

Which settings are the hub's (``HUB_SECTIONS``) and which stay the cabinet's is a rule of
ownership (docs/fleet.md, "Who authors what"):

- **the hub's, per site**: ``business_hours`` (opening hours, working days, holidays and
  make-up days, hence when K8's two-person opening applies), ``pin`` (which draws need a
  PIN, tries, lockout), ``alarms`` (F1: who owns each kind of alarm) and ``site`` (the
  company and building on every report's letterhead). They are the building's policy, the
  same for every cabinet in it, and an operator should not have to edit each Pi's file.
- **the cabinet's own**: everything else in its config file: hardware and its bus, timeouts
  at the screen, the database, TLS, the audit checkpoints, the fleet link itself. They
  depend on the device, so the local file always wins for them; the hub cannot send them
  (a section not in ``HUB_SECTIONS`` is refused at the hub with 422).

A cabinet keeps the hub's document in ``fleet_state`` (``site_settings``), so after a
restart with the hub away it still applies its site's policy; each section the hub sets
replaces the config file's section whole, and a section the hub no longer sets falls back
to the file's. The hub stores one document per site (``hub_site_settings``), replaced
whole; a change takes a configuration version like any other (the same trigger mechanism, so
a plain SQL update is seen too) and goes only to the site's cabinets.

This module is the document's format and the cabinet's side; the hub's side (its table) is
``site_settings_hub``, so a cabinet does not map the hub's tables to read its own settings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from kiosk.config import AlarmSettings, BusinessHours, PinSettings, Settings, SiteSettings
from kiosk.errors import InvalidRequest
from kiosk.fleet import state

ENTITY = "site_settings"
STATE = "site_settings"
HUB_SECTIONS: dict[str, type[BaseModel]] = {
    "business_hours": BusinessHours, "pin": PinSettings, "alarms": AlarmSettings,
    "site": SiteSettings,
}


def validate(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as the cabinets will apply it (each section checked by the same model
    as the config file's), or ``InvalidRequest`` naming what is wrong."""
    unknown = sorted(set(doc) - set(HUB_SECTIONS))
    if unknown:
        raise InvalidRequest(
            f"{', '.join(unknown)}: not a site setting the hub authors (the hub sets "
            f"{', '.join(sorted(HUB_SECTIONS))}; the rest is each cabinet's config file)")
    out: dict[str, Any] = {}
    for name, values in doc.items():
        try:
            out[name] = HUB_SECTIONS[name].model_validate(values).model_dump(mode="json")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in (name, *first["loc"]))
            raise InvalidRequest(f"{where}: {first['msg']}") from None
    return out


# ----------------------------------------------------------------------- the cabinet
def apply(session: Session, row: dict[str, Any], skipped: list[str]) -> None:
    """Keep the hub's document for this cabinet's site (checked again: a cabinet never
    takes a setting its own config file could not hold)."""
    try:
        clean = validate(dict(row.get("settings") or {}))
    except InvalidRequest as exc:
        skipped.append(f"site settings of {row.get('site')}: {exc}")
        return
    state.write(session, STATE, clean)


def overlay(settings: Settings, doc: dict[str, Any] | None) -> Settings:
    """``settings`` (the config file's) with the hub's sections in place of the file's."""
    if not doc:
        return settings
    update = {name: HUB_SECTIONS[name].model_validate(values)
              for name, values in doc.items() if name in HUB_SECTIONS}
    return settings.model_copy(update=update)


def held_in(session: Session) -> dict[str, Any] | None:
    doc = state.read(session, STATE)
    return dict(doc) if isinstance(doc, dict) else None


def held(engine: Engine) -> dict[str, Any] | None:
    """The hub's document this cabinet holds, if any (None on a hub or a lone cabinet)."""
    try:
        with Session(engine) as session:
            return held_in(session)
    except SQLAlchemyError:  # a database not migrated yet has no fleet_state: nothing held
        return None


def effective(file_settings: Settings, engine: Engine) -> Settings:
    """What this cabinet runs with: its file, and its site's settings from the hub."""
    return overlay(file_settings, held(engine))
