"""Alembic environment: runs migrations on the connection the caller hands in, or the URL."""

from __future__ import annotations

from alembic import context

from kiosk.store import models_fleet  # noqa: F401  (the hub's tables: not in models' imports)
from kiosk.store.db import make_engine
from kiosk.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copy-and-move
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
