"""Persistence: SQLAlchemy 2 typed models, the engine with its safety pragmas, migrations."""
