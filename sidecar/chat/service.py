"""An instant playlist from a plain-language request: with an LLM writing SQL (up to three
attempts, each answer validated before it runs, the error or the empty result fed back), or
without any LLM (the request understood by rules), and by rules again when the LLM fails.

Every query, the LLM's or the rules', goes through :func:`sidecar.chat.validate.validate` and
runs through :func:`sidecar.db.chat.run_chat_query` (the read-only role, a read-only
transaction, a statement timeout); the item ids it returns are then looked up in ``tracks``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from sidecar.ai import AiConfig, AiError, ChatMessage, complete
from sidecar.chat import prompt, rules
from sidecar.chat.sounds_like import sounds_like
from sidecar.chat.validate import Refused, validate
from sidecar.config import Settings
from sidecar.db.chat import ChatQueryError, known_tracks, run_chat_query

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
#: most tracks of a "like X" sonic mix the rules then filter and rank
LIKE_POOL = 100


@dataclass
class ChatResult:
    """The answer of one request, in upstream's ``response`` shape (see :meth:`as_json`)."""

    request: str
    provider: str
    model: str | None
    log: list[str] = field(default_factory=list)
    executed_query: str | None = None
    tracks: list[dict[str, Any]] | None = None
    understood: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "message": "\n".join(self.log),
            "original_request": self.request,
            "ai_provider_used": self.provider,
            "ai_model_selected": self.model,
            "executed_query": self.executed_query,
            "understood_as": self.understood,
            "query_results": self.tracks,
        }


@dataclass(frozen=True)
class ChatRunner:
    """Where queries run: the service's pool (for the tracks check) and the chat role's login."""

    db: asyncpg.Pool
    dsn: str
    settings: Settings

    async def query(self, sql: str, max_rows: int | None = None) -> list[dict[str, Any]]:
        """The rows of ``sql`` as the chat role returns them (at most ``max_rows``, by default
        CHAT_MAX_SONGS)."""
        s = self.settings
        return await run_chat_query(
            self.dsn,
            s.ai_chat_db_user_name,
            s.ai_chat_db_user_password,
            sql,
            max_rows=max_rows or s.chat_max_songs,
            timeout_s=s.chat_query_timeout_seconds,
        )

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        """``{item_id, title, artist}`` of the tracks ``sql`` names, checked against ``tracks``."""
        rows = await self.query(sql)
        ids = [str(r["item_id"]) for r in rows if r.get("item_id") is not None]
        return await known_tracks(self.db, ids)


async def chat_playlist(runner: ChatRunner, request: str, config: AiConfig | None) -> ChatResult:
    """The playlist for ``request``: by the LLM of ``config``, else (or when it fails) by rules."""
    if config is None:
        result = ChatResult(request, "NONE", None)
        result.log.append("No AI provider selected: the request is understood by rules.")
        await _by_rules(runner, request, result)
        return result
    result = ChatResult(request, config.provider.value, config.model)
    if await _by_llm(runner, request, config, result):
        return result
    result.log.append("The AI gave no usable query: falling back to the rules.")
    await _by_rules(runner, request, result)
    return result


async def _by_llm(runner: ChatRunner, request: str, config: AiConfig, result: ChatResult) -> bool:
    s = runner.settings
    messages: list[ChatMessage] = prompt.first_messages(request, s.chat_max_songs, s.max_songs_per_artist)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            answer = await complete(config, messages)
        except AiError as exc:
            result.log.append(f"Attempt {attempt}: the AI failed: {exc.reason}")
            return False
        result.log.append(f"Attempt {attempt}: the AI answered: {answer.strip()[:2000]}")
        try:
            query = validate(answer, s.chat_max_songs)
        except Refused as exc:
            result.log.append(f"Attempt {attempt}: refused before running: {exc.reason}")
            messages = [*messages, *prompt.retry_error(answer, exc.reason)]
            continue
        try:
            tracks = await runner.rows(query.sql)
        except ChatQueryError as exc:
            result.log.append(f"Attempt {attempt}: the database refused the query: {exc.reason}")
            messages = [*messages, *prompt.retry_error(answer, exc.reason)]
            continue
        result.executed_query = query.sql
        if tracks:
            result.tracks = tracks
            result.log.append(f"Attempt {attempt}: {len(tracks)} songs.")
            return True
        result.log.append(f"Attempt {attempt}: the query found no songs.")
        messages = [*messages, *prompt.retry_empty(answer)]
    return False


