"""PostgreSQL access: the pool, migrations and the repositories of each table group."""

from qbsync.db.migrate import migrate
from qbsync.db.pool import connect_pool

__all__ = ["connect_pool", "migrate"]
