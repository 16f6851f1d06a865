"""Each pytest worker migrates one empty SQLite database once and copies it into the next.

Why: every cabinet the suite builds (``Runtime.open`` in the rig, the API and console
fixtures, the reports) starts from an empty SQLite file and ran the whole Alembic chain on
it, 1.3–2 s each on this machine and several hundred times a run: minutes of CI spent
re-proving the same twenty migrations. Now a worker runs that chain for real once, into a
template file, and ``Runtime.open`` gets the template's pages copied into its empty file
with SQLite's own online-backup API: the very bytes the migrations wrote, not a schema made
some other way.

What still runs the chain every time: ``tests/store/test_migrations.py`` (up from empty,
down to base and up again, schema against the models, on SQLite and PostgreSQL), the
``kiosk db`` commands, PostgreSQL databases, every daemon the suite starts as a process of
its own, and any database that is not empty. ``KIOSK_TEST_MIGRATE_EACH=1`` turns the copy
off for a run.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import types
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect

from kiosk import runtime as runtime_module
from kiosk.store import migrate
from kiosk.store.db import make_engine

_template: Path | None = None


def _migrated_template() -> Path:
    """The worker's template: an empty file taken through every migration, made on first use."""
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="kiosk-template-"))
        path = folder / "migrated.db"
        engine = make_engine(f"sqlite:///{path}")
        try:
            migrate.upgrade(engine)
            with engine.connect() as conn:  # fold the WAL into the file before it is copied
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            engine.dispose()
        _template = path
    return _template


def _is_empty_sqlite_file(engine: Engine) -> bool:
    return (engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")
            and not inspect(engine).get_table_names())


def upgrade_from_template(engine: Engine, revision: str = "head") -> None:
    """``migrate.upgrade`` for ``Runtime.open``: an empty SQLite file gets the template's
    pages; anything else (PostgreSQL, a database with tables, another revision) migrates."""
    if revision not in ("head", migrate.HEAD_REVISION) or not _is_empty_sqlite_file(engine):
        migrate.upgrade(engine, revision)
        return
    source = sqlite3.connect(_migrated_template())
    target = engine.raw_connection()
    try:
        source.backup(target.driver_connection)  # type: ignore[arg-type]
    finally:
        target.close()
        source.close()
    engine.dispose()  # no pooled connection keeps a view of the file from before the copy


class _MigrateForRuntime(types.ModuleType):
    """``kiosk.store.migrate`` as ``kiosk.runtime`` sees it, with ``upgrade`` from the template;
    every other name is the real module's."""

    def __getattr__(self, name: str) -> Any:
        return getattr(migrate, name)


def install() -> None:
    """Point ``Runtime.open`` (only it) at the template, unless the run asks otherwise."""
    if os.environ.get("KIOSK_TEST_MIGRATE_EACH") == "1":
        return
    proxy = _MigrateForRuntime("kiosk.store.migrate")
    proxy.upgrade = upgrade_from_template  # type: ignore[attr-defined]
    runtime_module.migrate = proxy


def remove() -> None:
    """Undo ``install`` and delete the template; the next run in this process (mutmut runs
    pytest several times in one) makes a new one."""
    global _template
    runtime_module.migrate = migrate
    if _template is not None:
        shutil.rmtree(_template.parent, ignore_errors=True)
        _template = None
