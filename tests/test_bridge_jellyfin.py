"""The Jellyfin bridge in front of the fake Jellyfin (every request and response it sees is
checked against Jellyfin 12.0's OpenAPI document), called by a real client library
(jellyfin-apiclient-python) and by raw HTTP with every credential form clients send.

The library is synced from the fake through the Jellyfin provider (so our ids are the
fake's), then given clustered embeddings (tests/library_factory.py); one track stays
unanalysed.  Expected mixes come from the mix service on the same database: the bridge must
return exactly those ids, in that order, as the fake's own DTOs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import numpy as np
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from audio_factory import make_track
from fakes.jellyfin import FakeJellyfin, FakeTrack
from library_factory import make_embeddings

from sidecar.app import create_app
from sidecar.bridge import jellyfin as bridge_module
from sidecar.bridge.jellyfin_plugin_api import PluginApi
from sidecar.bridge.subsonic_format import SIDECAR_VERSION
from sidecar.config import Settings
from sidecar.db.tracks import upsert_tracks
from sidecar.mix.engine import Candidate, total_distance
from sidecar.providers.jellyfin import JellyfinProvider
from sidecar.services import Endpoints
from sidecar.similarity.service import MixKind, MixService

GENRES = ["Rock", "Jazz", "Electronic", "Folk"]
N_TRACKS = 48
CAMEL = 'application/json; profile="CamelCase"'


def mediabrowser(token: str) -> str:
    return f'MediaBrowser Client="pytest", Device="bridge-test", DeviceId="dev-1", Version="1.0", Token="{token}"'


#: every credential form clients send: (headers, query) for a token
AUTH_FORMS: dict[str, Callable[[str], tuple[dict[str, str], dict[str, str]]]] = {
    "Authorization": lambda t: ({"Authorization": mediabrowser(t)}, {}),
    "X-Emby-Authorization": lambda t: ({"X-Emby-Authorization": mediabrowser(t)}, {}),
    "X-Emby-Token": lambda t: ({"X-Emby-Token": t}, {}),
    "X-MediaBrowser-Token": lambda t: ({"X-MediaBrowser-Token": t}, {}),
    "api_key": lambda t: ({}, {"api_key": t}),
    "ApiKey": lambda t: ({}, {"ApiKey": t}),
}


@dataclass
class Env:
    fake: FakeJellyfin
    bridge_url: str  # where clients point (no base path)
    http: aiohttp.ClientSession
    db: asyncpg.Pool
    settings: Settings
    tracks: list[FakeTrack]
    pending: FakeTrack  # synced, never analysed
    streamed: FakeTrack  # the one with a real audio file
    bridge: bridge_module.JellyfinBridge

    @property
    def service(self) -> MixService:
        return MixService(self.db, self.settings)

    def auth(
        self, form: str = "Authorization", token: str | None = None
    ) -> tuple[dict[str, str], dict[str, str]]:
        return AUTH_FORMS[form](token or self.fake.token)

    async def get(
        self,
        path: str,
        params: dict[str, str] | None = None,
        *,
        form: str = "Authorization",
        token: str | None = None,
        headers: dict[str, str] | None = None,
        direct: bool = False,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        """GET through the bridge (or straight to the fake): (status, JSON or bytes, response)."""
        auth_headers, auth_query = self.auth(form, token)
        base = self.fake.base_url if direct else self.bridge_url
        async with self.http.get(
            base + path, params={**(params or {}), **auth_query}, headers={**auth_headers, **(headers or {})}
        ) as resp:
            raw = await resp.read()
            body = json.loads(raw) if raw and "json" in resp.headers.get("Content-Type", "") else raw
            return resp.status, body, resp

    def track(self, name: str) -> FakeTrack:
        return next(t for t in self.tracks if t.name == name)


def build_library(media: Path) -> tuple[list[FakeTrack], np.ndarray]:
    """48 tracks in 4 styles (= genres), 2 artists per style, 1 album per artist; one real file."""
    vectors, styles = make_embeddings(N_TRACKS, styles=len(GENRES), seed=11)
    tracks, counters = [], {}
    for i in range(N_TRACKS):
        s = int(styles[i])
        a = i % 2
        k = counters[(s, a)] = counters.get((s, a), 0) + 1
        artist, album = f"Artist {s}{'AB'[a]}", f"Album {s}{'AB'[a]}"
        path = media / f"{i:02d}.flac"
        tracks.append(
            FakeTrack.build(
                f"Song {i:02d}",
                artist,
                album,
                path,
                genres=[GENRES[s]],
                year=2000 + s,
                index_number=k,
                duration_s=2.0,
                date_created=datetime(2024, 1, 1 + i % 28, tzinfo=UTC),
            )
        )
    make_track(tracks[0].path, seconds=2.0, title=tracks[0].name, artist=tracks[0].artist, seed=1)
    return tracks, vectors


async def sync_and_analyse(
    db: asyncpg.Pool, fake: FakeJellyfin, tracks: list[FakeTrack], vectors: np.ndarray, pending: FakeTrack
) -> None:
    """Our library as the sidecar builds it: synced through the Jellyfin provider, then analysed."""
    provider = JellyfinProvider(fake.base_url, fake.user_id, fake.token)
    try:
        for album in await provider.list_albums():
            await upsert_tracks(db, "jellyfin", await provider.album_tracks(album.id))
    finally:
        await provider.close()
    analysed = [(t.id, vectors[i]) for i, t in enumerate(tracks) if t is not pending]
    await db.executemany(
        "INSERT INTO embeddings (item_id, embedding, space, model_version)"
        " VALUES ($1, $2, $2 || array_fill(0::real, ARRAY[204])::vector, 'test')",
        analysed,
    )
    await db.execute(
        "UPDATE tracks SET analysis_status = 'analyzed' WHERE item_id = ANY($1::text[])",
        [i for i, _ in analysed],
    )
    assert await db.fetchval("SELECT count(*) FROM tracks") == N_TRACKS
    fake.clear_log()


@pytest_asyncio.fixture
async def make_env(
    db: asyncpg.Pool, endpoints: Endpoints, make_settings: Any, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Env]]]:
    tracks, vectors = build_library(tmp_path / "media")
    stack = AsyncExitStack()
    fakes: list[FakeJellyfin] = []

    async def build(*, legacy_auth: bool = False, base_path: str = "") -> Env:
        fake = FakeJellyfin(tracks, legacy_auth=legacy_auth, base_path=base_path)
        await fake.start()
        stack.push_async_callback(fake.stop)
        fakes.append(fake)
        pending = tracks[5]
        if await db.fetchval("SELECT count(*) FROM tracks") == 0:
            await sync_and_analyse(db, fake, tracks, vectors, pending)
        settings = make_settings(
            {
                "MEDIASERVER_TYPE": "jellyfin",
                "JELLYFIN_URL": fake.base_url,
                "JELLYFIN_USER_ID": fake.user_id,
                "JELLYFIN_TOKEN": fake.token,
                "JELLYFIN_BRIDGE_PORT": "0",
                "BRIDGE_AUTH_CACHE_SECONDS": "60",
            },
            ai_chat_db_user_name="ai_user_bridge_jf",
        )
        main = TestServer(create_app(settings, endpoints))
        await main.start_server()
        stack.push_async_callback(main.close)
        bridge = TestServer(bridge_module.create_app(main.app))
        await bridge.start_server()
        stack.push_async_callback(bridge.close)
        http = aiohttp.ClientSession()
        stack.push_async_callback(http.close)
        return Env(
            fake,
            str(bridge.make_url("")).rstrip("/"),
            http,
            db,
            settings,
            tracks,
            pending,
            tracks[0],
            bridge.app[bridge_module.BRIDGE],
        )

    yield build
    await stack.aclose()
    for fake in fakes:
        fake.assert_no_violations()


def ids_of(body: dict[str, Any], camel: bool = False) -> list[str]:
    return [item["id" if camel else "Id"] for item in body["items" if camel else "Items"]]


def contract_errors(env: Env, template: str, body: Any, camel: bool = False) -> list[str]:
    """The bridge's answer checked against the declared 200 body of the route it stands in for."""
    return env.fake.contract.check_json_response(
        env.fake.contract.operation("GET", template), 200, body, camel
    )


