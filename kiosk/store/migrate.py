"""Schema migrations through Alembic, driven from code so no alembic.ini is needed on the Pi.

Alembic (with Mako and Pygments) costs the daemon about 10 MB of memory, and it is needed
only when the schema has to move. So the revision the code expects is a constant,
``HEAD_REVISION``, held to Alembic's own head by a test; ``upgrade`` reads the database's
revision with one query and imports Alembic only when the two differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
HEAD_REVISION = "0022"
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

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


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
