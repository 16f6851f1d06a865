"""Migrations go up from an empty database, down to nothing, and match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from kiosk.store import migrate
from kiosk.store.db import make_engine
from kiosk.store.models import Base


def test_up_from_empty_down_to_base_and_up_again(db_url: str) -> None:
    engine = make_engine(db_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.HEAD_REVISION
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables

    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

    migrate.upgrade(engine)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


def _not_a_partition(name: str | None, type_: str, _parent: object) -> bool:
    """PostgreSQL's partitions of hub_events (migration 0012) are storage, not models."""
    return not (type_ == "table" and name is not None and name.startswith("hub_events_p"))


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "compare_type": True, "include_name": _not_a_partition})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    engine.dispose()


def test_sqlite_runs_wal_full_sync_with_foreign_keys(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/pragmas.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    engine.dispose()


def test_the_revision_the_code_expects_is_alembics_head(tmp_path: object) -> None:
    """``HEAD_REVISION`` lets the daemon skip importing Alembic; it must name the newest
    migration, or a database would be left unmigrated."""
    engine = make_engine(f"sqlite:///{tmp_path}/head.db")
    assert migrate.alembic_head_revision(engine) == migrate.HEAD_REVISION
    engine.dispose()


def test_a_migrated_database_opens_without_importing_alembic(tmp_path: object) -> None:
    """The daemon's start on an up-to-date database does not load Alembic (10 MB)."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path}/fresh.db"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    code = (
        "import sys\n"
        "from kiosk.store import migrate\n"
        "from kiosk.store.db import make_engine\n"
        f"migrate.upgrade(make_engine({url!r}))\n"
        "print(any(m == 'alembic' or m.startswith('alembic.') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
