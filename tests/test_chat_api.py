"""The instant-playlist endpoints end to end: the app, a real PostgreSQL with the chat role, and a
scripted OpenAI-compatible server on loopback (good SQL, SQL fixed on retry, an empty result
widened, garbage, timeouts, 500s), and the no-LLM path ranking analysed tracks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from audio_factory import make_library
from fakes.openai_server import Answer, FakeOpenAI, Status
from test_chat_db import add_track

from sidecar.app import create_app
from sidecar.services import Endpoints
from sidecar.web.keys import PROVIDER

ROLE = "ai_user_chat_api"
GOOD = "SELECT item_id, title, artist FROM chat_tracks WHERE mood_rock >= 0.5 ORDER BY mood_rock DESC"


async def _library(db: asyncpg.Pool) -> None:
    await add_track(db, "r1", title="Loud One", artist="Band A", tempo=150, energy=0.9, tags={"rock": 0.9})
    await add_track(db, "r2", title="Loud Two", artist="Band A", tempo=145, energy=0.8, tags={"rock": 0.8})
    await add_track(db, "r3", title="Loud Three", artist="Band A", tempo=160, energy=0.85, tags={"rock": 0.7})
    await add_track(db, "r4", title="Loud Four", artist="Band A", tempo=140, energy=0.7, tags={"rock": 0.65})
    await add_track(db, "r5", title="Other Rock", artist="Band B", tempo=135, energy=0.75, tags={"rock": 0.6})
    await add_track(
        db, "slowrock", title="Slow Rock", artist="Band C", tempo=70, energy=0.3, tags={"rock": 0.95}
    )
    await add_track(
        db,
        "p1",
        title="Nocturne",
        artist="Pianist",
        tempo=60,
        energy=0.1,
        mtt={"piano": 0.9},
        features={"relaxed": 0.9},
    )
    await add_track(
        db,
        "p2",
        title="Etude",
        artist="Pianist 2",
        tempo=80,
        energy=0.2,
        mtt={"piano": 0.6},
        features={"relaxed": 0.5},
    )
    await add_track(
        db, "p3", title="Loud Piano", artist="Pianist 3", tempo=120, energy=0.9, mtt={"piano": 0.95}
    )
    await add_track(
        db, "s80", title="Tears", artist="Wave", year=1984, features={"sad": 0.9}, tags={"sad": 0.5}
    )
    await add_track(db, "s90", title="Later Tears", artist="Wave 2", year=1995, features={"sad": 0.95})
    await add_track(db, "m1", title="Aces", artist="Iron Maiden", tempo=170, tags={"metal": 0.9})
    await add_track(db, "m2", title="Slow Maiden", artist="Iron Maiden", tempo=90, tags={"metal": 0.9})
    await add_track(db, "m3", title="Other Metal", artist="Metal Band", tempo=175, tags={"metal": 0.99})
    await add_track(db, "gone", title="Failed", artist="X", status="failed")


@pytest_asyncio.fixture
async def app_client(
    make_settings: Any, endpoints: Endpoints, db: asyncpg.Pool, tmp_path: Path
) -> AsyncIterator[TestClient]:
    (tmp_path / "music").mkdir()
    settings = make_settings(
        {"LOCAL_MUSIC_DIR": str(tmp_path / "music"), "API_TOKEN": "tok-123"}, ai_chat_db_user_name=ROLE
    )
    await _library(db)
    client = TestClient(TestServer(create_app(settings, endpoints)))
    await client.start_server()
    yield client
    await client.close()


AUTH = {"Authorization": "Bearer tok-123"}


async def ask(client: TestClient, body: dict[str, Any], path: str = "/api/chat/playlist") -> dict[str, Any]:
    resp = await client.post(path, json=body, headers=AUTH)
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = (await resp.json())["response"]
    return data


def llm(server: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "ai_provider": "OPENAI",
        "openai_server_url": server.base_url,
        "openai_api_key": "sk-test",
        "ai_model": "test-model",
        **extra,
    }


def ids(response: dict[str, Any]) -> list[str]:
    return [t["item_id"] for t in response["query_results"]]


async def test_without_an_llm_the_request_is_understood_by_rules(app_client: TestClient) -> None:
    r = await ask(app_client, {"userInput": "energetic rock for running"})
    assert r["ai_provider_used"] == "NONE" and r["ai_model_selected"] is None
    assert "mood_rock" in r["understood_as"] and "energy >= 0.6" in r["understood_as"]
    # fast and loud rock only (not the slow one), best score first (the rock scores plus how far
    # above the running tempo and energy: r3 is less rock than r2 but faster and louder), at most
    # 3 of Band A
    assert ids(r) == ["r1", "r3", "r2", "r5"]
    assert r["query_results"][0] == {"item_id": "r1", "title": "Loud One", "artist": "Band A"}
    assert "chat.chat_tracks" in r["executed_query"]
    r = await ask(app_client, {"userInput": "calm piano"}, "/chat/api/chatPlaylist")
    assert ids(r)[:2] == ["p1", "p2"] and "p3" not in ids(r)
    r = await ask(app_client, {"userInput": "sad 80s songs"})
    assert ids(r)[0] == "s80" and "s90" not in ids(r)
    r = await ask(app_client, {"userInput": "fast metal by Iron Maiden"})
    assert ids(r) == ["m1"] and "artist like 'Iron Maiden'" in r["understood_as"]
    r = await ask(app_client, {"userInput": "fast metal like Iron Maiden"})  # no embeddings: no sonic mix
    assert ids(r) == ["m1"] and "No sonic mix for 'Iron Maiden'" in r["message"]
    r = await ask(app_client, {"userInput": "blorp zib"})
    assert r["query_results"] == [] and "nothing I know" in r["message"]


async def test_an_llm_query_runs_validated(app_client: TestClient) -> None:
    async with FakeOpenAI([Answer(f"```sql\n{GOOD} LIMIT 500;\n```")]) as server:
        r = await ask(app_client, {"userInput": "rock please", **llm(server)}, "/chat/api/chatPlaylist")
        server.assert_no_violations()
        assert len(server.requests) == 1
        prompt = server.requests[0].prompt
    assert "chat_tracks" in prompt and "mood_female_vocalists" in prompt and "mtt_no_vocals" in prompt
    assert "CASE WHEN" in prompt and "ROW_NUMBER()" in prompt and "rock please" in prompt
    assert set(r) == {
        "message",
        "original_request",
        "ai_provider_used",
        "ai_model_selected",
        "executed_query",
        "understood_as",
        "query_results",
    }
    assert (r["ai_provider_used"], r["ai_model_selected"], r["original_request"]) == (
        "OPENAI",
        "test-model",
        "rock please",
    )
    assert r["executed_query"].endswith("LIMIT 25") and "chat.chat_tracks" in r["executed_query"]
    assert ids(r) == ["slowrock", "r1", "r2", "r3", "r4", "r5"]


async def test_a_refused_query_is_fed_back_and_fixed(app_client: TestClient) -> None:
    async with FakeOpenAI(
        [
            Answer("SELECT item_id, title, file_path AS artist FROM tracks"),
            Answer("SELECT item_id FROM chat_tracks WHERE no_such_column > 1"),
            Answer(GOOD),
        ]
    ) as server:
        r = await ask(app_client, {"userInput": "rock", **llm(server)})
        server.assert_no_violations()
        assert len(server.requests) == 3
        second, third = server.requests[1].prompt, server.requests[2].prompt
    assert "only chat_tracks may be read, not tracks" in second
    assert "no_such_column" in third and "does not exist" in third
    assert "refused before running" in r["message"] and "the database refused" in r["message"]
    assert ids(r)[0] == "slowrock"


async def test_an_empty_result_is_widened_on_retry(app_client: TestClient) -> None:
    async with FakeOpenAI(
        [Answer("SELECT item_id FROM chat_tracks WHERE mood_rock >= 0.99"), Answer(GOOD)]
    ) as server:
        r = await ask(app_client, {"userInput": "rock", **llm(server)})
        assert "found no songs" in server.requests[1].prompt
    assert len(ids(r)) == 6 and "Attempt 2: 6 songs." in r["message"]


async def test_garbage_three_times_falls_back_to_the_rules(app_client: TestClient) -> None:
    async with FakeOpenAI(
        [
            Answer("I'm sorry, I cannot help with that."),
            Answer("DROP TABLE tracks"),
            Answer("<think>hmm</think>SELECT pg_sleep(100) AS item_id FROM chat_tracks"),
        ]
    ) as server:
        r = await ask(app_client, {"userInput": "calm piano", **llm(server)})
        assert len(server.requests) == 3
    assert "falling back to the rules" in r["message"] and "system function pg_sleep" in r["message"]
    assert ids(r)[:2] == ["p1", "p2"] and r["ai_provider_used"] == "OPENAI"


async def test_timeouts_and_server_errors_fall_back_to_the_rules(app_client: TestClient) -> None:
    async with FakeOpenAI([Answer(GOOD, delay=5)]) as server:
        r = await ask(app_client, {"userInput": "calm piano", **llm(server, ai_request_timeout_seconds=0.5)})
    assert "no answer within 0.5 s" in r["message"] and ids(r)[:2] == ["p1", "p2"]
    async with FakeOpenAI([Status(500), Status(500)]) as server:
        r = await ask(app_client, {"userInput": "calm piano", **llm(server)})
        assert len(server.requests) == 2  # the client's one retry, then the rules
    assert "HTTP 500" in r["message"] and ids(r)[:2] == ["p1", "p2"]


async def test_bad_requests_and_the_token(app_client: TestClient) -> None:
    for path in ("/chat/api/chatPlaylist", "/api/chat/playlist", "/chat/api/create_playlist"):
        resp = await app_client.post(path, json={"userInput": "rock"})
        assert resp.status == 401, path
    resp = await app_client.post("/api/chat/playlist", json={}, headers=AUTH)
    assert resp.status == 400 and "userInput" in (await resp.json())["error"]
    resp = await app_client.post("/api/chat/playlist", json={"userInput": "x", "evil": 1}, headers=AUTH)
    assert resp.status == 400 and "evil" in (await resp.json())["error"]
    resp = await app_client.post(
        "/api/chat/playlist", json={"userInput": "x", "ai_provider": "GEMINI"}, headers=AUTH
    )
    assert resp.status == 400 and "gemini_api_key" in (await resp.json())["error"]


async def test_create_an_instant_playlist(app_client: TestClient, db: asyncpg.Pool, tmp_path: Path) -> None:
    make_library(tmp_path / "music", [{"artist": "A", "album": "B", "tracks": ["x", "y"]}], seconds=0.3)
    provider = app_client.app[PROVIDER]
    item_ids = [t.item_id for a in await provider.list_albums() for t in await provider.album_tracks(a.id)]
    resp = await app_client.post(
        "/chat/api/create_playlist", json={"playlist_name": " Calm ", "item_ids": item_ids}, headers=AUTH
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert (
        body["name"] == "Calm_instant" and "Successfully created playlist 'Calm_instant'" in body["message"]
    )
    row = await db.fetchrow("SELECT kind, track_ids FROM playlists WHERE name = 'Calm_instant'")
    assert (row["kind"], row["track_ids"]) == ("instant", item_ids)
    resp = await app_client.post(
        "/chat/api/create_playlist", json={"playlist_name": "x", "item_ids": []}, headers=AUTH
    )
    assert resp.status == 400 and "item_ids" in (await resp.json())["message"]


def _vector(group: int, jitter: int) -> str:
    values = [0.0] * 200
    values[group] = 1.0
    values[100 + jitter] = 0.05
    return "[" + ",".join(str(v) for v in values) + "]"


async def test_like_an_artist_is_a_sonic_mix_filtered_by_the_words(
    app_client: TestClient, db: asyncpg.Pool
) -> None:
    groups = {
        "m1": 0,
        "m2": 0,
        "m3": 0,
        "r1": 0,
        "slowrock": 0,
        "p1": 1,
        "p2": 1,
        "p3": 1,
        "s80": 2,
        "s90": 2,
        "r2": 3,
        "r3": 3,
        "r4": 3,
        "r5": 3,
    }
    for i, (item_id, group) in enumerate(groups.items()):
        await db.execute(
            "INSERT INTO embeddings (item_id, embedding, space, model_version)"
            " VALUES ($1, $2::text::vector, $2::text::vector || array_fill(0::real, ARRAY[204])::vector, 'v')",
            item_id,
            _vector(group, i),
        )
    r = await ask(app_client, {"userInput": "fast metal like iron maiden"})
    # the sonic neighbours of Iron Maiden's tracks (not the seeds), then fast and metal only
    assert ids(r) == ["m3"] and "sounding like Iron Maiden" in r["understood_as"]
    r = await ask(app_client, {"userInput": "like Iron Maiden"})
    assert ids(r)[:3] and set(ids(r)[:3]) == {"m3", "r1", "slowrock"}


async def test_config_defaults_name_the_defaults_and_never_a_key(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path
) -> None:
    (tmp_path / "music").mkdir()
    settings = make_settings(
        {
            "LOCAL_MUSIC_DIR": str(tmp_path / "music"),
            "API_TOKEN": "tok-123",
            "AI_MODEL_PROVIDER": "OPENAI",
            "OPENAI_SERVER_URL": "https://proxy-user:url-secret-1@llm.example:8443/v1?key=url-secret-2",
            "OPENAI_API_KEY": "sk-secret-3",
            "GEMINI_API_KEY": "gemini-secret-4",
            "OPENAI_MODEL_NAME": "my-model",
        },
        ai_chat_db_user_name=ROLE,
    )
    client = TestClient(TestServer(create_app(settings, endpoints)))
    await client.start_server()
    try:
        assert (await client.get("/chat/api/config_defaults")).status == 401
        resp = await client.get("/chat/api/config_defaults", headers=AUTH)
        assert resp.status == 200
        text = await resp.text()
        body = await resp.json()
    finally:
        await client.close()
    assert "secret" not in text and "proxy-user" not in text
    assert body["default_ai_provider"] == "OPENAI" and body["default_openai_model_name"] == "my-model"
    assert body["openai_server_url"] == "https://llm.example:8443/v1"
    assert body["ollama_server_url"] == settings.ollama_server_url
    assert body["default_ollama_model_name"] == settings.ollama_model_name
    assert body["default_gemini_model_name"] == settings.gemini_model_name
    assert body["default_gemini_api_key"] == "" and body["default_openai_api_key"] == ""


async def _embed(db: asyncpg.Pool, groups: dict[str, int]) -> None:
    """Embeddings in designed groups, placed in the similarity space as they are (zero-padded)."""
    for i, (item_id, group) in enumerate(groups.items()):
        await db.execute(
            "INSERT INTO embeddings (item_id, embedding, space, model_version)"
            " VALUES ($1, $2::text::vector, $2::text::vector || array_fill(0::real, ARRAY[204])::vector, 'v')",
            item_id,
            _vector(group, i),
        )


async def test_like_a_song_is_a_song_mix_and_the_choice_is_said(
    app_client: TestClient, db: asyncpg.Pool
) -> None:
    # a song and a band both called "Clair de Lune"; a song "Nocturne" and a band whose name holds it
    await add_track(db, "deb1", title="Clair de Lune (Remastered 2010)", artist="Claude Debussy")
    await add_track(db, "deb2", title="Rêverie", artist="Claude Debussy")
    await add_track(db, "satie", title="Gymnopédie No. 1", artist="Erik Satie")
    await add_track(db, "band1", title="Moonlight", artist="Clair de Lune")
    await add_track(db, "band2", title="Tide", artist="Clair de Lune")
    await add_track(db, "bandfan", title="Night Swim", artist="Lune Fans")
    await add_track(db, "coll", title="Dark", artist="Nocturne Collective")
    groups = {"p1": 1, "p2": 1, "p3": 1, "deb1": 5, "deb2": 5, "satie": 5, "band1": 6, "band2": 6}
    groups |= {"bandfan": 6, "coll": 7, "m1": 8, "m2": 9, "m3": 10, "r1": 11, "s80": 12}
    await _embed(db, groups)

    # a title only: a song mix that starts with the song, its nearest next
    r = await ask(app_client, {"userInput": "songs like Nocturne"})
    assert ids(r)[0] == "p1" and set(ids(r)[1:3]) == {"p2", "p3"}, r["message"]
    assert "sounding like the song 'Nocturne' by Pianist" in r["understood_as"]
    # ... chosen over the artist whose name only contains the word, and the answer says so
    assert "'songs like Nocturne'" not in r["message"] and "'Nocturne' taken as the song" in r["message"]
    assert "The artist Nocturne Collective has a name containing it" in r["message"]
    # the artist named exactly so wins over the song, the song is named with how to ask for it
    r = await ask(app_client, {"userInput": "like clair de lune"})
    assert ids(r)[0] == "bandfan" and not {"band1", "band2"} & set(ids(r)), ids(r)
    assert "sounding like Clair de Lune (a sonic mix of their tracks)" in r["understood_as"]
    assert "also the title of a song by Claude Debussy" in r["message"]
    assert "like Clair de Lune (Remastered 2010) by Claude Debussy" in r["message"]
    # "T by A": that song, even with a typo and a short artist name
    r = await ask(app_client, {"userInput": "songs like Clair de Lune by Debusy"})
    assert ids(r)[0] == "deb1" and set(ids(r)[1:3]) == {"deb2", "satie"}, ids(r)
    assert "the song 'Clair de Lune (Remastered 2010)' by Claude Debussy" in r["understood_as"]
    # other words filter the song mix (its order kept): its energetic tracks, the nearest first
    r = await ask(app_client, {"userInput": "energetic songs like Nocturne"})
    assert "energy >= 0.6" in r["understood_as"] and ids(r) == ["p3", "r1"], r["message"]
    # a name that is neither: the artist-name match, as before
    r = await ask(app_client, {"userInput": "like Zzyzx Quartet"})
    assert "No sonic mix for 'Zzyzx Quartet'" in r["message"] and r["query_results"] == []