# --------------------------------------------------------------------------- sonic answers


async def test_song_mix_with_every_auth_form(make_env: Callable[..., Awaitable[Env]]) -> None:
    env = await make_env(legacy_auth=True)  # a server that still accepts the legacy forms
    seed = env.track("Song 07")
    expected = [
        c.item_id for c in (await env.service.song_mix(await env.service.song_seed(seed.id), 12)).tracks
    ]
    assert expected[0] == seed.id and len(expected) == 12
    _, native, _ = await env.get(f"/Songs/{seed.id}/InstantMix", {"limit": "12"}, direct=True)
    assert ids_of(native) != expected  # Jellyfin's own (genre-random) mix is something else

    for form in AUTH_FORMS:
        env.fake.clear_log()
        status, body, resp = await env.get(
            f"/Songs/{seed.id}/InstantMix", {"limit": "12", "userId": env.fake.user_id}, form=form
        )
        assert status == 200, (form, body)
        assert ids_of(body) == expected, form
        assert body["TotalRecordCount"] == 12 and body["StartIndex"] == 0
        assert contract_errors(env, "/Songs/{itemId}/InstantMix", body) == []
        assert "mix;dur=" in resp.headers["Server-Timing"]
        # the DTOs came from Jellyfin, fetched with the caller's own credentials, unchanged
        (items_call,) = env.fake.requests_to("/Items")
        assert items_call.auth == form
        assert items_call.param("ids") == ",".join(expected)
        assert items_call.param("userId") == env.fake.user_id
        if form in ("api_key", "ApiKey"):
            assert form in items_call.query
        assert not env.fake.requests_to(r"/Songs/.*")  # Jellyfin's own mix was not asked for


