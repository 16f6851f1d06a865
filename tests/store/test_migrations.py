"""Migrations go up from an empty database, down to nothing, and match the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from kiosk.store import (
    migrate,
    models_fleet,  # noqa: F401  (the hub's tables, mapped only where used)
)
from kiosk.store.db import make_engine
from kiosk.store.models import Base
from kiosk.store.sqlite_memory import sqlite_memory_used


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
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -512  # KiB, issue 15
    engine.dispose()


def test_a_sqlite_connection_holds_no_more_than_its_page_cache_cap(tmp_path: object) -> None:
    """Issue 15, item 4: a connection that has read a database far larger than its cache
    holds its cap and no more in SQLite's heap (SQLite's default would hold 2 MB)."""
    engine = make_engine(f"sqlite:///{tmp_path}/big.db")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE filler (b BLOB)")
        for _ in range(8):  # 8 MB of rows: 2,000 pages
            conn.exec_driver_sql("INSERT INTO filler VALUES (?)", [(b"x" * 1000,)] * 1000)
    engine.dispose()
    before = sqlite_memory_used()
    assert before is not None
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*), sum(length(b)) FROM filler").one()[0] == 8000
        held = sqlite_memory_used()
        assert held is not None
        assert held - before < 900 * 1024  # the 512 KiB cache and the connection's own
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


def test_sqlite_rebuilds_a_referenced_table_with_the_site_s_loans_kept(tmp_path: Path) -> None:
    """A site's database moves down past 0013 and up again with the demo tower's loans in it.

    SQLite alters a table by copying it and dropping the old one (Alembic's batch mode).
    With foreign keys enforced, dropping ``keys`` while loans point at it failed ("FOREIGN
    KEY constraint failed"), so a cabinet with keys lent out before 0013 could not upgrade;
    and a table whose referrers cascade would have lost them. Migrations now run with
    enforcement off and check every reference before they commit.
    """
    import datetime as dt

    from kiosk.config import Settings
    from kiosk.demo import load_demo
    from kiosk.runtime import Runtime
    from kiosk.store.models import Cabinet, Key, Loan, Person

    runtime = Runtime.open(Settings(data_dir=tmp_path / "var", cabinet_id="cab-01"))
    load_demo(runtime, now=dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC))
    engine = runtime.engine
    with Session(engine) as s:  # one key out, one back: loans pointing at keys and people
        keys = s.scalars(select(Key).limit(2)).all()
        person = s.scalars(select(Person)).first()
        cabinet = s.scalars(select(Cabinet)).one()
        assert person is not None
        drawn = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
        for key, back in zip(keys, (None, drawn + dt.timedelta(hours=1)), strict=True):
            s.add(Loan(key_id=key.id, cabinet_id=cabinet.id, borrower_id=person.id,
                       reason_code="repair", drawn_at=drawn, due_at=drawn + dt.timedelta(hours=4),
                       returned_at=back, returned_by_id=person.id if back else None))
        s.commit()

    def counts() -> tuple[int, int, int]:
        with engine.connect() as conn:
            return tuple(conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one()
                         for t in ("keys", "loans", "events"))

    before = counts()
    assert before[1] == 2
    migrate.downgrade(engine, "0012")
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.HEAD_REVISION
    assert counts() == before
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    runtime.close()
