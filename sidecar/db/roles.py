"""The read-only database role of the LLM chat.

It may log in and SELECT from the ``chat.chat_tracks`` view (the instant-playlist chat's
relation, migration 0006), nothing else: no table, no other view (``track_features`` included),
no writes (its sessions are also read-only by default, with a statement timeout).

The view needs no grant on the tables it reads: a view reads its tables with its owner's rights
(the service's user, which ran the migration; the view is not ``security_invoker``), so SELECT
on the view and USAGE on its schema are all the role holds.  Grants an earlier version made
(SELECT on ``track_features``) are revoked at every start.
"""

from __future__ import annotations

import logging
import re

import asyncpg

log = logging.getLogger(__name__)

_LOCK_KEY = 0x41554D52  # "AUMR"
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def ensure_chat_role(conn: asyncpg.Connection, name: str, password: str) -> bool:
    """Create or update the chat role.  Returns False (and logs why) when not permitted."""
    if not _NAME_RE.match(name):
        raise ValueError(f"AI_CHAT_DB_USER_NAME: {name!r} is not a plain lower-case identifier")
    ident = f'"{name}"'
    db = await conn.fetchval("SELECT current_database()")
    try:
        async with conn.transaction():
            # Web processes starting together would race on ALTER ROLE ("tuple concurrently updated").
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name)
            if not exists:
                await conn.execute(f"CREATE ROLE {ident}")
            await conn.execute(
                f"ALTER ROLE {ident} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
                f"NOREPLICATION NOBYPASSRLS PASSWORD {_literal(password)}"
            )
            await conn.execute(f"ALTER ROLE {ident} SET default_transaction_read_only = on")
            await conn.execute(f"ALTER ROLE {ident} SET statement_timeout = '10s'")
            await conn.execute(f'GRANT CONNECT ON DATABASE "{db}" TO {ident}')
            # nothing in public: its tables, views and sequences, and the schema itself (PUBLIC's
            # own USAGE on it is PostgreSQL's default and grants no table)
            await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ident}")
            await conn.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {ident}")
            await conn.execute(f"REVOKE ALL ON SCHEMA public FROM {ident}")
            await conn.execute(f"GRANT USAGE ON SCHEMA chat TO {ident}")
            await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA chat FROM {ident}")
            await conn.execute(f"REVOKE CREATE ON SCHEMA chat FROM {ident}")
            await conn.execute(f"GRANT SELECT ON chat.chat_tracks TO {ident}")
    except asyncpg.InsufficientPrivilegeError as exc:
        log.warning(
            "cannot set up the read-only chat role %s (%s); the chat will be unavailable "
            "until a database administrator creates it",
            name,
            exc,
        )
        return False
    return True
