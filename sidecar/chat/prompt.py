"""The SQL-writing prompt of the instant-playlist chat, and its retry messages.

The model sees the view (not the raw tables), its columns with their meaning, the label lists,
what "fast", "high energy" or "a strong mood score" mean in numbers, example request / SQL
pairs, how to rank known hits first (``CASE WHEN`` in ``ORDER BY``) and how to cap songs per
artist (``ROW_NUMBER()`` in a subquery).
"""

from __future__ import annotations

from sidecar.ai import ChatMessage
from sidecar.chat.columns import BASE_COLUMNS, FEATURE_COLUMNS, MOOD_COLUMNS, MTT_COLUMNS, VIEW


def _columns() -> str:
    lines = [f"- {name} ({kind}): {meaning}" for name, (kind, meaning) in BASE_COLUMNS.items()]
    lines.append(
        "- mood_<tag> (real, 0-1): score of each music tag (genre, era, mood): " + ", ".join(MOOD_COLUMNS)
    )
    lines.append("- mtt_<tag> (real, 0-1): score of each sound/instrument tag: " + ", ".join(MTT_COLUMNS))
    lines.append("- " + ", ".join(FEATURE_COLUMNS) + " (real, 0-1): overall character of the track")
    return "\n".join(lines)


#: (request, SQL) pairs shown to the model; {view}, {n} and {cap} are filled in
EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        "top AC/DC songs (known hits first with CASE WHEN in ORDER BY, then the artist's other songs)",
        "SELECT item_id, title, artist FROM {view}\nWHERE artist ILIKE '%AC/DC%' OR artist ILIKE '%ACDC%'\n"
        "ORDER BY CASE WHEN title ILIKE '%Highway to Hell%' OR title ILIKE '%Back in Black%'\n"
        "  OR title ILIKE '%Thunderstruck%' THEN 1 ELSE 2 END, random() LIMIT {n}",
    ),
    (
        "fast rock, at most {cap} songs per artist (ROW_NUMBER() in a subquery, never GROUP BY)",
        "SELECT item_id, title, artist FROM (\n"
        "  SELECT item_id, title, artist, mood_rock + energy AS score,\n"
        "         ROW_NUMBER() OVER (PARTITION BY artist ORDER BY random()) AS rn\n"
        "  FROM {view} WHERE mood_rock >= 0.2 AND tempo > 130) AS ranked\n"
        "WHERE rn <= {cap} ORDER BY score DESC LIMIT {n}",
    ),
    (
        "calm piano music",
        "SELECT item_id, title, artist FROM {view} WHERE mtt_piano >= 0.3 AND energy < 0.4\n"
        "ORDER BY mtt_piano + relaxed DESC LIMIT {n}",
    ),
    (
        "sad songs from the 80s",
        "SELECT item_id, title, artist FROM {view}\n"
        "WHERE (sad >= 0.5 OR mood_sad >= 0.2) AND ((year BETWEEN 1980 AND 1989) OR mood_80s >= 0.2)\n"
        "ORDER BY sad DESC, random() LIMIT {n}",
    ),
    (
        "happy dance party",
        "SELECT item_id, title, artist FROM {view}\n"
        "WHERE danceable >= 0.6 AND (party >= 0.5 OR happy >= 0.5)\n"
        "ORDER BY danceable + party + happy DESC LIMIT {n}",
    ),
)


def examples(max_songs: int, per_artist: int) -> list[tuple[str, str]]:
    return [
        (r.format(cap=per_artist), sql.format(view=VIEW, n=max_songs, cap=per_artist)) for r, sql in EXAMPLES
    ]


def _examples(max_songs: int, per_artist: int) -> str:
    return "Examples:\n" + "\n\n".join(f"Request: {r}\n{sql}" for r, sql in examples(max_songs, per_artist))


def system_prompt(max_songs: int, per_artist: int) -> str:
    return f"""You are a music expert and a PostgreSQL writer. Turn the user's request into ONE
PostgreSQL SELECT on the view {VIEW} that returns the best songs of their library.

Rules:
- Answer with the SQL only: no explanation, no comments, no markdown.
- Read only {VIEW}. Always select item_id, title, artist.
- One statement; SELECT only (UNION ALL of SELECTs and WITH ... AS (SELECT ...) are allowed).
- Allowed functions: lower, upper, length, trim, concat, abs, round, floor, ceil, coalesce, nullif,
  greatest, least, random, count, sum, avg, min, max, row_number, rank, dense_rank.
  Use ILIKE for text matching (no regular expressions).
- End with ORDER BY and LIMIT {max_songs} (more rows are never returned).
- Escape a quote in a string by doubling it: 'Don''t Stop'. Never use a backslash.
- Match an artist with artist ILIKE '%name%' (several spellings joined with OR: '%AC/DC%' OR '%ACDC%').
- Different criteria are joined with AND, alternatives inside one criterion with OR, in parentheses.

Columns of {VIEW}:
{_columns()}

What values mean:
- Tempo: slow < 95, medium 95-130, fast > 130, very fast > 160 (BPM).
- Energy: low < 0.35, moderate 0.35-0.65, high > 0.65.
- A mood_* or mtt_* score of 0.2 or more is a good match, 0.4 or more a strong one; most are below 0.1.
- The six features (danceable ... sad): 0.5 or more is a good match, 0.7 or more a strong one.
- year may be NULL; genres is the file's genre text and may be empty, so prefer the mood_* columns.

{_examples(max_songs, per_artist)}
"""


def first_messages(user_input: str, max_songs: int, per_artist: int) -> list[ChatMessage]:
    return [
        {"role": "system", "content": system_prompt(max_songs, per_artist)},
        {"role": "user", "content": f"Write the SQL for this request: {user_input}"},
    ]


def retry_error(answer: str, reason: str) -> list[ChatMessage]:
    """Messages that follow a refused or failed query."""
    return [
        {"role": "assistant", "content": answer[:4000]},
        {
            "role": "user",
            "content": f"That query cannot be used: {reason}\n"
            "Fix it and answer with the corrected SQL only (one SELECT on "
            f"{VIEW}, quotes doubled, no comments).",
        },
    ]


def retry_empty(answer: str) -> list[ChatMessage]:
    """Messages that follow a valid query that found nothing."""
    return [
        {"role": "assistant", "content": answer[:4000]},
        {
            "role": "user",
            "content": "That query is valid but found no songs in this library. "
            "Write a looser one: broader terms, lower thresholds, fewer conditions. SQL only.",
        },
    ]
