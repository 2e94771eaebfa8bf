"""Similarity, search, paths and mixes through the HTTP API, on a real PostgreSQL + pgvector
with a clustered synthetic library inserted directly (no analysis needed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from library_factory import as_space, insert_library, item_id, make_embeddings, make_tracks

from sidecar.app import create_app
from sidecar.services import Endpoints
from sidecar.similarity import store
from sidecar.web.keys import DB

N = 600


@pytest_asyncio.fixture
async def lib(db: asyncpg.Pool) -> tuple[list, np.ndarray]:
    vectors, styles = make_embeddings(N, seed=7)
    tracks = make_tracks(N, styles)
    await insert_library(db, tracks, vectors)
    return tracks, vectors


@pytest_asyncio.fixture
async def client(make_settings: Any, endpoints: Endpoints, tmp_path: Path) -> AsyncIterator[TestClient]:
    music = tmp_path / "music"
    music.mkdir()
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)}, ai_chat_db_user_name="ai_user_sim")
    c = TestClient(TestServer(create_app(settings, endpoints)))
    await c.start_server()
    yield c
    await c.close()


def exact_neighbours(vectors: np.ndarray, i: int, k: int) -> list[int]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    d = 1 - unit @ unit[i]
    return [int(j) for j in np.argsort(d) if j != i][:k]


async def test_hnsw_matches_exact_search(db: asyncpg.Pool, lib: tuple[list, np.ndarray]) -> None:
    tracks, vectors = lib
    recalls = []
    for i in range(0, N, 37):
        got = await store.nearest(db, as_space(vectors[i]), 50, exclude=[tracks[i].item_id])
        exact = {tracks[j].item_id for j in exact_neighbours(vectors, i, 50)}
        assert len(got) == 50
        assert [c.distance for c in got] == sorted(c.distance for c in got)
        recalls.append(len(exact & {c.item_id for c in got}) / 50)
    assert np.mean(recalls) >= 0.98, recalls


async def test_ef_search_covers_large_limits(db: asyncpg.Pool, lib: tuple[list, np.ndarray]) -> None:
    _, vectors = lib
    # pgvector returns at most ef_search rows: asking for 500 must give 500
    assert len(await store.nearest(db, as_space(vectors[0]), 500)) == 500
    many = await store.nearest_many(db, (await store.seeds_by_ids(db, [item_id(1), item_id(2)])), 300)
    assert [len(v) for v in many.values()] == [300, 300]


async def test_knn_queries_survive_parallel_plans(db: asyncpg.Pool, lib: tuple[list, np.ndarray]) -> None:
    """am_nearest sets hnsw.ef_search, which PostgreSQL forbids inside a parallel operation: on a
    large library the planner chose parallel plans for the LATERAL queries and they failed."""
    tracks, _ = lib
    async with db.acquire() as conn, conn.transaction():
        await conn.execute(
            "SET LOCAL debug_parallel_query = on; SET LOCAL parallel_setup_cost = 0; "
            "SET LOCAL parallel_tuple_cost = 0"
        )
        seed, cands = await store.seed_and_nearest(conn, tracks[0].item_id, 100, [tracks[1].item_id])
        many = await store.nearest_many(conn, (await store.seeds_by_ids(conn, [item_id(1), item_id(2)])), 50)
    assert seed is not None and seed.item_id == tracks[0].item_id
    assert len(cands) == 100 and {tracks[0].item_id, tracks[1].item_id}.isdisjoint(c.item_id for c in cands)
    assert [len(v) for v in many.values()] == [50, 50]


async def test_new_tracks_are_searchable_at_once(
    db: asyncpg.Pool, lib: tuple[list, np.ndarray], client: TestClient
) -> None:
    tracks, vectors = lib
    twin = vectors[3] * 1.0001 + 0.0001
    await db.execute(
        "INSERT INTO tracks (item_id, provider, title, artist, album, analysis_status, model_version)"
        " VALUES ('fresh', 'local', 'Fresh', 'Newcomer', 'Debut', 'analyzed', 'v')"
    )
    await db.execute(
        "INSERT INTO embeddings (item_id, embedding, space, model_version)"
        " VALUES ('fresh', $1, $1 || array_fill(0::real, ARRAY[204])::vector, 'v')",
        twin,
    )
    body = await (
        await client.get(
            "/api/similar_tracks",
            params={"item_id": tracks[3].item_id, "n": "5", "eliminate_duplicates": "false"},
        )
    ).json()
    assert body[0]["item_id"] == "fresh" and body[0]["distance"] < 1e-4


async def test_similar_tracks_shape_and_rules(client: TestClient, lib: tuple[list, np.ndarray]) -> None:
    tracks, vectors = lib
    seed = tracks[10]
    resp = await client.get("/api/similar_tracks", params={"item_id": seed.item_id, "n": "20"})
    assert resp.status == 200
    body = await resp.json()
    assert len(body) == 20
    assert set(body[0]) >= {"item_id", "title", "author", "album", "distance"}
    assert seed.item_id not in [b["item_id"] for b in body]
    assert [b["distance"] for b in body] == sorted(b["distance"] for b in body)
    by_artist: dict[str, int] = {}
    for b in body:
        by_artist[b["author"]] = by_artist.get(b["author"], 0) + 1
    assert max(by_artist.values()) <= 3  # MAX_SONGS_PER_ARTIST (the seed's artist counts the seed too)
    assert by_artist.get(seed.artist, 0) <= 2
    # mostly the seed's own style: the embedding space is clustered
    style_of = {t.item_id: t.style for t in tracks}
    assert sum(style_of[b["item_id"]] == seed.style for b in body) >= 15


async def test_duplicates_are_eliminated_on_request(
    client: TestClient, db: asyncpg.Pool, lib: tuple[list, np.ndarray]
) -> None:
    tracks, vectors = lib
    seed = tracks[20]
    neighbour = exact_neighbours(vectors, 20, 1)[0]
    n_track = tracks[neighbour]
    # the neighbour's song again on a compilation, and a remaster with near-identical audio
    await db.execute(
        "INSERT INTO tracks (item_id, provider, title, artist, album, analysis_status, model_version)"
        " VALUES ('dup1', 'local', $1, $2, 'Greatest Hits', 'analyzed', 'v'),"
        " ('dup2', 'local', 'Other Name', 'Other Artist', 'X', 'analyzed', 'v')",
        n_track.title,
        n_track.artist,
    )
    await db.executemany(
        "INSERT INTO embeddings (item_id, embedding, space, model_version)"
        " VALUES ($1, $2, $2 || array_fill(0::real, ARRAY[204])::vector, 'v')",
        [("dup1", vectors[neighbour] * 1.01), ("dup2", vectors[neighbour] + 1e-4)],
    )
    raw = await (
        await client.get(
            "/api/similar_tracks",
            params={"item_id": seed.item_id, "n": "10", "eliminate_duplicates": "false"},
        )
    ).json()
    assert {"dup1", "dup2", n_track.item_id} <= {b["item_id"] for b in raw}
    clean = await (
        await client.get(
            "/api/similar_tracks", params={"item_id": seed.item_id, "n": "10", "eliminate_duplicates": "true"}
        )
    ).json()
    ids = [b["item_id"] for b in clean]
    assert len(ids) == 10 and len({n_track.item_id, "dup1", "dup2"} & set(ids)) == 1


async def test_similar_tracks_by_title_and_artist_with_typos(
    client: TestClient, lib: tuple[list, np.ndarray]
) -> None:
    tracks, _ = lib
    t = tracks[42]
    resp = await client.get(
        "/api/similar_tracks",
        params={"title": t.title.replace("Song", "Sogn"), "artist": t.artist.lower(), "n": "3"},
    )
    assert resp.status == 200 and len(await resp.json()) == 3


@pytest.mark.parametrize(
    "params, status, error",
    [
        ({"item_id": "nope"}, 404, "unknown track"),
        ({"n": "5"}, 400, "give item_id, or title and artist"),
        ({"item_id": "x", "n": "0"}, 400, "n must be between 1 and 500"),
        ({"item_id": "x", "n": "lots"}, 400, "n must be an integer"),
        (
            {"item_id": "x", "eliminate_duplicates": "maybe"},
            400,
            "eliminate_duplicates must be true or false",
        ),
    ],
)
async def test_similar_tracks_errors(
    client: TestClient, lib: Any, params: dict, status: int, error: str
) -> None:
    resp = await client.get("/api/similar_tracks", params=params)
    assert resp.status == status
    assert (await resp.json())["error"] == error


async def test_not_analysed_and_empty_library(client: TestClient, db: asyncpg.Pool) -> None:
    await db.execute("INSERT INTO tracks (item_id, provider, title) VALUES ('p1', 'local', 'Pending')")
    resp = await client.get("/api/similar_tracks", params={"item_id": "p1"})
    assert resp.status == 503  # nothing analysed at all yet
    assert (await resp.json())["error"] == "no track has been analysed yet"
    vectors, styles = make_embeddings(20, seed=1)
    await insert_library(db, make_tracks(20, styles), vectors)
    resp = await client.get("/api/similar_tracks", params={"item_id": "p1"})
    assert resp.status == 404 and (await resp.json())["error"] == "track not analysed (pending)"
    resp = await client.get("/api/mix", params={"seed": "p1"})
    assert resp.status == 404


async def test_search_tracks(client: TestClient, db: asyncpg.Pool, lib: Any) -> None:
    await db.execute(
        "INSERT INTO tracks (item_id, provider, title, artist, album) VALUES "
        "('s1', 'local', 'Jóga', 'Björk', 'Homogenic'), ('s2', 'local', 'Army of Me', 'Björk', 'Post'),"
        "('s3', 'local', '100% Pure_Love', 'Crystal Waters', 'Storyteller')"
    )
    body = await (await client.get("/api/search_tracks", params={"search_query": "bjork"})).json()
    assert {b["item_id"] for b in body} == {"s1", "s2"}
    assert set(body[0]) >= {"item_id", "title", "author", "album"}
    body = await (await client.get("/api/search_tracks", params={"search_query": "JOGA bjrk"})).json()
    assert body and body[0]["item_id"] == "s1"  # typo-tolerant
    body = await (await client.get("/api/search_tracks", params={"search_query": "100% pure_"})).json()
    assert [b["item_id"] for b in body][:1] == ["s3"]  # LIKE wildcards are literal
    page1 = await (
        await client.get("/api/search_tracks", params={"search_query": "song 1", "start": 0, "end": 5})
    ).json()
    page2 = await (
        await client.get("/api/search_tracks", params={"search_query": "song 1", "start": 5, "end": 10})
    ).json()
    assert (
        len(page1) == 5
        and len(page2) == 5
        and not {b["item_id"] for b in page1} & {b["item_id"] for b in page2}
    )
    assert (await client.get("/api/search_tracks")).status == 400
    assert (
        await client.get("/api/search_tracks", params={"search_query": "x", "start": 5, "end": 2})
    ).status == 400


async def test_find_path_starts_and_ends_at_the_songs(
    client: TestClient, lib: tuple[list, np.ndarray]
) -> None:
    tracks, _ = lib
    a = next(t for t in tracks if t.style == 0)
    b = next(t for t in tracks if t.style == 5)
    body = await (
        await client.get(
            "/api/find_path", params={"start_song_id": a.item_id, "end_song_id": b.item_id, "max_steps": "12"}
        )
    ).json()
    path = [p["item_id"] for p in body["path"]]
    assert path[0] == a.item_id and path[-1] == b.item_id and len(path) == 12
    assert len(set(path)) == 12 and body["total_distance"] > 0
    assert (
        await client.get("/api/find_path", params={"start_song_id": a.item_id, "end_song_id": a.item_id})
    ).status == 400
    assert (
        await client.get("/api/find_path", params={"start_song_id": a.item_id, "end_song_id": "zz"})
    ).status == 404
    assert (await client.get("/api/find_path", params={"start_song_id": a.item_id})).status == 400


def _check_mix(items: list[dict], n: int, cap: int = 3) -> None:
    ids = [i["item_id"] for i in items]
    assert len(ids) == n and len(set(ids)) == n
    artists = [i["author"] for i in items]
    assert all(a != b for a, b in zip(artists, artists[1:], strict=False)), "same artist twice in a row"
    assert max(artists.count(a) for a in set(artists)) <= cap


async def test_song_mix(client: TestClient, lib: tuple[list, np.ndarray]) -> None:
    tracks, _ = lib
    seed = tracks[100]
    body = await (await client.get("/api/mix", params={"seed": seed.item_id, "n": "30"})).json()
    assert body["kind"] == "song" and body["relaxed"] == []
    assert body["items"][0]["item_id"] == seed.item_id  # clients play in order: the seed first
    _check_mix(body["items"], 30)
    previous = [i["item_id"] for i in body["items"][1:11]]
    again = await (
        await client.get("/api/mix", params={"seed": seed.item_id, "n": "30", "previous": ",".join(previous)})
    ).json()
    assert not set(previous) & {i["item_id"] for i in again["items"]}
    _check_mix(again["items"], 30)


@pytest.mark.parametrize("kind", ["album", "artist", "genre"])
async def test_multi_seed_mixes(client: TestClient, lib: tuple[list, np.ndarray], kind: str) -> None:
    tracks, _ = lib
    t = tracks[5]
    seed = {"album": t.album_id, "artist": t.artist, "genre": t.genre}[kind]
    body = await (await client.get("/api/mix", params={"seed": seed, "kind": kind, "n": "25"})).json()
    _check_mix(body["items"], 25)
    seeds = {
        "album": {x.item_id for x in tracks if x.album_id == t.album_id},
        "artist": set(),
        "genre": set(),
    }[kind]
    assert not seeds & {i["item_id"] for i in body["items"]}  # an album mix does not replay the album


async def test_mix_relaxes_rules_on_a_tiny_library(client: TestClient, db: asyncpg.Pool) -> None:
    vectors, _ = make_embeddings(12, styles=1, seed=3)
    tracks = make_tracks(12, np.zeros(12, dtype=int), artists_per_style=1)  # one artist only
    await insert_library(db, tracks, vectors)
    body = await (await client.get("/api/mix", params={"seed": tracks[0].item_id, "n": "10"})).json()
    assert len(body["items"]) == 10  # not short, not empty
    assert "max_songs_per_artist" in body["relaxed"] and "artist_in_a_row" in body["relaxed"]
    body = await (await client.get("/api/mix", params={"seed": tracks[0].item_id, "n": "50"})).json()
    assert len(body["items"]) == 12  # everything there is


@pytest.mark.parametrize(
    "params, status",
    [
        ({}, 400),
        ({"seed": "x", "kind": "mood"}, 400),
        ({"seed": "x", "n": "501"}, 400),
        ({"seed": "no-such-album", "kind": "album"}, 404),
        ({"seed": "nobody", "kind": "artist"}, 404),
        ({"seed": "999", "kind": "playlist"}, 404),
    ],
)
async def test_mix_errors(client: TestClient, lib: Any, params: dict, status: int) -> None:
    resp = await client.get("/api/mix", params=params)
    assert resp.status == status and "error" in await resp.json()


async def test_create_playlist_through_the_local_provider(
    client: TestClient, tmp_path: Path, lib: tuple[list, np.ndarray]
) -> None:
    from audio_factory import make_library

    from sidecar.web.keys import PROVIDER

    music = tmp_path / "music"
    made = make_library(music, [{"artist": "A", "album": "B", "tracks": ["x", "y", "z"]}], seconds=0.3)
    provider = client.app[PROVIDER]
    ids = [t.item_id for a in await provider.list_albums() for t in await provider.album_tracks(a.id)]
    resp = await client.post("/api/create_playlist", json={"playlist_name": "My mix", "track_ids": ids})
    assert resp.status == 201
    body = await resp.json()
    m3u = music / "playlists" / f"{body['playlist_id']}.m3u8"
    assert len([line for line in m3u.read_text().splitlines() if not line.startswith("#")]) == 3
    resp = await client.post("/api/create_playlist", json={"playlist_name": "My mix", "track_ids": ids[:1]})
    assert resp.status == 201 and (await resp.json())["playlist_id"] == body["playlist_id"]  # replaced
    row = await client.app[DB].fetchrow("SELECT kind, track_ids FROM playlists WHERE name = 'My mix'")
    assert row["kind"] == "similar" and row["track_ids"] == ids[:1]
    assert len(made) == 3
    # the recorded playlist can seed a mix once its tracks are analysed
    resp = await client.get("/api/mix", params={"seed": body["playlist_id"], "kind": "playlist"})
    assert resp.status == 404 and (await resp.json())["error"] == "no analysed track for this playlist"


@pytest.mark.parametrize(
    "body, error",
    [
        ({"track_ids": ["a"]}, "playlist_name must be a non-empty string"),
        ({"playlist_name": "x", "track_ids": []}, "track_ids must be a non-empty list of track ids"),
        ({"playlist_name": "x", "track_ids": "a,b"}, "track_ids must be a non-empty list of track ids"),
    ],
)
async def test_create_playlist_errors(client: TestClient, body: dict, error: str) -> None:
    resp = await client.post("/api/create_playlist", json=body)
    assert resp.status == 400 and (await resp.json())["error"] == error
    resp = await client.post("/api/create_playlist", json={"playlist_name": "x", "track_ids": ["unknown"]})
    assert resp.status == 404 and (await resp.json())["error"] == "not found on the media server"


async def test_album_mates_come_first_when_they_are_nearest(
    client: TestClient, db: asyncpg.Pool, lib: tuple[list, np.ndarray]
) -> None:
    """Issue #12: similar_tracks is the nearest tracks (no album rule): a soundtrack's own tracks,
    nearest to each other, come first, by distance; the artist cap still holds (the seed counts).
    A mix holds the same nearest tracks and only orders them: never two of the album in a row."""
    from library_factory import FakeTrack

    _, vectors = lib
    rng = np.random.default_rng(12)
    centre = rng.normal(size=200).astype(np.float32) * 3
    composers = ["Ann", "Bo", "Cy", "Di", "Ed", "Flo"]  # a soundtrack: one composer per track
    album = [
        FakeTrack(
            f"ost-{k}", f"Theme {k}", composers[k], "The Soundtrack", "ost-album", "Soundtrack", k + 1, 99
        )
        for k in range(6)
    ]
    album_vectors = centre + rng.normal(size=(6, 200)).astype(np.float32) * 0.3 * np.linalg.norm(centre) / 14
    # two more by the first composer, from another album, as near as the soundtrack's own tracks
    solo = [
        FakeTrack(f"solo-{k}", f"Solo {k}", "Ann", "Ann Alone", "solo-album", "Soundtrack", k + 1, 99)
        for k in range(2)
    ]
    solo_vectors = centre + rng.normal(size=(2, 200)).astype(np.float32) * 0.3 * np.linalg.norm(centre) / 14
    await insert_library(db, album + solo, np.vstack([album_vectors, solo_vectors]))
    seed = "ost-0"

    raw = await (
        await client.get(
            "/api/similar_tracks", params={"item_id": seed, "n": "10", "eliminate_duplicates": "false"}
        )
    ).json()
    nearest = [b["item_id"] for b in raw]
    assert set(nearest[:7]) == {"ost-1", "ost-2", "ost-3", "ost-4", "ost-5", "solo-0", "solo-1"}

    body = await (await client.get("/api/similar_tracks", params={"item_id": seed, "n": "5"})).json()
    ids = [b["item_id"] for b in body]
    # the album-mates and at most 2 more by Ann (3 with the seed), nearest first
    expected = [
        i for i in nearest if i.startswith("ost-") or i in [s for s in nearest if s.startswith("solo-")][:2]
    ]
    assert ids == expected[:5]
    assert [b["distance"] for b in body] == sorted(b["distance"] for b in body)
    assert all(i.startswith(("ost-", "solo-")) for i in ids)

    mix = await (await client.get("/api/mix", params={"seed": seed, "n": "12"})).json()
    items = [i["item_id"] for i in mix["items"]]
    assert items[0] == seed and len(items) == 12
    assert {"ost-1", "ost-2", "ost-3", "ost-4", "ost-5"} <= set(items), "a nearer album-mate was left out"
    albums = [i["album_id"] for i in mix["items"]]
    assert all(a != b for a, b in zip(albums, albums[1:], strict=False)), "the album played back to back"
    assert mix["relaxed"] == ["album_spacing"]  # six of twelve from one album cannot be 3 apart, only 1