async def test_every_mix_route(make_env: Callable[..., Awaitable[Env]]) -> None:
    env = await make_env()
    svc, fake = env.service, env.fake
    seed = env.track("Song 10")
    album_id, artist, genre = seed.album_id, seed.artist, seed.genres[0]
    song = [c.item_id for c in (await svc.song_mix(await svc.song_seed(seed.id), 15)).tracks]
    album = [c.item_id for c in (await svc.mix(MixKind.ALBUM, album_id, 15)).tracks]
    by_artist = [c.item_id for c in (await svc.mix(MixKind.ARTIST, artist, 15)).tracks]
    by_genre = [c.item_id for c in (await svc.mix(MixKind.GENRE, genre, 15)).tracks]
    similar = [
        c.item_id for c in await svc.similar(await svc.song_seed(seed.id), 6, eliminate_duplicates=True)
    ]

    # a Jellyfin playlist (made through the bridge: a POST body passed through)
    members = [env.track(f"Song {i:02d}").id for i in (1, 2, 3, 5)]  # Song 05 is not analysed
    headers, _ = env.auth()
    async with env.http.post(
        env.bridge_url + "/Playlists",
        headers=headers,
        json={"Name": "Road trip", "Ids": members, "UserId": fake.user_id, "MediaType": "Audio"},
    ) as resp:
        assert resp.status == 200
        playlist_id = (await resp.json())["Id"]
    assert fake.playlists[playlist_id].item_ids == members
    (posted,) = fake.requests_to("/Playlists", "POST")
    assert (
        posted.headers["Content-Length"] == str(len(posted.body))
        and "Transfer-Encoding" not in posted.headers
    )
    seeds = (
        await svc.seeds_for(MixKind.SONG, members[0])
        + await svc.seeds_for(MixKind.SONG, members[1])
        + await svc.seeds_for(MixKind.SONG, members[2])
    )
    playlist = [c.item_id for c in (await svc.multi_mix(seeds, 15)).tracks]

    cases = [
        ("/Items/{}/InstantMix", seed.id, song, "/Items/{itemId}/InstantMix"),
        ("/songs/{}/instantmix", seed.id, song, "/Songs/{itemId}/InstantMix"),  # case-insensitive
        ("/Albums/{}/InstantMix", album_id, album, "/Albums/{itemId}/InstantMix"),
        ("/Items/{}/InstantMix", album_id, album, "/Items/{itemId}/InstantMix"),
        ("/Artists/{}/InstantMix", fake.artist_id(artist), by_artist, "/Artists/{itemId}/InstantMix"),
        ("/Items/{}/InstantMix", fake.artist_id(artist), by_artist, "/Items/{itemId}/InstantMix"),
        ("/MusicGenres/{}/InstantMix", genre, by_genre, "/MusicGenres/{name}/InstantMix"),
        ("/Items/{}/InstantMix", fake.genre_id(genre), by_genre, "/Items/{itemId}/InstantMix"),
        ("/Playlists/{}/InstantMix", playlist_id, playlist, "/Playlists/{itemId}/InstantMix"),
        ("/Items/{}/InstantMix", playlist_id, playlist, "/Items/{itemId}/InstantMix"),
        ("/Items/{}/Similar", seed.id, similar, "/Items/{itemId}/Similar"),
        ("/Albums/{}/Similar", seed.id, similar, "/Albums/{itemId}/Similar"),
        ("/Artists/{}/Similar", seed.id, similar, "/Artists/{itemId}/Similar"),
    ]
    for template, ident, expected, contract_path in cases:
        path = template.format(ident)
        limit = "6" if "Similar" in template else "15"
        status, body, _ = await env.get(path, {"limit": limit})
        assert status == 200, (path, body)
        assert ids_of(body) == expected, path
        assert contract_errors(env, contract_path, body) == [], path
    # the query-id forms (gone from Jellyfin 12's API, still sent by older clients)
    for path, ident, expected in [
        ("/Artists/InstantMix", fake.artist_id(artist), by_artist),
        ("/MusicGenres/InstantMix", fake.genre_id(genre), by_genre),
    ]:
        status, body, _ = await env.get(path, {"id": ident, "limit": "15"})
        assert status == 200 and ids_of(body) == expected, path
    # no limit: up to Jellyfin's 200 (the whole library here, minus what the rules leave out)
    status, body, _ = await env.get(f"/Items/{seed.id}/InstantMix")
    assert status == 200 and len(body["Items"]) > 15 and body["Items"][0]["Id"] == seed.id
    assert not fake.requests_to(r"/.*/(InstantMix|Similar)")  # never Jellyfin's own


async def test_presentation_parameters_and_camel_case(make_env: Callable[..., Awaitable[Env]]) -> None:
    env = await make_env()
    seed = env.track("Song 20")
    params = {
        "limit": "5",
        "fields": "Genres,DateCreated",
        "enableUserData": "true",
        "enableImages": "false",
        "imageTypeLimit": "1",
        "enableImageTypes": "Primary",
        "userId": env.fake.user_id,
    }
    status, body, _ = await env.get(f"/Items/{seed.id}/InstantMix", params)
    assert status == 200 and ids_of(body)[0] == seed.id
    first = body["Items"][0]
    assert (
        first["Genres"] == seed.genres and "DateCreated" in first and first["UserData"]["ItemId"] == seed.id
    )
    (call,) = env.fake.requests_to("/Items")
    for key, value in params.items():
        if key != "limit":
            assert call.param(key) == value, key
    assert call.param("limit") is None

    status, camel, resp = await env.get(f"/Items/{seed.id}/InstantMix", params, headers={"Accept": CAMEL})
    assert status == 200 and set(camel) == {"items", "totalRecordCount", "startIndex"}
    assert ids_of(camel, camel=True) == ids_of(body)
    assert camel["items"][0]["genres"] == seed.genres and "serverId" in camel["items"][0]
    assert contract_errors(env, "/Items/{itemId}/InstantMix", camel, camel=True) == []
    assert resp.headers["Content-Type"].startswith("application/json")


