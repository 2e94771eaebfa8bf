"""Database access: the asyncpg pool, migrations and roles."""

from sidecar.db.pool import create_pool

__all__ = ["create_pool"]
