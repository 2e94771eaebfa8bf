"""The chat's SQL validator (sidecar/chat/validate.py): hostile LLM answers are refused with a
precise reason before anything runs; safe ones are accepted and re-serialised from the tree.

HOSTILE is also run directly under the chat role, bypassing validation, by tests/test_chat_db.py."""

from __future__ import annotations

import pytest

from sidecar.chat import prompt, rules
from sidecar.chat.columns import ALL_COLUMNS, MOOD_COLUMNS, MSD_LABELS, MTT_LABELS, OTHER_FEATURES
from sidecar.chat.validate import Refused, validate

#: (an LLM answer trying something it must not, the reason it is refused: a substring)
HOSTILE: list[tuple[str, str]] = [
    # writes
    ("UPDATE tracks SET title = 'pwned'", "UPDATE statements are not allowed"),
    ("DELETE FROM tracks", "DELETE statements are not allowed"),
    (
        "INSERT INTO playlists (name, kind, track_ids, provider) VALUES ('x', 'instant', '{}', 'l')",
        "INSERT statements are not allowed",
    ),
    ("DROP TABLE tracks", "DROP statements are not allowed"),
    ("TRUNCATE embeddings", "TRUNCATE statements are not allowed"),
    ("CREATE TABLE evil AS SELECT * FROM chat_tracks", "CREATE statements are not allowed"),
    ("ALTER ROLE ai_user SUPERUSER", "ALTER statements are not allowed"),
    ("GRANT ALL ON tracks TO ai_user", "GRANT statements are not allowed"),
    ("WITH gone AS (DELETE FROM tracks RETURNING item_id) SELECT item_id FROM gone", "DELETE writes"),
    ("WITH x AS (UPDATE tracks SET title = 'a' RETURNING item_id) SELECT item_id FROM x", "UPDATE writes"),
    (
        "WITH x AS (INSERT INTO tasks (task_id, task_type) VALUES ('t', 'x') RETURNING task_id) "
        "SELECT task_id AS item_id FROM x",
        "INSERT writes",
    ),
    ("SELECT item_id INTO evil FROM chat_tracks", "SELECT INTO creates a table"),
    ("SELECT item_id FROM chat_tracks FOR UPDATE", "FOR UPDATE / FOR SHARE locks rows"),
    ("SELECT item_id FROM chat_tracks FOR SHARE", "FOR UPDATE / FOR SHARE locks rows"),
    # several statements, smuggled
    ("SELECT item_id FROM chat_tracks; DROP TABLE tracks", "only one statement is allowed"),
    ("SELECT item_id FROM chat_tracks WHERE title = 'a'; DELETE FROM tracks; --'", "only one statement"),
    ("SELECT item_id FROM chat_tracks -- ; DROP TABLE tracks", "comments are not allowed"),
    ("SELECT item_id FROM chat_tracks /* */ ; DELETE FROM tracks", "comments are not allowed"),
    ("SELECT item_id FROM chat_tracks /* nested /* */ ; DROP TABLE tracks; */", "comments are not allowed"),
    ("```sql\nSELECT item_id FROM chat_tracks;\n```\n```sql\nDROP TABLE tracks;\n```", "several SQL blocks"),
    (
        "SELECT item_id FROM chat_tracks WHERE title = 'x\\'; DROP TABLE tracks; --'",
        "backslashes are not allowed",
    ),
    (
        "SELECT item_id FROM chat_tracks WHERE title = E'x\\'; DELETE FROM tracks'",
        "backslashes are not allowed",
    ),
    ("SELECT $$; DROP TABLE tracks; $$ AS item_id FROM chat_tracks", "'$' is not allowed"),
    ("SELECT $tag$ x $tag$ AS item_id FROM chat_tracks", "'$' is not allowed"),
    ("SELECT item_id FROM chat_tracks\uff1b DROP TABLE tracks", "non-ASCII character U+FF1B"),
    ("SELECT item_id FROM chat_tracks WHERE title = \u2018a\u2019", "non-ASCII character U+2018"),
    ("SELECT item_id FROM chat\u200b_tracks", "non-ASCII character U+200B"),
    ('SELECT item_id FROM "chat_tracks""; DROP TABLE tracks; --"', "quoted identifiers may only hold"),
    ('SELECT U&"\\0074racks".item_id FROM chat_tracks', "backslashes are not allowed"),
    # other statements
    ("COPY (SELECT * FROM tracks) TO '/tmp/leak.csv'", "COPY statements are not allowed"),
    ("DO $$ BEGIN EXECUTE 'DROP TABLE tracks'; END $$", "DO statements are not allowed"),
    ("SET ROLE audiomuse", "SET statements are not allowed"),
    ("RESET ROLE", "RESET statements are not allowed"),
    ("BEGIN; SET TRANSACTION READ WRITE; DELETE FROM tracks; COMMIT", "BEGIN statements are not allowed"),
    ("CALL some_procedure()", "CALL statements are not allowed"),
    ("EXPLAIN ANALYZE SELECT * FROM tracks", "EXPLAIN statements are not allowed"),
    ("LISTEN secrets", "LISTEN statements are not allowed"),
    ("Sure! Here is the query you asked for.", "no SELECT statement"),
    # other relations, catalogs, schemas
    ("SELECT item_id, title, file_path AS artist FROM tracks", "only chat_tracks may be read, not tracks"),
    ("SELECT item_id FROM embeddings", "only chat_tracks may be read, not embeddings"),
    ("SELECT item_id FROM public.track_features", "only chat_tracks may be read, not public.track_features"),
    ("SELECT usename AS item_id, passwd FROM pg_shadow", "system catalogs are not allowed (pg_shadow)"),
    ("SELECT rolname AS item_id FROM pg_catalog.pg_authid", "system catalogs are not allowed"),
    ("SELECT table_name AS item_id FROM information_schema.tables", "system catalogs are not allowed"),
    (
        "SELECT item_id FROM chat_tracks UNION SELECT task_id FROM tasks",
        "only chat_tracks may be read, not tasks",
    ),
    (
        "SELECT item_id FROM chat_tracks WHERE item_id IN (SELECT item_id FROM tracks)",
        "only chat_tracks may be read, not tracks",
    ),
    ("SELECT item_id FROM otherdb.public.chat_tracks", "only chat_tracks may be read"),
    ("SELECT item_id FROM (WITH tracks AS (SELECT 1) SELECT 1) AS s", "WITH is only allowed at the start"),
    (
        "WITH a AS (SELECT item_id FROM b), b AS (SELECT item_id FROM chat_tracks) SELECT item_id FROM a",
        "only chat_tracks may be read, not b",
    ),
    (
        "WITH RECURSIVE r(item_id) AS (SELECT item_id FROM chat_tracks UNION ALL SELECT item_id FROM r) "
        "SELECT item_id FROM r",
        "WITH RECURSIVE is not allowed",
    ),
    # escalation, secrets and side effects through functions
    (
        "SELECT set_config('role', 'audiomuse', true) AS item_id FROM chat_tracks",
        "system function set_config",
    ),
    (
        "SELECT current_setting('data_directory') AS item_id FROM chat_tracks",
        "system function current_setting",
    ),
    ("SELECT pg_read_file('/etc/passwd') AS item_id FROM chat_tracks", "system function pg_read_file"),
    ("SELECT lo_import('/etc/passwd') AS item_id FROM chat_tracks", "system function lo_import"),
    (
        "SELECT dblink('dbname=postgres', 'DROP TABLE tracks') AS item_id FROM chat_tracks",
        "system function dblink",
    ),
    (
        "SELECT query_to_xml('select * from tracks', true, true, '') AS item_id FROM chat_tracks",
        "system function query_to_xml",
    ),
    ("SELECT pg_terminate_backend(1) AS item_id FROM chat_tracks", "system function pg_terminate_backend"),
    ("SELECT pg_advisory_lock(1) AS item_id FROM chat_tracks", "system function pg_advisory_lock"),
    ("SELECT nextval('x') AS item_id FROM chat_tracks", "function nextval is not allowed"),
    ("SELECT pg_catalog.pg_sleep(10) AS item_id FROM chat_tracks", "qualified function names"),
    (
        "SELECT item_id FROM chat_tracks WHERE title = ANY(SELECT file_path FROM tracks)",
        "ANY / ALL is not allowed",
    ),
    ("SELECT item_id FROM chat_tracks TABLESAMPLE SYSTEM (1) REPEATABLE (1)", "TABLESAMPLE is not allowed"),
    ("SELECT version() AS item_id FROM chat_tracks", "version is not allowed"),
    ("SELECT item_id FROM chat_tracks WHERE tempo = 'tracks'::regclass::oid", "object identifier types"),
    ("SELECT item_id FROM chat_tracks WHERE title ~ '(a+)+$'", "regular expressions are not allowed"),
    ("SELECT item_id FROM chat_tracks WHERE title ~* 'love'", "regular expressions are not allowed"),
    # long runs, memory
    ("SELECT pg_sleep(3600), item_id FROM chat_tracks", "system function pg_sleep"),
    ("SELECT item_id FROM generate_series(1, 100000000000) AS item_id", "only chat_tracks may be read"),
    (
        "SELECT a.item_id FROM chat_tracks a, chat_tracks b, chat_tracks c, chat_tracks d, chat_tracks e",
        "at most 4 reads of chat_tracks",
    ),
    ("SELECT string_agg(title, repeat('x', 10000000)) AS item_id FROM chat_tracks", "function"),
    (
        "SELECT item_id FROM chat_tracks LIMIT (SELECT count(*) FROM chat_tracks)",
        "LIMIT must be a whole number",
    ),
    ("SELECT item_id FROM chat_tracks OFFSET 100000000", "OFFSET may be at most"),
    ("SELECT item_id FROM chat_tracks CROSS JOIN LATERAL (SELECT pg_sleep(1)) s", "LATERAL"),
    # not a usable answer
    ("SELECT title, artist FROM chat_tracks", "must return item_id"),
    ("SELECT 1 AS item_id", "the query must read chat_tracks"),
    ("SELECT item_id FROM chat_tracks WHERE", "not valid SQL"),
    ("", "the answer is empty"),
    ("SELECT item_id FROM chat_tracks WHERE title = 'open", "not closed"),
]