async def test_real_client_library(make_env: Callable[..., Awaitable[Env]]) -> None:
    from jellyfin_apiclient_python import JellyfinClient
    from jellyfin_apiclient_python.connection_manager import CONNECTION_STATE

    env = await make_env()
    seed = env.track("Song 30")
    mix = [c.item_id for c in (await env.service.song_mix(await env.service.song_seed(seed.id), 25)).tracks]
    similar = [c.item_id for c in await env.service.similar(await env.service.song_seed(seed.id), 8, True)]
    album = [c.item_id for c in (await env.service.mix(MixKind.ALBUM, seed.album_id, 10)).tracks]

    def use_client() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
        client = JellyfinClient()
        client.config.app("AudioMuse bridge test", "1.0", "pytest", "pytest-device-1")
        client.config.data["auth.ssl"] = False
        # a saved session, as clients restore it: /system/info/public, then /system/info with the token
        state = client.authenticate(
            {
                "Servers": [
                    {"address": env.bridge_url, "AccessToken": env.fake.token, "UserId": env.fake.user_id}
                ]
            },
            discover=False,
        )
        assert state["State"] == CONNECTION_STATE.SignedIn, state
        assert state["Servers"][0]["Id"] == env.fake.server_id
        client.start()
        try:
            return (
                client.jellyfin.get_instant_mix(seed.id, limit=25, fields=""),
                # (not the library's default fields: music_info() names Writer, OfficialRating and
                # Metascore, which Jellyfin 12's ItemFields no longer has; the fake refuses them)
                client.jellyfin.get_instant_mix(seed.id, limit=25, fields="Genres,DateCreated,MediaStreams"),
                client.jellyfin.get_similar(seed.id, limit=8),
                client.jellyfin._get(
                    f"Albums/{seed.album_id}/InstantMix", {"UserId": "{UserId}", "Limit": 10}
                ),
            )
        finally:
            client.stop()

    lean, rich, sim, by_album = await asyncio.to_thread(use_client)
    assert ids_of(lean) == mix and ids_of(rich) == mix and lean["Items"][0]["Id"] == seed.id
    assert "Genres" in rich["Items"][0] and "Genres" not in lean["Items"][0]
    assert ids_of(sim) == similar
    assert ids_of(by_album) == album
    assert all(r.auth == "Authorization" for r in env.fake.requests_to("/Items"))


# --------------------------------------------------------------------------- Jellyfin's own answers


async def test_falls_back_to_jellyfins_answer(make_env: Callable[..., Awaitable[Env]]) -> None:
    env = await make_env()
    fake = env.fake

    async def same_as_native(path: str, params: dict[str, str]) -> tuple[int, Any]:
        status, body, _ = await env.get(path, params)
        native_status, native, _ = await env.get(path, params, direct=True)
        assert status == native_status, path
        if isinstance(body, dict) and "traceId" in body:  # ProblemDetails: a fresh traceId each time
            body.pop("traceId"), native.pop("traceId")
        assert body == native, path
        return status, body

    # a track we have not analysed (yet): Jellyfin's own mix, seed first
    status, body = await same_as_native(f"/Items/{env.pending.id}/InstantMix", {"limit": "8"})
    assert status == 200 and ids_of(body)[0] == env.pending.id
    status, _ = await same_as_native(f"/Songs/{env.pending.id}/InstantMix", {"limit": "8"})
    assert status == 200
    # not audio: similar albums / artists are Jellyfin's
    seed = env.track("Song 12")
    status, body = await same_as_native(f"/Items/{seed.album_id}/Similar", {"limit": "3"})
    assert status == 200 and all(i["Type"] == "MusicAlbum" for i in body["Items"])
    for path, contract_path in (
        (f"/Albums/{seed.album_id}/Similar", "/Albums/{itemId}/Similar"),
        (f"/Artists/{fake.artist_id(seed.album_artist)}/Similar", "/Artists/{itemId}/Similar"),
    ):
        status, body = await same_as_native(path, {"limit": "3"})
        assert status == 200 and body["Items"] and contract_errors(env, contract_path, body) == [], path
        assert {i["Type"] for i in body["Items"]} == {"MusicAlbum" if "Albums" in path else "MusicArtist"}, (
            path
        )
    # a genre only a track added since the last sync carries (by id, as older clients send it)
    late = FakeTrack.build(
        "Late Song", "Late Artist", "Late Album", seed.path, genres=["Polka"], duration_s=2.0
    )
    fake.add_tracks([late])
    status, body = await same_as_native(
        "/MusicGenres/InstantMix", {"id": fake.genre_id("Polka"), "limit": "5"}
    )
    assert status == 200 and ids_of(body) == [late.id]
    assert contract_errors(env, "/MusicGenres/InstantMix", body) == []
    status, _ = await same_as_native("/MusicGenres/InstantMix", {"id": "0123456789abcdef0123456789abcdef"})
    assert status == 404
    # the wrong type for a typed route, an unknown id, a non-GUID: Jellyfin's 404 / 400-like answers
    status, _ = await same_as_native(f"/Albums/{seed.id}/InstantMix", {})
    assert status == 404
    status, _ = await same_as_native("/Items/0123456789abcdef0123456789abcdef/InstantMix", {})
    assert status == 404
    # anything failing in our path (here Jellyfin's /Items answers 503 once): Jellyfin's own mix
    fake.clear_log()
    fake.fail_next(1, 503, path=r"^/Items$")
    status, body, _ = await env.get(f"/Songs/{seed.id}/InstantMix", {"limit": "8"})
    _, native, _ = await env.get(f"/Songs/{seed.id}/InstantMix", {"limit": "8"}, direct=True)
    assert status == 200 and body == native
    assert [r.status for r in fake.requests_to("/Items")] == [503]
    # nothing analysed at all
    await env.db.execute("DELETE FROM embeddings")
    await same_as_native(f"/Items/{seed.id}/InstantMix", {"limit": "8"})


