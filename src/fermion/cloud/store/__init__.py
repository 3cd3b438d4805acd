"""The cloud's store: SQLAlchemy models, the engine, repositories and Alembic migrations."""

from fermion.cloud.store.engine import Store, make_engine
from fermion.cloud.store.migrate import upgrade, upgrade_async

__all__ = ["Store", "make_engine", "upgrade", "upgrade_async"]
