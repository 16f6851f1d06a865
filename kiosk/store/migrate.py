"""Schema migrations through Alembic, driven from code so no alembic.ini is needed on the Pi.

Alembic (with Mako and Pygments) costs the daemon about 10 MB of memory, and it is needed
only when the schema has to move. So the revision the code expects is a constant,
``HEAD_REVISION``, held to Alembic's own head by a test; ``upgrade`` reads the database's
revision with one query and imports Alembic only when the two differ.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
HEAD_REVISION = "0027"
"""The newest revision under migrations/versions (tests/store/test_migrations.py checks)."""
VERSION_TABLE = "alembic_version"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to ``revision``; a database already at the head costs one query, no Alembic."""
    if revision in ("head", HEAD_REVISION) and current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command

    _run(engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    _run(engine, lambda cfg: command.downgrade(cfg, revision))


def _run(engine: Engine, step: Callable[[Config], None]) -> None:
    """Run ``step`` in one transaction; on SQLite with foreign keys unenforced meanwhile.

    SQLite alters a table by copying it and dropping the original (Alembic's batch mode).
    With enforcement on, dropping a table that other rows point at fails, or worse deletes
    the rows that cascade from it: a cabinet with keys lent out could not move past 0013.
    The pragma only takes effect outside a transaction, so it is set on the bare connection
    before BEGIN; every reference is checked before the commit, so a migration that breaks
    one is rolled back whole rather than leaving orphans.
    """
    cfg = alembic_config(engine)
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        if sqlite:
            raw.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                step(cfg)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(
                            f"the migration left {len(broken)} rows pointing at nothing "
                            f"(first: {tuple(broken[0])}); nothing was changed")
        finally:
            if sqlite:
                raw.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (None: never migrated). The history is linear."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:
        raise RuntimeError(f"{VERSION_TABLE} holds {len(rows)} revisions; the history is linear")
    return rows[0] if rows else None


def alembic_head_revision(engine: Engine) -> str | None:
    """Alembic's own view of the newest revision (reads every migration script)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