async def test_our_failure_falls_back_to_jellyfins_answer(
    make_env: Callable[..., Awaitable[Env]], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in the bridge's own path (here the mix engine) is logged and counted, and the
    client gets Jellyfin's own answer, never a 500 of ours (the failure policy of both bridges)."""
    env = await make_env()
    seed = env.track("Song 12")

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom in the mix engine")

    for name in ("song_mix", "mix", "multi_mix", "similar"):
        monkeypatch.setattr(MixService, name, broken)
    cases: list[tuple[str, dict[str, str]]] = [
        (f"/Songs/{seed.id}/InstantMix", {"limit": "8"}),
        (f"/Items/{seed.id}/InstantMix", {"limit": "8"}),
        (f"/Albums/{seed.album_id}/InstantMix", {"limit": "5"}),
        (f"/MusicGenres/{seed.genres[0]}/InstantMix", {"limit": "5"}),
        (f"/Items/{seed.id}/Similar", {"limit": "3"}),
    ]
    counts = env.bridge.fallbacks.counts
    failed = counts["failed"]
    for path, params in cases:
        caplog.clear()
        with caplog.at_level("WARNING", logger="sidecar.bridge.jellyfin"):
            status, body, resp = await env.get(path, params)
        native_status, native, _ = await env.get(path, params, direct=True)
        assert (status, body) == (native_status, native) and status == 200, path
        assert "Server-Timing" not in resp.headers, path
        assert any(
            r.name == "sidecar.bridge.jellyfin"
            and r.levelname == "WARNING"
            and r.exc_info
            and "boom in the mix engine" in str(r.exc_info[1])
            and path in r.getMessage()
            for r in caplog.records
        ), path
    assert counts["failed"] == failed + len(cases)

    # the database unreachable: a warning without a traceback (counted apart), Jellyfin answers
    async def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("database down")

    monkeypatch.setattr(MixService, "song_mix", down)
    unavailable = counts["unavailable"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="sidecar.bridge.jellyfin"):
        status, body, _ = await env.get(f"/Songs/{seed.id}/InstantMix", {"limit": "8"})
    assert (status, body) == (
        200,
        (await env.get(f"/Songs/{seed.id}/InstantMix", {"limit": "8"}, direct=True))[1],
    )
    (record,) = [r for r in caplog.records if "database down" in r.getMessage()]
    assert record.levelname == "WARNING" and not record.exc_info
    assert counts["unavailable"] == unavailable + 1 and counts["failed"] == failed + len(cases)


async def test_refused_credentials_get_jellyfins_401(make_env: Callable[..., Awaitable[Env]]) -> None:
    env = await make_env()  # Jellyfin 12 defaults: legacy credential forms are off
    seed = env.track("Song 15")
    path = f"/Items/{seed.id}/InstantMix"
    for form, token in [
        ("Authorization", "0" * 32),
        ("ApiKey", "nope"),
        ("X-Emby-Token", None),
        ("api_key", None),
    ]:
        status, body, _ = await env.get(path, {"limit": "5"}, form=form, token=token)
        native, native_body, _ = await env.get(path, {"limit": "5"}, form=form, token=token, direct=True)
        assert status == native == 401 and body == native_body, form
    async with env.http.get(env.bridge_url + path) as resp:  # no credentials at all
        assert resp.status == 401
    # a refused token is remembered: the next call is forwarded at once, no mix computed, no /Items
    env.fake.clear_log()
    status, _, _ = await env.get(path, {"limit": "5"}, token="0" * 32)
    assert status == 401
    assert [r.operation for r in env.fake.requests] == ["GetInstantMixFromItem"]
    # ... while a good one still gets the sonic answer
    status, body, _ = await env.get(path, {"limit": "5"})
    assert status == 200 and ids_of(body)[0] == seed.id


# --------------------------------------------------------------------------- the AudioMuse-AI plugin's API

PLUGIN_INFO = {
    "Version": SIDECAR_VERSION,
    "AvailableEndpoints": [
        "GET /AudioMuseAI/find_path",
        "GET /AudioMuseAI/health",
        "GET /AudioMuseAI/similar_tracks",
    ],
}


def plugin_item(c: Candidate) -> dict[str, Any]:
    """The plugin's track shape (as AudioMuse-AI's /api/similar_tracks)."""
    return {
        "author": c.artist,
        "distance": round(float(c.distance), 6),
        "item_id": c.item_id,
        "title": c.title,
    }


def dashed(guid: str) -> str:
    return f"{guid[:8]}-{guid[8:12]}-{guid[12:16]}-{guid[16:20]}-{guid[20:]}".upper()


async def test_audiomuse_plugin_api(make_env: Callable[..., Awaitable[Env]]) -> None:
    env = await make_env(legacy_auth=True)
    svc, fake = env.service, env.fake
    seed = env.track("Song 09")

    for form in AUTH_FORMS:  # info: credentials checked by Jellyfin (GET /System/Info), every form
        fake.clear_log()
        status, body, resp = await env.get("/AudioMuseAI/info", form=form)
        assert status == 200 and body == PLUGIN_INFO, form
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        (check,) = fake.requests
        assert (check.operation, check.auth, check.status) == ("GetSystemInfo", form, 200)
    status, body, _ = await env.get("/audiomuseai/HEALTH/")  # case-insensitive, like Jellyfin's routes
    assert status == 200 and body["status"] == "ok" and body["analysed"] is True

    expected = await svc.similar(seed.id, 8, eliminate_duplicates=True)
    fake.clear_log()
    status, body, _ = await env.get(
        "/AudioMuseAI/similar_tracks", {"item_id": seed.id, "n": "8", "eliminate_duplicates": "true"}
    )
    assert status == 200 and len(body) == 8 and body == [plugin_item(c) for c in expected]
    assert all(set(item) == {"author", "distance", "item_id", "title"} for item in body)
    assert [d["distance"] for d in body] == sorted(d["distance"] for d in body)
    # one request to Jellyfin, with the caller's credentials: which of these ids it shows the caller
    (items_call,) = fake.requests
    assert items_call.path == "/Items" and items_call.auth == "Authorization"
    assert items_call.param("ids") == ",".join([seed.id, *(c.item_id for c in expected)])
    # the defaults (n=10, duplicates eliminated), a dashed GUID, names in any case; then duplicates kept
    status, body, _ = await env.get("/audiomuseai/Similar_Tracks", {"Item_Id": dashed(seed.id)})
    assert status == 200 and body == [plugin_item(c) for c in await svc.similar(seed.id, 10, True)]
    status, body, _ = await env.get(
        "/AudioMuseAI/similar_tracks", {"item_id": seed.id, "n": "6", "eliminate_duplicates": "False"}
    )
    assert status == 200 and body == [plugin_item(c) for c in await svc.similar(seed.id, 6, False)]
    status, body, _ = await env.get(
        "/AudioMuseAI/similar_tracks", {"title": seed.name, "artist": seed.artist, "n": "4"}
    )
    assert status == 200 and body == [plugin_item(c) for c in await svc.similar(seed.id, 4, True)]

    start, end = env.track("Song 02"), env.track("Song 41")
    path = (await svc.path(await svc.song_seed(start.id), await svc.song_seed(end.id), 6)).tracks
    status, body, _ = await env.get(
        "/AudioMuseAI/find_path", {"start_song_id": start.id, "end_song_id": end.id, "max_steps": "6"}
    )
    assert status == 200 and set(body) == {"path", "total_distance"}
    assert body["path"] == [plugin_item(c) for c in path] and len(path) == 6
    assert body["path"][0]["item_id"] == start.id and body["path"][-1]["item_id"] == end.id
    assert (
        body["total_distance"] == pytest.approx(total_distance(path), abs=1e-6) and body["total_distance"] > 0
    )
    status, body, _ = await env.get(
        "/AudioMuseAI/find_path", {"start_song_id": start.id, "end_song_id": end.id}
    )
    default = env.settings.path_default_length
    assert status == 200 and len(body["path"]) == len(
        (await svc.path(await svc.song_seed(start.id), await svc.song_seed(end.id), default)).tracks
    )
    assert not fake.requests_to(r"/AudioMuseAI/.*")  # never forwarded


async def test_audiomuse_plugin_api_needs_credentials_jellyfin_accepts(
    make_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await make_env()  # Jellyfin 12 defaults: legacy credential forms are off
    seed, other = env.track("Song 11"), env.track("Song 33")
    calls = [
        ("/AudioMuseAI/info", {}),
        ("/AudioMuseAI/health", {}),
        ("/AudioMuseAI/similar_tracks", {"item_id": seed.id}),
        ("/AudioMuseAI/find_path", {"start_song_id": seed.id, "end_song_id": other.id}),
        ("/AudioMuseAI/similar_tracks", {"n": "abc"}),  # a bad parameter too: 401 comes first
        (
            "/AudioMuseAI/find_path",
            {"start_song_id": "0123456789abcdef0123456789abcdef", "end_song_id": other.id},
        ),
    ]
    for path, params in calls:  # no credentials: 401 at once
        async with env.http.get(env.bridge_url + path, params=params) as resp:
            assert resp.status == 401 and await resp.read() == b"", path
    assert not env.fake.requests
    for form, token in [("Authorization", "0" * 32), ("ApiKey", "nope"), ("X-Emby-Token", None)]:
        native, native_body, _ = await env.get("/System/Info", form=form, token=token, direct=True)
        env.fake.clear_log()
        for path, params in calls:
            status, body, _ = await env.get(path, params, form=form, token=token)
            assert (status, body) == (native, native_body) == (401, b""), (form, path)
        # Jellyfin was asked once; the refusal is remembered for BRIDGE_AUTH_CACHE_SECONDS
        assert len(env.fake.requests) == 1 and env.fake.requests[0].status == 401, form
    status, body, _ = await env.get("/AudioMuseAI/info")  # a good token still gets the answer
    assert status == 200 and body == PLUGIN_INFO


async def test_audiomuse_plugin_api_errors(
    make_env: Callable[..., Awaitable[Env]], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = await make_env()
    svc, fake = env.service, env.fake
    seed, other = env.track("Song 14"), env.track("Song 30")
    unknown = "0123456789abcdef0123456789abcdef"
    bad: list[tuple[str, dict[str, str], str]] = [
        ("similar_tracks", {}, "item_id is required (or title and artist)"),
        ("similar_tracks", {"title": seed.name}, "item_id is required (or title and artist)"),
        ("similar_tracks", {"item_id": "nope"}, "item_id must be a Jellyfin item id"),
        ("similar_tracks", {"item_id": seed.id, "n": "0"}, "n must be between 1 and 500"),
        ("similar_tracks", {"item_id": seed.id, "n": "501"}, "n must be between 1 and 500"),
        ("similar_tracks", {"item_id": seed.id, "n": "abc"}, "n must be an integer"),
        (
            "similar_tracks",
            {"item_id": seed.id, "eliminate_duplicates": "maybe"},
            "eliminate_duplicates must be true or false",
        ),
        ("find_path", {"end_song_id": other.id}, "start_song_id is required"),
        ("find_path", {"start_song_id": seed.id}, "end_song_id is required"),
        (
            "find_path",
            {"start_song_id": seed.id, "end_song_id": "x"},
            "end_song_id must be a Jellyfin item id",
        ),
        (
            "find_path",
            {"start_song_id": seed.id, "end_song_id": dashed(seed.id)},
            "start_song_id and end_song_id are the same track",
        ),
        (
            "find_path",
            {"start_song_id": seed.id, "end_song_id": other.id, "max_steps": "1"},
            "max_steps must be between 2 and 200",
        ),
        (
            "find_path",
            {"start_song_id": seed.id, "end_song_id": other.id, "max_steps": "many"},
            "max_steps must be an integer",
        ),
    ]
    for endpoint, params, message in bad:
        fake.clear_log()
        status, body, resp = await env.get(f"/AudioMuseAI/{endpoint}", params)
        assert status == 400 and body["error"] == message, (endpoint, params, body)
        assert resp.headers["Content-Type"].startswith("application/json")
        assert [r.operation for r in fake.requests] == ["GetSystemInfo"]  # credentials checked first
    not_found: list[tuple[str, dict[str, str], str]] = [
        ("similar_tracks", {"item_id": unknown}, "unknown track"),
        ("similar_tracks", {"item_id": env.pending.id}, "track not analysed"),
        ("similar_tracks", {"title": "No Such Song", "artist": "Nobody"}, "no analysed track matches"),
        ("find_path", {"start_song_id": unknown, "end_song_id": seed.id}, "unknown track"),
        ("find_path", {"start_song_id": seed.id, "end_song_id": env.pending.id}, "track not analysed"),
    ]
    for endpoint, params, message in not_found:
        status, body, _ = await env.get(f"/AudioMuseAI/{endpoint}", params)
        assert status == 404 and body["error"].startswith(message), (endpoint, params, body)

    # a track Jellyfin no longer shows (removed since the last sync) is never shown
    expected = await svc.similar(seed.id, 5, True)
    gone = expected[1]
    fake.remove_track(gone.item_id)
    status, body, _ = await env.get("/AudioMuseAI/similar_tracks", {"item_id": seed.id, "n": "5"})
    assert status == 200 and body == [plugin_item(c) for c in expected if c is not gone]
    status, body, _ = await env.get("/AudioMuseAI/similar_tracks", {"item_id": gone.item_id})
    assert status == 404 and body == {"error": "unknown track", "detail": gone.item_id}
    status, body, _ = await env.get(
        "/AudioMuseAI/find_path", {"start_song_id": seed.id, "end_song_id": gone.item_id}
    )
    assert status == 404 and body == {"error": "unknown track", "detail": gone.item_id}

    # Jellyfin's own trouble is relayed: a 503 while it starts
    fake.fail_next(1, 503, path=r"^/System/Info$", retry_after=9)
    status, _, resp = await env.get("/AudioMuseAI/info")
    assert status == 503 and resp.headers["Retry-After"] == "9"
    # the database: health says so (503), the other routes answer 503 JSON
    from sidecar.similarity import store

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("database down")

    monkeypatch.setattr(store, "anything_analysed", down)
    monkeypatch.setattr(store, "seed_and_nearest", down)
    status, body, _ = await env.get("/AudioMuseAI/health")
    assert status == 503 and body["status"] == "error" and "database down" in body["detail"]
    status, body, _ = await env.get("/AudioMuseAI/similar_tracks", {"item_id": seed.id})
    assert status == 503 and body["error"] == "database unavailable"
    monkeypatch.undo()
    # nothing analysed at all
    await env.db.execute("DELETE FROM embeddings")
    status, body, _ = await env.get("/AudioMuseAI/similar_tracks", {"item_id": seed.id})
    assert status == 404 and body["error"] == "no track has been analysed yet"
    status, body, _ = await env.get("/AudioMuseAI/health")
    assert status == 200 and body["status"] == "ok" and body["analysed"] is False


# --------------------------------------------------------------------------- pass-through


async def test_streams_audio_with_range_and_other_requests_unchanged(
    make_env: Callable[..., Awaitable[Env]],
) -> None:
    env = await make_env()
    track = env.streamed
    data = track.path.read_bytes()
    headers, _ = env.auth()
    stream = f"/Audio/{track.id}/stream"
    async with env.http.get(
        env.bridge_url + stream, params={"static": "true"}, headers={**headers, "Range": "bytes=100-4195"}
    ) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 100-4195/{len(data)}"
        assert resp.headers["Content-Length"] == "4096"
        assert await resp.read() == data[100:4196]
    async with env.http.get(env.bridge_url + stream, params={"static": "true"}, headers=headers) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"] == "audio/flac"
        chunks = [chunk async for chunk in resp.content.iter_chunked(8192)]
        assert b"".join(chunks) == data
    async with env.http.head(env.bridge_url + stream, params={"static": "true"}, headers=headers) as resp:
        assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(data)
    async with env.http.get(env.bridge_url + f"/Items/{track.id}/Download", headers=headers) as resp:
        assert resp.status == 200 and await resp.read() == data
        assert resp.headers["Content-Disposition"].startswith("attachment")

    # query, headers (minus hop-by-hop) and method as sent
    env.fake.clear_log()
    async with env.http.get(
        env.bridge_url + "/Items",
        params={"ids": track.id, "Fields": "Genres", "ApiKey": "k"},
        headers={
            **headers,
            "X-Custom": "kept",
            "Connection": "keep-alive, X-Private",
            "X-Private": "dropped",
        },
    ) as resp:
        assert resp.status == 200 and (await resp.json())["Items"][0]["Genres"] == track.genres
    (seen,) = env.fake.requests
    assert seen.path == "/Items" and list(seen.query.items()) == [
        ("ids", track.id),
        ("Fields", "Genres"),
        ("ApiKey", "k"),
    ]
    assert seen.headers["X-Custom"] == "kept" and "X-Private" not in seen.headers
    assert seen.headers["Authorization"] == headers["Authorization"] and seen.headers["X-Forwarded-For"]
    # a HEAD, a DELETE and errors come back as Jellyfin sent them
    async with env.http.get(env.bridge_url + "/System/Ping") as resp:
        assert resp.status == 200 and await resp.json() == "Jellyfin Server"
    async with env.http.get(env.bridge_url + "/Items", params={"ids": track.id}) as resp:
        assert resp.status == 401
    env.fake.fail_next(1, 503, path=r"^/System/Info$", retry_after=7)
    async with env.http.get(env.bridge_url + "/System/Info", headers=headers) as resp:
        assert resp.status == 503 and resp.headers["Retry-After"] == "7"


async def test_websocket_passthrough(make_env: Callable[..., Awaitable[Env]]) -> None:
    env = await make_env()
    async with env.http.ws_connect(env.bridge_url + "/socket", params={"ApiKey": env.fake.token}) as ws:
        await ws.send_str('{"MessageType":"KeepAlive"}')
        assert (await ws.receive(timeout=5)).data == '{"MessageType":"KeepAlive"}'
        await ws.send_bytes(b"\x00\x01binary")
        assert (await ws.receive(timeout=5)).data == b"\x00\x01binary"
    assert env.fake.socket_messages == ['{"MessageType":"KeepAlive"}', b"\x00\x01binary"]
    headers, _ = env.auth()
    async with env.http.ws_connect(env.bridge_url + "/socket", headers=headers) as ws:
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == "hello"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await env.http.ws_connect(env.bridge_url + "/socket", params={"ApiKey": "wrong"})
    assert refused.value.status == 401


async def test_base_path(make_env: Callable[..., Awaitable[Env]]) -> None:
    env = await make_env(base_path="/jellyfin")
    assert env.settings.jellyfin_url.endswith("/jellyfin")
    seed = env.track("Song 03")
    for prefix in ("", "/jellyfin", "/JellyFin"):  # clients may or may not repeat the base path
        status, body, _ = await env.get(f"{prefix}/Items/{seed.id}/InstantMix", {"limit": "4"})
        assert status == 200 and ids_of(body)[0] == seed.id, prefix
        status, info, _ = await env.get(f"{prefix}/System/Info/Public")
        assert status == 200 and info["Id"] == env.fake.server_id
        status, info, _ = await env.get(f"{prefix}/AudioMuseAI/info")
        assert status == 200 and info == PLUGIN_INFO
    assert all(r.path.startswith("/jellyfin/") for r in env.fake.requests)
    status, body, _ = await env.get(f"/Items/{env.pending.id}/InstantMix", {"limit": "4"})  # fallback
    assert status == 200 and ids_of(body)[0] == env.pending.id


def test_route_matching() -> None:
    from multidict import MultiDict

    match = bridge_module.match_route
    q: MultiDict[str] = MultiDict()
    assert match("/ITEMS/abc/INSTANTMIX", q) == bridge_module.Route("mix", "items", "abc")
    assert match("/MusicGenres/Hip%20Hop/InstantMix/", q) == bridge_module.Route(
        "mix", "genre-name", "Hip Hop"
    )
    assert match("/Artists/InstantMix", MultiDict(ID="x")) == bridge_module.Route("mix", "artists", "x")
    assert match("/Artists/InstantMix", q) is None
    assert match("/Songs/abc/Similar", q) is None and match("/Items/abc/Similarity", q) is None
    assert match("/Shows/abc/Similar", q) is None and match("/Items/abc", q) is None
    assert (
        bridge_module.normalize_guid("{0123ABCD-0123-4567-89ab-0123456789AB}")
        == "0123abcd0123456789ab0123456789ab"
    )
    assert bridge_module.normalize_guid("nope") is None
    plugin = PluginApi.match
    assert (
        plugin("/AudioMuseAI/info") == "info" and plugin("/audiomuseai/Similar_Tracks/") == "similar_tracks"
    )
    assert plugin("/AudioMuseAI/find_path") == "find_path" and plugin("/AudioMuseAI/%68ealth") == "health"
    assert plugin("/AudioMuseAI/playlists") is None and plugin("/AudioMuseAI") is None
    assert plugin("/AudioMuseAI/info/x") is None and plugin("/Items/AudioMuseAI/info") is None