def test_the_hostile_suite_is_big_enough() -> None:
    assert len(HOSTILE) >= 40
    assert len({a for a, _ in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("answer, reason", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_hostile_answers_are_refused_with_a_precise_reason(answer: str, reason: str) -> None:
    with pytest.raises(Refused) as err:
        validate(answer, 25)
    assert reason in err.value.reason, err.value.reason


SAFE: list[tuple[str, str]] = [
    (
        "```sql\nSELECT item_id, title, artist FROM chat_tracks WHERE mood_rock >= 0.2 ORDER BY random() LIMIT 100;\n```",
        "SELECT item_id, title, artist FROM chat.chat_tracks WHERE mood_rock >= 0.2 ORDER BY RANDOM() LIMIT 25",
    ),
    (
        "<think>rock, fast</think>Here you go:\nSELECT item_id FROM chat_tracks WHERE tempo &gt; 140 LIMIT 10",
        "SELECT item_id FROM chat.chat_tracks WHERE tempo > 140 LIMIT 10",
    ),
    (
        "SELECT item_id, title, artist FROM chat_tracks WHERE title = 'Don't Stop Me Now'",
        "SELECT item_id, title, artist FROM chat.chat_tracks WHERE title = 'Don''t Stop Me Now' LIMIT 25",
    ),
    (
        "SELECT item_id, title, artist FROM chat.chat_tracks WHERE artist ILIKE '%Beyonc\u00e9%'",
        "SELECT item_id, title, artist FROM chat.chat_tracks WHERE artist ILIKE '%Beyonc\u00e9%' LIMIT 25",
    ),
    (
        "SELECT item_id FROM chat_tracks WHERE title = 'a;b -- c /* d'",
        "SELECT item_id FROM chat.chat_tracks WHERE title = 'a;b -- c /* d' LIMIT 25",
    ),
    (
        "SELECT item_id, title, artist FROM chat_tracks UNION ALL SELECT item_id, title, artist FROM chat_tracks",
        "SELECT item_id, title, artist FROM chat.chat_tracks UNION ALL SELECT item_id, title, artist "
        "FROM chat.chat_tracks LIMIT 25",
    ),
    (
        "WITH hits AS (SELECT item_id, title, artist FROM chat_tracks WHERE energy > 0.6) "
        "SELECT item_id, title, artist FROM hits ORDER BY random() LIMIT 5",
        "WITH hits AS (SELECT item_id, title, artist FROM chat.chat_tracks WHERE energy > 0.6) "
        "SELECT item_id, title, artist FROM hits ORDER BY RANDOM() LIMIT 5",
    ),
    (
        "SELECT item_id FROM chat_tracks AS t WHERE EXISTS (SELECT 1 FROM chat_tracks AS u WHERE u.artist = t.artist "
        "AND u.item_id <> t.item_id)",
        "SELECT item_id FROM chat.chat_tracks AS t WHERE EXISTS(SELECT 1 FROM chat.chat_tracks AS u WHERE u.artist = "
        "t.artist AND u.item_id <> t.item_id) LIMIT 25",
    ),
    (
        "SELECT * FROM chat_tracks WHERE year BETWEEN 1980 AND 1989 AND scale = 'minor' AND key IS NOT NULL",
        "SELECT * FROM chat.chat_tracks WHERE year BETWEEN 1980 AND 1989 AND scale = 'minor' AND key IS NOT NULL "
        "LIMIT 25",
    ),
]


@pytest.mark.parametrize("answer, expected", SAFE, ids=[f"safe{i}" for i in range(len(SAFE))])
def test_safe_answers_are_accepted_and_reserialised(answer: str, expected: str) -> None:
    result = validate(answer, 25)
    assert result.sql == expected
    assert validate(result.sql, 25).sql == expected  # a fixed point


def test_the_prompt_examples_and_every_rules_query_pass_the_validator() -> None:
    text = prompt.system_prompt(25, 3)
    assert len(prompt.examples(25, 3)) == 5
    for request, sql in prompt.examples(25, 3):
        assert request in text and sql in text
        validate(sql, 25)
    for request in (
        "energetic rock for running",
        "calm piano",
        "sad 80s songs",
        "fast metal like Iron Maiden",
        "songs by Guns N' Roses",
        "hip hop from 1995",
        "by 100% _evil_' OR 1=1",
    ):
        validate(rules.build_sql(rules.understand(request), 25, 3), 25)


def test_every_column_and_label_is_in_the_prompt() -> None:
    text = prompt.system_prompt(25, 3)
    assert all(c in text for c in ALL_COLUMNS if not c.startswith(("mood_", "mtt_")))
    assert all(c in text for c in MOOD_COLUMNS)
    assert len(MSD_LABELS) == len(MTT_LABELS) == 50 and len(OTHER_FEATURES) == 6


def test_the_rules_understand_plain_requests() -> None:
    u = rules.understand("energetic rock for running")
    assert {"mood_rock"} <= set(u.columns) and u.energy == (0.6, None) and u.tempo == (120, None)
    u = rules.understand("calm piano")
    assert {"mtt_piano", "relaxed"} <= set(u.columns) and u.energy == (None, 0.45)
    u = rules.understand("sad 80s songs")
    assert "sad" in u.columns and u.years == (1980, 1989) and u.era_column == "mood_80s"
    u = rules.understand("fast metal like Iron Maiden")
    assert (
        u.like == "Iron Maiden" and u.artist is None and "mood_metal" in u.columns and u.tempo == (130, None)
    )
    assert "sounding like Iron Maiden" in u.summary
    u = rules.understand("songs by Iron Maiden")
    assert u.artist == "Iron Maiden" and u.like is None and "artist like 'Iron Maiden'" in u.summary
    sql = validate(rules.build_sql(rules.understand("rock"), 25, 3, within=["a'b", "c"]), 25).sql
    assert "item_id IN ('a''b', 'c')" in sql
    assert rules.understand("hip hop from 1995").years == (1995, 1995)
    assert rules.understand("zzz qqq").empty
