"""Finding albums and artists by name (issue #10): GET /api/search_albums, /api/search_artists,
album and artist names as mix seeds, typo-tolerant /api/similar_artists -- over HTTP, on a real
PostgreSQL + pgvector with a small named library inserted directly."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from library_factory import FakeTrack, insert_library, make_embeddings

from sidecar.app import create_app
from sidecar.services import Endpoints

#: (artist, album, tracks): every track analysed
ANALYSED = [
    ("The Beatles", "Abbey Road", 6),
    ("The Beatles", "Let It Be", 4),
    ("Björk", "Homogenic", 5),
    ("Björk", "Post", 4),
    ("Beat Happening", "Jamboree", 3),
    ("Queen", "Greatest Hits", 5),
    ("ABBA", "Greatest Hits", 4),
    ("Radiohead", "OK Computer", 5),
    ("Massive Attack", "Mezzanine", 5),
    ("Portishead", "Dummy", 5),
]
#: (artist, album, tracks): known, not analysed yet
PENDING = [("Sigur Rós", "Ágætis byrjun", 3)]


def album_id(artist: str, album: str) -> str:
    return hashlib.md5(f"{artist}/{album}".encode()).hexdigest()


@pytest_asyncio.fixture
async def lib(db: asyncpg.Pool) -> list[FakeTrack]:
    tracks: list[FakeTrack] = []
    for style, (artist, album, count) in enumerate(ANALYSED):
        for k in range(count):
            tracks.append(
                FakeTrack(
                    f"{album_id(artist, album)[:8]}-{k}",
                    f"{album} song {k + 1}",
                    artist,
                    album,
                    album_id(artist, album),
                    "Rock",
                    k + 1,
                    style,
                )
            )
    vectors, _ = make_embeddings(len(tracks), styles=len(ANALYSED), seed=5)
    await insert_library(db, tracks, vectors)
    for artist, album, count in PENDING:
        await db.executemany(
            "INSERT INTO tracks (item_id, provider, title, artist, album, album_artist, album_id, track_number)"
            " VALUES ($1, 'local', $2, $3, $4, $3, $5, $6)",
            [
                (f"p-{k}", f"Track {k + 1}", artist, album, album_id(artist, album), k + 1)
                for k in range(count)
            ],
        )
    # untagged tracks: no artist, no album
    await db.executemany(
        "INSERT INTO tracks (item_id, provider, title) VALUES ($1, 'local', $2)",
        [(f"u-{k}", f"Untitled {k}") for k in range(3)],
    )
    return tracks


@pytest_asyncio.fixture
async def client(make_settings: Any, endpoints: Endpoints, tmp_path: Path) -> AsyncIterator[TestClient]:
    music = tmp_path / "music"
    music.mkdir()
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)}, ai_chat_db_user_name="ai_user_names")
    c = TestClient(TestServer(create_app(settings, endpoints)))
    await c.start_server()
    yield c
    await c.close()


async def get(client: TestClient, path: str, **params: str) -> tuple[int, Any]:
    resp = await client.get(path, params=params)
    return resp.status, await resp.json()


# ---------------------------------------------------------------------------------- search_tracks


async def test_search_tracks_gives_the_album_id(client: TestClient, lib: list[FakeTrack]) -> None:
    status, body = await get(client, "/api/search_tracks", search_query="abbey road song 2")
    assert status == 200
    assert body[0] == {
        "item_id": lib[1].item_id,
        "title": "Abbey Road song 2",
        "author": "The Beatles",
        "album": "Abbey Road",
        "album_id": album_id("The Beatles", "Abbey Road"),
        "analyzed": True,
    }


# ---------------------------------------------------------------------------------- search_albums


async def test_search_albums_shape_counts_and_typos(client: TestClient, lib: list[FakeTrack]) -> None:
    status, body = await get(client, "/api/search_albums", query="abbey road")
    assert status == 200
    assert body[0] == {
        "album_id": album_id("The Beatles", "Abbey Road"),
        "album": "Abbey Road",
        "artist": "The Beatles",
        "tracks": 6,
        "analyzed": 6,
    }
    for typo in ("abby road", "ABBEY RAOD", "homogenc"):
        status, body = await get(client, "/api/search_albums", query=typo)
        assert status == 200 and body, typo
        assert body[0]["album"] == ("Homogenic" if typo == "homogenc" else "Abbey Road"), (typo, body)
    # accent-insensitive, and a pending album is found with analyzed = 0
    _, body = await get(client, "/api/search_albums", query="agaetis")
    assert body[0] == {
        "album_id": album_id("Sigur Rós", "Ágætis byrjun"),
        "album": "Ágætis byrjun",
        "artist": "Sigur Rós",
        "tracks": 3,
        "analyzed": 0,
    }


async def test_search_albums_by_artist_are_ordered_by_size(client: TestClient, lib: list[FakeTrack]) -> None:
    _, body = await get(client, "/api/search_albums", query="bjork")
    assert [b["album"] for b in body] == ["Homogenic", "Post"]  # equally relevant: the bigger first
    _, body = await get(client, "/api/search_albums", query="greatest hits")
    assert [(b["artist"], b["tracks"]) for b in body] == [("Queen", 5), ("ABBA", 4)]
    # an exact name outranks a bigger album that merely contains the words
    _, body = await get(client, "/api/search_albums", query="post")
    assert body[0]["album"] == "Post"


async def test_search_albums_pages_and_errors(client: TestClient, lib: list[FakeTrack]) -> None:
    _, everything = await get(client, "/api/search_albums", query="greatest hits")
    _, first = await get(client, "/api/search_albums", query="greatest hits", start="0", end="1")
    _, second = await get(client, "/api/search_albums", query="greatest hits", start="1", end="2")
    assert first + second == everything
    status, body = await get(client, "/api/search_albums")
    assert status == 400 and body["error"] == "query is required"
    status, body = await get(client, "/api/search_albums", query="x", start="5", end="2")
    assert status == 400 and body["error"] == "end must be between 5 and 205"
    status, body = await get(client, "/api/search_albums", query="zzzzqqqq")
    assert status == 200 and body == []


# ---------------------------------------------------------------------------------- search_artists


async def test_search_artists_shape_counts_and_typos(client: TestClient, lib: list[FakeTrack]) -> None:
    status, body = await get(client, "/api/search_artists", query="beatles")
    assert status == 200
    assert body[0] == {"artist": "The Beatles", "albums": 2, "tracks": 10, "analyzed": 10}
    for typo, expected in (
        ("Beatels", "The Beatles"),
        ("the beatls", "The Beatles"),
        ("BJORK", "Björk"),
        ("massive atack", "Massive Attack"),
        ("radiohed", "Radiohead"),
    ):
        _, body = await get(client, "/api/search_artists", query=typo)
        assert body and body[0]["artist"] == expected, (typo, body)
    _, body = await get(client, "/api/search_artists", query="sigur ros")
    assert body[0] == {"artist": "Sigur Rós", "albums": 1, "tracks": 3, "analyzed": 0}
    # the exact name first
    _, body = await get(client, "/api/search_artists", query="portishead")
    assert body[0]["artist"] == "Portishead"
    status, body = await get(client, "/api/search_artists", query=" ")
    assert status == 400 and body["error"] == "query is required"
    _, body = await get(client, "/api/search_artists", query="untitled")
    assert body == []  # untagged tracks have no artist to list


# ---------------------------------------------------------------------------------- names as seeds


async def test_album_mix_by_name(client: TestClient, lib: list[FakeTrack]) -> None:
    abbey = album_id("The Beatles", "Abbey Road")
    for seed in ("Abbey Road", "abbey road", "Abby Road"):
        status, body = await get(client, "/api/mix", kind="album", seed=seed, n="10")
        assert status == 200, (seed, body)
        assert body["resolved"] == {
            "album_id": abbey,
            "album": "Abbey Road",
            "artist": "The Beatles",
            "tracks": 6,
            "analyzed": 6,
        }
        assert len(body["items"]) == 10 and not {i["album_id"] for i in body["items"]} & {abbey}
    # an id is used as it is
    status, body = await get(client, "/api/mix", kind="album", seed=abbey, n="5")
    assert status == 200 and body["resolved"] is None


async def test_album_id_wins_over_a_name(client: TestClient, db: asyncpg.Pool, lib: list[FakeTrack]) -> None:
    # an album whose *name* is another album's id: the id wins
    dummy = album_id("Portishead", "Dummy")
    await db.execute(
        "UPDATE tracks SET album = $1 WHERE album_id = $2", dummy, album_id("Queen", "Greatest Hits")
    )
    status, body = await get(client, "/api/mix", kind="album", seed=dummy, n="5")
    assert status == 200 and body["resolved"] is None
    assert not {i["album_id"] for i in body["items"]} & {dummy}


async def test_ambiguous_album_name_lists_the_candidates(client: TestClient, lib: list[FakeTrack]) -> None:
    status, body = await get(client, "/api/mix", kind="album", seed="greatest hits")
    assert status == 409
    assert body["error"] == "'greatest hits' matches 2 albums: give one's album_id as the seed"
    assert body["detail"]["candidates"] == [
        {
            "album_id": album_id("Queen", "Greatest Hits"),
            "album": "Greatest Hits",
            "artist": "Queen",
            "tracks": 5,
            "analyzed": 5,
        },
        {
            "album_id": album_id("ABBA", "Greatest Hits"),
            "album": "Greatest Hits",
            "artist": "ABBA",
            "tracks": 4,
            "analyzed": 4,
        },
    ]
    # naming the artist too makes it unambiguous
    for seed in ("ABBA Greatest Hits", "greatest hits abba", "Abba Greatest Hts"):
        status, body = await get(client, "/api/mix", kind="album", seed=seed, n="5")
        assert status == 200 and body["resolved"]["album_id"] == album_id("ABBA", "Greatest Hits"), seed
    # part of a name: used when it is part of one album's name only
    status, body = await get(client, "/api/mix", kind="album", seed="abbey", n="5")
    assert status == 200 and body["resolved"]["album"] == "Abbey Road"
    status, body = await get(client, "/api/mix", kind="album", seed="bjork")  # both of Björk's albums
    assert status == 409 and [c["album"] for c in body["detail"]["candidates"]] == ["Homogenic", "Post"]


async def test_unknown_album_name_suggests_the_nearest(client: TestClient, lib: list[FakeTrack]) -> None:
    status, body = await get(client, "/api/mix", kind="album", seed="Mezzanine Live")
    assert status == 404
    assert body["error"] == "no album has this id or a name close to it"
    assert body["detail"]["seed"] == "Mezzanine Live"
    assert [s["album"] for s in body["detail"]["suggestions"]][:1] == ["Mezzanine"]
    # a known album with nothing analysed says so
    status, body = await get(client, "/api/mix", kind="album", seed="Agaetis Byrjun")
    assert status == 404 and body["error"] == "no analysed track for this album"
    status, body = await get(client, "/api/mix", kind="album", seed=album_id("Sigur Rós", "Ágætis byrjun"))
    assert status == 404 and body["error"] == "no analysed track for this album"


async def test_artist_mix_by_name(client: TestClient, lib: list[FakeTrack]) -> None:
    for seed, name in (
        ("The Beatles", "The Beatles"),
        ("beatles", "The Beatles"),
        ("Beatels", "The Beatles"),
        ("bjork", "Björk"),
        ("Radiohed", "Radiohead"),
    ):
        status, body = await get(client, "/api/mix", kind="artist", seed=seed, n="10")
        assert status == 200, (seed, body)
        assert len(body["items"]) == 10
        if seed == name:
            assert body["resolved"] is None  # the exact name: used as it is
        else:
            assert body["resolved"]["artist"] == name, (seed, body["resolved"])
    status, body = await get(client, "/api/mix", kind="artist", seed="Nobody Special")
    assert status == 404 and body["error"] == "no artist has this name or a name close to it"
    assert body["detail"]["seed"] == "Nobody Special" and isinstance(body["detail"]["suggestions"], list)
    status, body = await get(client, "/api/mix", kind="artist", seed="Sigur Ros")
    assert status == 404 and body["error"] == "no analysed track for this artist"


async def test_ambiguous_artist_name(client: TestClient, db: asyncpg.Pool, lib: list[FakeTrack]) -> None:
    # two spellings that fold to the same name
    vectors, _ = make_embeddings(4, seed=9)
    await insert_library(
        db,
        [FakeTrack(f"b2-{k}", f"Other {k}", "Bjork", "Debut", "debut", "Pop", k + 1, 0) for k in range(4)],
        vectors,
    )
    status, body = await get(client, "/api/mix", kind="artist", seed="Bjørk")
    assert status == 409, body
    assert body["error"] == "'Bjørk' matches 2 artists: give one of these names exactly"
    assert sorted(c["artist"] for c in body["detail"]["candidates"]) == ["Bjork", "Björk"]
    # each exact spelling still works
    for seed in ("Bjork", "Björk"):
        assert (await client.get("/api/mix", params={"kind": "artist", "seed": seed, "n": "5"})).status == 200


async def test_similar_artists_is_typo_tolerant(client: TestClient, lib: list[FakeTrack]) -> None:
    _, exact = await get(client, "/api/similar_artists", artist="The Beatles", n="5")
    status, body = await get(client, "/api/similar_artists", artist="Beatels", n="5")
    assert status == 200 and body == exact and "The Beatles" not in [b["artist"] for b in body]
    status, body = await get(client, "/api/similar_artists", artist="Nobody Special")
    assert status == 404 and body["error"] == "no artist has this name or a name close to it"
    assert "suggestions" in body["detail"]


@pytest.mark.parametrize("kind", ["song", "genre", "playlist"])
async def test_other_kinds_take_no_names(client: TestClient, lib: list[FakeTrack], kind: str) -> None:
    status, body = await get(client, "/api/mix", kind=kind, seed="Abbey Road")
    assert status == 404 and "resolved" not in body
