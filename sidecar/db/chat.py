"""Running the instant-playlist chat's query, and checking its answer against ``tracks``.

:func:`run_chat_query` is the last line of defence, whatever the validator let through:

* it logs in **as the read-only chat role** (its own connection, so the session user is that role:
  ``set_config('role', ...)`` cannot climb back to the service's user, as it could after a mere
  ``SET ROLE`` on a privileged connection), whose only grants are SELECT on two views;
* inside a ``READ ONLY`` transaction with ``SET LOCAL statement_timeout``, ``SET LOCAL ROLE`` to
  the same role and ``search_path`` limited to the ``chat`` schema;
* through the extended protocol (a prepared statement: one statement only) and a cursor that
  fetches at most ``max_rows`` rows, whatever the query's own LIMIT;
* with a client-side timeout on top of the server's, and at most :data:`MAX_CONCURRENT` such
  connections per process (a flood of requests cannot exhaust the server's connections).
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Sequence
from typing import Any

import asyncpg

#: chat queries running at once in one process; more wait their turn
MAX_CONCURRENT = 4
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _semaphore() -> asyncio.Semaphore:
    """One semaphore per event loop (a semaphore is bound to the loop it first waited in)."""
    loop = asyncio.get_running_loop()
    if loop not in _slots:
        _slots[loop] = asyncio.Semaphore(MAX_CONCURRENT)
    return _slots[loop]


class ChatQueryError(Exception):
    """The database refused or failed the query; :attr:`reason` is fed back to the model."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChatUnavailable(Exception):
    """The chat role cannot log in (not set up, or a wrong password)."""


async def run_chat_query(
    dsn: str, role: str, password: str, sql: str, *, max_rows: int, timeout_s: float
) -> list[dict[str, Any]]:
    """Rows of ``sql`` (at most ``max_rows``) run as ``role``; see the module docstring."""
    async with _semaphore():
        return await _run(dsn, role, password, sql, max_rows=max_rows, timeout_s=timeout_s)


async def _run(
    dsn: str, role: str, password: str, sql: str, *, max_rows: int, timeout_s: float
) -> list[dict[str, Any]]:
    try:
        conn = await asyncpg.connect(
            dsn,
            user=role,
            password=password,
            timeout=10,
            server_settings={"application_name": "audiomuse-chat"},
        )
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise ChatUnavailable(f"the read-only chat role cannot log in ({type(exc).__name__})") from exc
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise ChatUnavailable(f"cannot connect as the read-only chat role ({type(exc).__name__})") from exc
    try:
        async with asyncio.timeout(timeout_s + 2.0):
            async with conn.transaction(readonly=True):
                await conn.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")
                await conn.execute(f'SET LOCAL ROLE "{role}"')
                await conn.execute("SET LOCAL search_path = chat")
                cursor = await conn.cursor(sql)
                rows = await cursor.fetch(max_rows)
        return [dict(r) for r in rows]
    except asyncpg.QueryCanceledError as exc:
        raise ChatQueryError(f"the query ran longer than {timeout_s:g} s and was cancelled") from exc
    except TimeoutError as exc:
        raise ChatQueryError(f"the query ran longer than {timeout_s:g} s") from exc
    except asyncpg.PostgresError as exc:
        raise ChatQueryError(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    finally:
        try:
            await asyncio.wait_for(conn.close(), 2.0)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            conn.terminate()


async def known_tracks(
    db: asyncpg.Pool | asyncpg.Connection, item_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """``{item_id, title, artist}`` of the analysed tracks among ``item_ids``, in the order given,
    each once (titles and artists from ``tracks``, not from the query's answer)."""
    rows = await db.fetch(
        "SELECT item_id, title, artist FROM tracks WHERE item_id = ANY($1::text[]) "
        "AND analysis_status = 'analyzed'",
        list(item_ids),
    )
    found = {r["item_id"]: dict(r) for r in rows}
    seen: set[str] = set()
    out = []
    for item_id in item_ids:
        if item_id in found and item_id not in seen:
            seen.add(item_id)
            out.append(found[item_id])
    return out


async def chat_view_columns(db: asyncpg.Pool | asyncpg.Connection) -> list[str]:
    """The columns of ``chat.chat_tracks``, in order (checked against sidecar/chat/columns.py)."""
    rows = await db.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'chat.chat_tracks'::regclass "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    )
    return [r["attname"] for r in rows]


async def analysed_titles_like(
    db: asyncpg.Pool | asyncpg.Connection, name: str, limit: int = 100
) -> list[dict[str, Any]]:
    """``{item_id, title, artist}`` of analysed tracks (with an embedding) whose title contains
    the words of ``name`` in order (case, accents and the characters between words aside; a LIKE
    through the trigram index of the search column: no fuzzy match, which on a big library
    matches most tracks for a name such as "Song 12"), the titles most like ``name`` first,
    then the shortest: the candidates of "like <song title>"; the caller keeps the titles that
    equal the name."""
    folded = await db.fetchval("SELECT am_search_text($1)", name)
    words = [w for w in re.split(r"[\W_]+", str(folded or "")) if w]
    if not words:
        return []
    folded, pattern = " ".join(words), "%" + "%".join(words) + "%"
    rows = await db.fetch(
        """SELECT t.item_id, t.title, t.artist FROM tracks t
           WHERE t.search_text LIKE $2 AND am_search_text(t.title) LIKE $2
             AND t.analysis_status = 'analyzed'
             AND EXISTS (SELECT 1 FROM embeddings e WHERE e.item_id = t.item_id)
           ORDER BY word_similarity($1, am_search_text(t.title)) DESC, length(t.title), t.artist, t.item_id
           LIMIT $3""",
        folded,
        pattern,
        limit,
    )
    return [dict(r) for r in rows]


async def artists_containing(db: asyncpg.Pool | asyncpg.Connection, name: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` track artists whose name contains ``name`` (case and accents aside; a
    substring match through the trigram index, no fuzzy match: cheap even for a common word)."""
    folded = await db.fetchval("SELECT am_search_text($1)", name)
    folded = " ".join(str(folded or "").split())
    if not folded:
        return []
    pattern = "%" + folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = await db.fetch(
        """SELECT min(t.artist) AS artist FROM tracks t
           WHERE t.search_text LIKE $1 AND am_search_text(t.artist) LIKE $1
           GROUP BY lower(t.artist) ORDER BY count(*) DESC, 1 LIMIT $2""",
        pattern,
        limit,
    )
    return [r["artist"] for r in rows]
