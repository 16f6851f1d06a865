"""Opening the daemon's state: settings → engine (migrated) → device key → audit log.

Every entry point (daemon, CLI commands, tests) opens state the same way so none of them
can forget the migration or the device key.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from kiosk.audit import AuditLog
from kiosk.audit.device_key import DeviceKey, load_or_create
from kiosk.config import Settings
from kiosk.fleet import site_settings
from kiosk.store import migrate
from kiosk.store.db import make_engine, private_folder
from kiosk.store.models import Cabinet


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    device_key: DeviceKey
    audit: AuditLog
    file_settings: Settings | None = None
    """The config file's settings; ``settings`` is these with the site's settings from the
    hub on top, on a cabinet in a fleet (``kiosk.fleet.site_settings``)."""

    @classmethod
    def open(cls, settings: Settings, *, upgrade: bool = True) -> Runtime:
        private_folder(settings.data_dir)  # keys, database, backups: owner only
        engine = make_engine(settings.resolved_database_url,
                             busy_timeout_ms=settings.database_busy_timeout_ms)
        if upgrade:
            migrate.upgrade(engine)
        device_key = load_or_create(settings.device_key_path)
        audit = AuditLog(
            engine,
            cabinet_id=settings.cabinet_id,
            device_key=device_key,
            checkpoint_every=settings.audit.checkpoint_every,
        )
        runtime = cls(site_settings.effective(settings, engine), engine, device_key, audit,
                      file_settings=settings)
        if upgrade:
            runtime.ensure_cabinet()
        return runtime

    def ensure_cabinet(self) -> Cabinet:
        """The cabinet this daemon drives has a row of its own (slots hang off it)."""
        with Session(self.engine, expire_on_commit=False) as session:
            cabinet = session.scalars(
                select(Cabinet).where(Cabinet.code == self.settings.cabinet_id)
            ).one_or_none()
            if cabinet is None:
                cabinet = Cabinet(code=self.settings.cabinet_id, name=self.settings.cabinet_name)
                session.add(cabinet)
                session.commit()
            return cabinet

    def close(self) -> None:
        self.engine.dispose()