async def _by_rules(runner: ChatRunner, request: str, result: ChatResult) -> None:
    s = runner.settings
    u = rules.understand(request)
    within: list[str] = []
    if u.like:
        within = await _sounds_like(runner, u, result)
    result.understood = u.summary
    result.log.append(f"Understood as: {u.summary}.")
    if u.empty:
        result.tracks = []
        result.log.append(
            "Try words such as: calm, energetic, sad, happy, party, rock, jazz, piano, fast, "
            "80s, by <artist>, like <artist or song>."
        )
        return
    if within and not u.filters and not u.artist:
        result.tracks = (await known_tracks(runner.db, within))[: s.chat_max_songs]
        result.log.append(f"{len(result.tracks)} songs.")
        return
    tracks = await _rules_query(runner, u, within, result)
    if not tracks and u.columns:
        tracks = await _rules_query(runner, dataclasses.replace(u, strict=False), within, result)
        result.log.append(
            "No track scored as a match for the words: the minimum scores were dropped"
            + (" (the tempo, energy and year limits kept)" if u.tempo or u.energy or u.years else "")
            + "; the best matches by score follow."
        )
    if not tracks and (u.tempo or u.energy or u.years):
        loose = dataclasses.replace(u, strict=False, keep_ranges=False)
        tracks = await _rules_query(runner, loose, within, result)
        result.log.append(
            "Nothing is within the tempo, energy and year limits: they were dropped; the nearest "
            "to them and the best matches by score follow."
        )
    result.tracks = tracks
    result.log.append(f"{len(tracks)} songs.")


async def _rules_query(
    runner: ChatRunner, u: rules.Understanding, within: list[str], result: ChatResult
) -> list[dict[str, Any]]:
    s = runner.settings
    if not within:
        query = validate(rules.build_sql(u, s.chat_max_songs, s.max_songs_per_artist), s.chat_max_songs)
        result.executed_query = query.sql
        return await runner.rows(query.sql)
    # every track of the sonic mix that passes, best score first, ties in the mix's order (nearest
    # first: with no score word, the mix's own order)
    n = len(within)
    query = validate(rules.build_sql(u, n, s.max_songs_per_artist, within), n)
    result.executed_query = query.sql
    rows = await runner.query(query.sql, n)
    position = {item_id: i for i, item_id in enumerate(within)}
    rows.sort(key=lambda r: (-float(r.get("score") or 0.0), position.get(str(r["item_id"]), n)))
    ids = [str(r["item_id"]) for r in rows][: s.chat_max_songs]
    return await known_tracks(runner.db, ids)


async def _sounds_like(runner: ChatRunner, u: rules.Understanding, result: ChatResult) -> list[str]:
    """The item ids of a sonic mix around artist or song ``u.like`` (the mix engine's rules: no
    duplicates, the artist cap); when nothing is found, ``u.like`` becomes an artist-name match."""
    assert u.like is not None
    # room for the other words to filter; the mix itself when there are none
    n = runner.settings.chat_max_songs
    n = min(LIKE_POOL, 4 * n) if u.filters or u.artist else n
    found = await sounds_like(runner.db, runner.settings, u.like, n)
    result.log.extend(found.notes)
    if found.kind is None:
        u.artist, u.like = u.like, None
        return []
    u.like, u.like_kind = found.label, found.kind
    return found.item_ids
