"""The fake Jellyfin server (tests/fakes/jellyfin.py) against Jellyfin's 12.0 OpenAPI contract.

Every request below goes over real HTTP to the fake, which validates itself against
tests/contracts/jellyfin/jellyfin-openapi-12.0.0.subset.json; the ``jf`` fixture fails a test that
left a contract violation behind unless the test cleared it on purpose.
"""

from __future__ import annotations

import json
import math
import re
import struct
import subprocess
import sys
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from fakes.jellyfin import (
    CONTRACT_PATH,
    TICKS_PER_SECOND,
    FakeJellyfin,
    FakeTrack,
    JellyfinContract,
    camel_case,
    make_guid,
)

GUID_N = re.compile(r"^[0-9a-f]{32}$")
JELLYFIN_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$")
CONTRACT = JellyfinContract.load()  # parsed once for the module


# --------------------------------------------------------------------------- library fixture


def write_wav(path: Path, seconds: float, freq: float, rate: int = 8000) -> Path:
    """A tiny real mono 16-bit PCM WAV file (stdlib ``wave``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def utc(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


@pytest.fixture
def tracks(tmp_path: Path) -> dict[str, FakeTrack]:
    """Three albums: Blue (Alpha, Rock, oldest), Green (Beta, Jazz/Rock, newest), Red (Gamma, Electronic)."""

    def track(
        key: str,
        name: str,
        artist: str,
        album: str,
        idx: int,
        genres: list[str],
        created: datetime,
        year: int,
        seconds: float = 0.5,
        **kw: Any,
    ) -> tuple[str, FakeTrack]:
        path = write_wav(
            tmp_path / "music" / artist / album / f"{idx:02d} {name}.wav", seconds, 220.0 + 40 * idx
        )
        return key, FakeTrack.build(
            name,
            artist,
            album,
            path,
            year=year,
            genres=genres,
            date_created=created,
            duration_s=seconds,
            index_number=idx,
            **kw,
        )

    return dict(
        [
            track("a2", "Second", "Alpha", "Blue Album", 2, ["Rock"], utc(2024, 1, 1), 2001),
            track("a1", "First", "Alpha", "Blue Album", 1, ["Rock"], utc(2024, 1, 1), 2001),
            track("a3", "Third", "Alpha", "Blue Album", 3, ["Rock"], utc(2024, 1, 1), 2001),
            track("b1", "Smooth", "Beta", "Green Album", 1, ["Jazz"], utc(2024, 3, 1), 2010),
            track(
                "b2",
                "Crossover",
                "Beta",
                "Green Album",
                2,
                ["Jazz", "Rock"],
                utc(2024, 3, 1),
                2010,
                artists=["Beta", "Delta"],
            ),
            track(
                "c1", "Pulse", "Gamma", "Red Album", 1, ["Electronic"], utc(2024, 2, 1), 1999, disc_number=1
            ),
        ]
    )


@pytest.fixture
async def jf(tracks: dict[str, FakeTrack]) -> AsyncIterator[FakeJellyfin]:
    fake = FakeJellyfin(tracks.values(), contract=CONTRACT)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    fake.assert_no_violations()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield session


def auth(fake: FakeJellyfin) -> dict[str, str]:
    return {"Authorization": f'MediaBrowser Token="{fake.token}"'}


async def get_json(
    http: aiohttp.ClientSession,
    fake: FakeJellyfin,
    path: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> Any:
    async with http.get(
        fake.base_url + path, params=params or None, headers=auth(fake) if headers is None else headers
    ) as r:
        text = await r.text()
        assert r.status == status, text
        return json.loads(text) if text and r.content_type == "application/json" else text


def album_id(t: dict[str, FakeTrack], key: str) -> str:
    return t[key].album_id


# --------------------------------------------------------------------------- system + auth


async def test_public_system_info_and_ping_need_no_auth(
    jf: FakeJellyfin, http: aiohttp.ClientSession
) -> None:
    info = await get_json(http, jf, "/System/Info/Public", headers={})
    assert info["Version"] == "12.0.0"
    assert info["ProductName"] == "Jellyfin Server"
    assert info["ServerName"] == "Fake Jellyfin"
    assert GUID_N.match(info["Id"]) and info["Id"] == jf.server_id
    assert await get_json(http, jf, "/System/Ping", headers={}) == "Jellyfin Server"
    assert jf.requests[0].operation == "GetPublicSystemInfo" and jf.requests[0].auth is None


MODERN_FORMS = {
    "authorization-token-only": lambda tok: ({"Authorization": f'MediaBrowser Token="{tok}"'}, {}),
    "authorization-full": lambda tok: (
        {
            "Authorization": 'MediaBrowser Client="AudioMuse", Device="tests", '
            f'DeviceId="dev-1", Version="0.1.0", Token="{tok}"'
        },
        {},
    ),
    "authorization-unquoted": lambda tok: ({"Authorization": f"MediaBrowser Token={tok}"}, {}),
    "ApiKey-query": lambda tok: ({}, {"ApiKey": tok}),
    "apikey-query-lowercase": lambda tok: ({}, {"apikey": tok}),
}
LEGACY_FORMS = {
    "X-Emby-Token": lambda tok: ({"X-Emby-Token": tok}, {}),
    "X-MediaBrowser-Token": lambda tok: ({"X-MediaBrowser-Token": tok}, {}),
    "X-Emby-Authorization": lambda tok: (
        {"X-Emby-Authorization": f'MediaBrowser Client="c", Token="{tok}"'},
        {},
    ),
    "Emby-scheme": lambda tok: ({"Authorization": f'Emby Token="{tok}"'}, {}),
    "api_key-query": lambda tok: ({}, {"api_key": tok}),
}


@pytest.mark.parametrize("form", sorted(MODERN_FORMS))
async def test_modern_auth_forms_are_accepted(
    jf: FakeJellyfin, http: aiohttp.ClientSession, form: str
) -> None:
    headers, params = MODERN_FORMS[form](jf.token)
    info = await get_json(http, jf, "/System/Info", headers=headers, **params)
    assert info["Version"] == "12.0.0" and "HasPendingRestart" in info
    expected = "Authorization" if form.startswith("authorization") else "ApiKey"
    assert jf.requests[-1].auth == expected


@pytest.mark.parametrize("form", sorted(LEGACY_FORMS))
async def test_legacy_auth_forms_are_off_by_default_like_12_0(
    jf: FakeJellyfin, http: aiohttp.ClientSession, form: str
) -> None:
    headers, params = LEGACY_FORMS[form](jf.token)
    assert await get_json(http, jf, "/System/Info", headers=headers, status=401, **params) == ""


@pytest.mark.parametrize("form", sorted(LEGACY_FORMS))
async def test_legacy_auth_forms_work_when_enabled(
    tracks: dict[str, FakeTrack], http: aiohttp.ClientSession, form: str
) -> None:
    async with FakeJellyfin(tracks.values(), legacy_auth=True, contract=CONTRACT) as fake:
        headers, params = LEGACY_FORMS[form](fake.token)
        assert (await get_json(http, fake, "/System/Info", headers=headers, **params))["Id"] == fake.server_id
        fake.assert_no_violations()


@pytest.mark.parametrize(
    "headers,params",
    [
        ({}, {}),
        ({"Authorization": 'MediaBrowser Token="wrong"'}, {}),
        ({"Authorization": 'MediaBrowser Client="c", Device="d", DeviceId="i", Version="1"'}, {}),
        ({}, {"ApiKey": "wrong"}),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, {}),
    ],
    ids=["none", "wrong-token", "no-token-field", "wrong-ApiKey", "basic-auth"],
)
async def test_missing_or_wrong_token_is_401(
    jf: FakeJellyfin, http: aiohttp.ClientSession, headers: dict[str, str], params: dict[str, str]
) -> None:
    for path in ("/System/Info", "/Items"):
        async with http.get(jf.base_url + path, headers=headers, params=params) as r:
            assert r.status == 401
            assert await r.read() == b""


def endpoint_calls(t: dict[str, FakeTrack], fake: FakeJellyfin) -> list[tuple[str, str, dict[str, str], Any]]:
    """(method, path, query, json body) for every authenticated operation the fake serves."""
    track, album = t["b2"].id, t["b2"].album_id
    return [
        ("GET", "/System/Info", {}, None),
        ("GET", "/Items", {"IncludeItemTypes": "MusicAlbum", "Recursive": "true"}, None),
        ("GET", f"/Items/{track}", {}, None),
        ("GET", f"/Items/{track}/Download", {}, None),
        ("GET", f"/Items/{track}/InstantMix", {}, None),
        ("GET", f"/Songs/{track}/InstantMix", {}, None),
        ("GET", f"/Albums/{album}/InstantMix", {}, None),
        ("GET", f"/Artists/{fake.artist_id('Beta')}/InstantMix", {}, None),
        ("GET", "/MusicGenres/Jazz/InstantMix", {}, None),
        ("GET", f"/Items/{track}/Similar", {}, None),
        ("POST", "/Playlists", {}, {"Name": "P", "Ids": [track], "MediaType": "Audio"}),
    ]


@pytest.mark.parametrize("form", sorted(MODERN_FORMS) + [f"legacy:{f}" for f in sorted(LEGACY_FORMS)])
async def test_every_endpoint_with_each_auth_form(
    tracks: dict[str, FakeTrack], http: aiohttp.ClientSession, form: str
) -> None:
    legacy = form.startswith("legacy:")
    make = LEGACY_FORMS[form[7:]] if legacy else MODERN_FORMS[form]
    async with FakeJellyfin(tracks.values(), legacy_auth=legacy, contract=CONTRACT) as fake:
        headers, params = make(fake.token)
        calls = endpoint_calls(tracks, fake)
        for method, path, query, body in calls:
            async with http.request(
                method, fake.base_url + path, params={**query, **params}, json=body, headers=headers
            ) as r:
                assert r.status == 200, (path, await r.text())
                if path == "/Playlists":
                    playlist = (await r.json())["Id"]
            async with http.request(method, fake.base_url + path, params=query, json=body) as r:
                assert r.status == 401, path
        for method, path, query in [
            ("GET", f"/Playlists/{playlist}", {}),
            ("GET", f"/Playlists/{playlist}/Items", {}),
            ("GET", f"/Playlists/{playlist}/InstantMix", {}),
            ("POST", f"/Playlists/{playlist}/Items", {"ids": tracks["a1"].id}),
            ("DELETE", f"/Playlists/{playlist}/Items", {"entryIds": fake.playlists[playlist].entries[0][0]}),
            ("DELETE", f"/Items/{playlist}", {}),
        ]:
            async with http.request(method, fake.base_url + path, params=query) as r:
                assert r.status == 401, path
            async with http.request(
                method, fake.base_url + path, params={**query, **params}, headers=headers
            ) as r:
                assert r.status in (200, 204), (path, await r.text())
        assert not fake.playlists
        fake.assert_no_violations()


# --------------------------------------------------------------------------- /Items


async def test_albums_newest_first_with_paging(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    q = {
        "IncludeItemTypes": "MusicAlbum",
        "SortBy": "DateCreated",
        "SortOrder": "Descending",
        "Recursive": "true",
        "Fields": "DateCreated",
        "Limit": "2",
    }
    page1 = await get_json(http, jf, "/Items", StartIndex="0", **q)
    page2 = await get_json(http, jf, "/Items", StartIndex="2", **q)
    assert set(page1) == {"Items", "TotalRecordCount", "StartIndex"}
    assert (page1["TotalRecordCount"], page1["StartIndex"], page2["StartIndex"]) == (3, 0, 2)
    names = [a["Name"] for a in page1["Items"] + page2["Items"]]
    assert names == ["Green Album", "Red Album", "Blue Album"]
    green = page1["Items"][0]
    assert green["Id"] == album_id(tracks, "b1") and GUID_N.match(green["Id"])
    assert (green["Type"], green["IsFolder"], green["ChildCount"]) == ("MusicAlbum", True, 2)
    assert (green["AlbumArtist"], green["ProductionYear"]) == ("Beta", 2010)
    assert JELLYFIN_DATE.match(green["DateCreated"]) and green["DateCreated"].startswith(
        "2024-03-01T00:00:00"
    )
    assert "Path" not in green
    # without Fields=DateCreated Jellyfin leaves it out
    plain = await get_json(http, jf, "/Items", IncludeItemTypes="MusicAlbum", Recursive="true")
    assert all("DateCreated" not in a for a in plain["Items"]) and plain["TotalRecordCount"] == 3
    # Limit beyond the end
    tail = await get_json(http, jf, "/Items", **{**q, "StartIndex": "3"})
    assert tail == {"Items": [], "TotalRecordCount": 3, "StartIndex": 3}


async def test_without_recursive_items_returns_the_user_views(
    jf: FakeJellyfin, http: aiohttp.ClientSession
) -> None:
    views = await get_json(http, jf, "/Items", IncludeItemTypes="MusicAlbum")
    assert [(v["Type"], v["CollectionType"]) for v in views["Items"]] == [("CollectionFolder", "music")]


async def test_album_tracks_sorted_by_index_with_fields(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    result = await get_json(http, jf, "/Items", ParentId=album_id(tracks, "a1"), IncludeItemTypes="Audio")
    assert [t["IndexNumber"] for t in result["Items"]] == [1, 2, 3]
    assert [t["Id"] for t in result["Items"]] == [tracks[k].id for k in ("a1", "a2", "a3")]
    first = result["Items"][0]
    assert first == {
        "Name": "First",
        "ServerId": jf.server_id,
        "Id": tracks["a1"].id,
        "Container": "wav",
        "RunTimeTicks": int(0.5 * TICKS_PER_SECOND),
        "ProductionYear": 2001,
        "IndexNumber": 1,
        "IsFolder": False,
        "Type": "Audio",
        "MediaType": "Audio",
        "LocationType": "FileSystem",
        "Artists": ["Alpha"],
        "ArtistItems": [{"Name": "Alpha", "Id": jf.artist_id("Alpha")}],
        "Album": "Blue Album",
        "AlbumId": tracks["a1"].album_id,
        "AlbumArtist": "Alpha",
        "AlbumArtists": [{"Name": "Alpha", "Id": jf.artist_id("Alpha")}],
        "ImageTags": {},
        "BackdropImageTags": [],
    }
    full = await get_json(
        http,
        jf,
        "/Items",
        ParentId=album_id(tracks, "a1"),
        IncludeItemTypes="Audio",
        Fields="Path,Genres,DateCreated,MediaSources",
        Limit="1",
    )
    t = full["Items"][0]
    assert t["Path"] == str(tracks["a1"].path)
    assert t["Genres"] == ["Rock"] and t["GenreItems"][0]["Name"] == "Rock"
    assert datetime.fromisoformat(t["DateCreated"].replace("0Z", "+00:00")) == utc(2024, 1, 1)
    source = t["MediaSources"][0]
    assert (source["Path"], source["Container"], source["Size"]) == (
        str(tracks["a1"].path),
        "wav",
        tracks["a1"].path.stat().st_size,
    )
    assert full["TotalRecordCount"] == 3


async def test_ids_returns_items_of_any_type_in_request_order(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    ids = [tracks["c1"].id, album_id(tracks, "a1"), jf.artist_id("Delta"), make_guid("unknown")]
    result = await get_json(http, jf, "/Items", Ids=",".join(ids))
    assert [(i["Id"], i["Type"]) for i in result["Items"]] == [
        (tracks["c1"].id, "Audio"),
        (album_id(tracks, "a1"), "MusicAlbum"),
        (jf.artist_id("Delta"), "MusicArtist"),
    ]
    # repeated parameters and the dashed GUID form are accepted too, like ASP.NET
    dashed = "-".join(
        [
            tracks["c1"].id[:8],
            tracks["c1"].id[8:12],
            tracks["c1"].id[12:16],
            tracks["c1"].id[16:20],
            tracks["c1"].id[20:],
        ]
    )
    async with http.get(
        jf.base_url + "/Items", headers=auth(jf), params=[("ids", dashed.upper()), ("ids", tracks["b1"].id)]
    ) as r:
        assert [i["Name"] for i in (await r.json())["Items"]] == ["Pulse", "Smooth"]


async def test_filters_and_user_data(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    rock = await get_json(
        http, jf, "/Items", Recursive="true", IncludeItemTypes="Audio", Genres="Rock", SortBy="SortName"
    )
    assert [i["Name"] for i in rock["Items"]] == ["Crossover", "First", "Second", "Third"]
    delta = await get_json(
        http, jf, "/Items", Recursive="true", IncludeItemTypes="Audio", ArtistIds=jf.artist_id("Delta")
    )
    assert [i["Name"] for i in delta["Items"]] == ["Crossover"]
    assert delta["Items"][0]["Artists"] == ["Beta", "Delta"]
    with_data = await get_json(http, jf, "/Items", Ids=tracks["a1"].id, EnableUserData="true")
    user_data = with_data["Items"][0]["UserData"]
    assert user_data["Played"] is False and user_data["ItemId"] == tracks["a1"].id
    by_year = await get_json(
        http,
        jf,
        "/Items",
        Recursive="true",
        IncludeItemTypes="MusicAlbum",
        SortBy="ProductionYear,SortName",
        SortOrder="Ascending",
    )
    assert [a["ProductionYear"] for a in by_year["Items"]] == [1999, 2001, 2010]


async def test_case_insensitive_routes_parameters_and_enums(
    jf: FakeJellyfin, http: aiohttp.ClientSession
) -> None:
    result = await get_json(
        http,
        jf,
        "/items",
        includeitemtypes="musicalbum",
        RECURSIVE="TRUE",
        sortby="datecreated",
        sortorder="descending",
        fields="datecreated",
    )
    assert [a["Name"] for a in result["Items"]] == ["Green Album", "Red Album", "Blue Album"]
    assert "DateCreated" in result["Items"][0]


async def test_camel_case_profile(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    headers = {**auth(jf), "Accept": 'application/json; profile="CamelCase"'}
    result = await get_json(http, jf, "/Items", headers=headers, Ids=tracks["a1"].id, Fields="Path")
    assert set(result) == {"items", "totalRecordCount", "startIndex"}
    item = result["items"][0]
    assert {
        "id",
        "name",
        "runTimeTicks",
        "albumArtist",
        "albumArtists",
        "path",
        "serverId",
        "isFolder",
    } <= set(item)
    assert item["artistItems"] == [{"name": "Alpha", "id": jf.artist_id("Alpha")}]
    assert not any(k[0].isupper() for k in item)
    info = await get_json(
        http, jf, "/System/Info/Public", headers={"Accept": 'application/json; profile="CamelCase"'}
    )
    assert info["version"] == "12.0.0"
    assert [camel_case(n) for n in ("ServerId", "ETag", "IsHD", "ID", "Id")] == [
        "serverId",
        "eTag",
        "isHD",
        "id",
        "id",
    ]


async def test_single_item_carries_all_fields(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    item = await get_json(http, jf, f"/Items/{tracks['c1'].id}")
    assert (item["Path"], item["ParentIndexNumber"], item["Genres"]) == (
        str(tracks["c1"].path),
        1,
        ["Electronic"],
    )
    await get_json(http, jf, f"/Items/{make_guid('nope')}", status=404)


# --------------------------------------------------------------------------- media


async def test_download_returns_the_file(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    t = tracks["a1"]
    async with http.get(f"{jf.base_url}/Items/{t.id}/Download", headers=auth(jf)) as r:
        assert r.status == 200
        assert r.content_type == "audio/wav"
        assert r.headers["Content-Disposition"] == f'attachment; filename="{t.path.name}"'
        assert await r.read() == t.path.read_bytes()
    await get_json(http, jf, f"/Items/{make_guid('missing')}/Download", status=404)


async def test_stream_static_and_range_requests(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    t = tracks["b1"]
    data = t.path.read_bytes()
    url = f"{jf.base_url}/Audio/{t.id}/stream"
    async with http.get(url, params={"static": "true"}) as r:  # the contract declares no security here
        assert (r.status, r.content_type, r.headers["Accept-Ranges"]) == (200, "audio/wav", "bytes")
        assert await r.read() == data
    async with http.get(url, params={"static": "true"}, headers={**auth(jf), "Range": "bytes=10-19"}) as r:
        assert r.status == 206
        assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        assert await r.read() == data[10:20]
    async with http.get(url, params={"static": "true"}, headers={"Range": "bytes=-5"}) as r:
        assert (r.status, await r.read()) == (206, data[-5:])
    async with http.get(url, params={"static": "true"}, headers={"Range": f"bytes={len(data) + 10}-"}) as r:
        assert r.status == 416
    async with http.get(
        f"{jf.base_url}/Audio/{t.id}/stream.wav", params={"static": "true"}, headers={"Range": "bytes=0-3"}
    ) as r:
        assert (r.status, await r.read()) == (206, b"RIFF")
    async with http.get(f"{jf.base_url}/Audio/{t.id}/stream.wav") as r:  # own container: served as is
        assert await r.read() == data
    async with http.head(url, params={"static": "true"}) as r:
        assert (r.status, int(r.headers["Content-Length"])) == (200, len(data))
    # with static=true the transcoding parameters are ignored, as by Jellyfin
    async with http.get(url, params={"static": "true", "audioCodec": "mp3", "audioBitRate": "128000"}) as r:
        assert await r.read() == data
    # transcoding is outside the fake: refused loudly, not faked
    async with http.get(f"{jf.base_url}/Audio/{t.id}/stream.mp3") as r:
        assert r.status == 500
    assert [v.kind for v in jf.violations] == ["unsupported-by-fake"]
    jf.clear_violations()


# --------------------------------------------------------------------------- playlists


async def test_playlist_lifecycle(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    base, h = jf.base_url, auth(jf)
    body = {
        "Name": "Mix",
        "Ids": [tracks["a1"].id, tracks["b1"].id],
        "UserId": jf.user_id,
        "MediaType": "Audio",
    }
    async with http.post(f"{base}/Playlists", json=body, headers=h) as r:
        assert r.status == 200
        created = await r.json()
    assert set(created) == {"Id"} and GUID_N.match(created["Id"])
    pid = created["Id"]
    assert jf.requests[-1].json == body

    items = await get_json(http, jf, f"/Playlists/{pid}/Items")
    assert [i["Id"] for i in items["Items"]] == [tracks["a1"].id, tracks["b1"].id]
    assert all(GUID_N.match(i["PlaylistItemId"]) for i in items["Items"])
    assert (await get_json(http, jf, f"/Playlists/{pid}"))["ItemIds"] == [tracks["a1"].id, tracks["b1"].id]
    as_item = await get_json(http, jf, "/Items", Ids=pid)
    assert (as_item["Items"][0]["Type"], as_item["Items"][0]["ChildCount"]) == ("Playlist", 2)

    async with http.post(
        f"{base}/Playlists/{pid}/Items", params={"ids": f"{tracks['c1'].id},{tracks['a2'].id}"}, headers=h
    ) as r:
        assert r.status == 204
    entry = items["Items"][0]["PlaylistItemId"]
    async with http.delete(f"{base}/Playlists/{pid}/Items", params={"entryIds": entry}, headers=h) as r:
        assert r.status == 204
    assert jf.playlists[pid].item_ids == [tracks["b1"].id, tracks["c1"].id, tracks["a2"].id]
    paged = await get_json(http, jf, f"/Playlists/{pid}/Items", StartIndex="1", Limit="1")
    assert (paged["TotalRecordCount"], paged["StartIndex"], [i["Name"] for i in paged["Items"]]) == (
        3,
        1,
        ["Pulse"],
    )

    # replacement by editing: UpdatePlaylistDto.Ids replaces the entries
    async with http.post(f"{base}/Playlists/{pid}", json={"Ids": [tracks["a3"].id]}, headers=h) as r:
        assert r.status == 204
    assert jf.playlists[pid].item_ids == [tracks["a3"].id]

    # replacement by delete + recreate
    async with http.delete(f"{base}/Items/{pid}", headers=h) as r:
        assert r.status == 204
    await get_json(http, jf, f"/Playlists/{pid}/Items", status=404)
    async with http.post(f"{base}/Playlists", json={"name": "Mix", "ids": [tracks["a3"].id]}, headers=h) as r:
        assert r.status == 200  # member names are case-insensitive, like System.Text.Json
        assert jf.playlists[(await r.json())["Id"]].item_ids == [tracks["a3"].id]
    # library items cannot be deleted by the fake's user
    async with http.delete(f"{base}/Items/{tracks['a1'].id}", headers=h) as r:
        assert r.status == 401
    assert tracks["a1"].id in {t.id for t in jf.tracks}


async def test_playlist_body_is_checked_against_the_contract(
    jf: FakeJellyfin, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{jf.base_url}/Playlists", json={"Title": "x", "Ids": ["not-a-guid"]}, headers=auth(jf)
    ) as r:
        assert r.status == 500
        text = await r.text()
    assert "invalid-request-body" in text
    assert "'Name' is a required property" in text and "Title" in text and "not-a-guid" in text
    assert not jf.playlists
    jf.clear_violations()


# --------------------------------------------------------------------------- Jellyfin's own mixes


async def test_instant_mixes_are_same_genre_and_deterministic(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    rock = {tracks[k].id for k in ("a1", "a2", "a3", "b2")}
    song = await get_json(http, jf, f"/Songs/{tracks['a1'].id}/InstantMix")
    ids = [i["Id"] for i in song["Items"]]
    assert ids[0] == tracks["a1"].id and set(ids) == rock and song["TotalRecordCount"] == 4
    assert ids == [
        i["Id"] for i in (await get_json(http, jf, f"/Items/{tracks['a1'].id}/InstantMix"))["Items"]
    ]
    limited = await get_json(http, jf, f"/Songs/{tracks['a1'].id}/InstantMix", Limit="2")
    assert [i["Id"] for i in limited["Items"]] == ids[:2] and limited["TotalRecordCount"] == 4

    green = await get_json(http, jf, f"/Albums/{tracks['b1'].album_id}/InstantMix")
    assert {i["Id"] for i in green["Items"]} == rock | {tracks["b1"].id}  # Jazz + Rock
    gamma = await get_json(http, jf, f"/Artists/{jf.artist_id('Gamma')}/InstantMix")
    assert [i["Id"] for i in gamma["Items"]] == [tracks["c1"].id]
    jazz = await get_json(http, jf, "/MusicGenres/jazz/InstantMix")
    assert {i["Id"] for i in jazz["Items"]} == {tracks["b1"].id, tracks["b2"].id}
    spaced = await get_json(http, jf, "/MusicGenres/" + quote("No Such Genre") + "/InstantMix")
    assert spaced == {"Items": [], "TotalRecordCount": 0, "StartIndex": 0}

    async with http.post(
        f"{jf.base_url}/Playlists", json={"Name": "P", "Ids": [tracks["c1"].id]}, headers=auth(jf)
    ) as r:
        pid = (await r.json())["Id"]
    from_playlist = await get_json(http, jf, f"/Playlists/{pid}/InstantMix")
    assert [i["Id"] for i in from_playlist["Items"]] == [tracks["c1"].id]
    # the typed routes refuse the wrong kind of item
    await get_json(http, jf, f"/Albums/{tracks['a1'].id}/InstantMix", status=404)


async def test_similar_items(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    similar = await get_json(http, jf, f"/Items/{tracks['b2'].id}/Similar")
    names = [i["Name"] for i in similar["Items"]]
    assert "Crossover" not in names and "Pulse" not in names
    assert set(names) == {"Smooth", "First", "Second", "Third"}
    no_alpha = await get_json(
        http,
        jf,
        f"/Items/{tracks['b2'].id}/Similar",
        ExcludeArtistIds=jf.artist_id("Alpha"),
        Limit="5",
        Fields="Genres",
    )
    assert [i["Name"] for i in no_alpha["Items"]] == ["Smooth"]
    albums = await get_json(http, jf, f"/Items/{tracks['a1'].album_id}/Similar")
    assert [a["Name"] for a in albums["Items"]] == ["Green Album"]


# --------------------------------------------------------------------------- websocket


async def test_socket_echoes_and_needs_auth(jf: FakeJellyfin, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(f"{jf.base_url}/socket", params={"ApiKey": jf.token, "deviceId": "d"}) as ws:
        await ws.send_str('{"MessageType":"KeepAlive"}')
        assert await ws.receive_str() == '{"MessageType":"KeepAlive"}'
        await ws.send_bytes(b"\x00\x01")
        assert await ws.receive_bytes() == b"\x00\x01"
    assert jf.socket_messages == ['{"MessageType":"KeepAlive"}', b"\x00\x01"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        async with http.ws_connect(f"{jf.base_url}/socket"):
            pass
    assert exc.value.status == 401


# --------------------------------------------------------------------------- failure injection + log


async def test_fail_next_status_then_recovers(jf: FakeJellyfin, http: aiohttp.ClientSession) -> None:
    jf.fail_next(2, 503, retry_after=3)
    for _ in range(2):
        async with http.get(jf.base_url + "/System/Info/Public") as r:
            assert (r.status, r.headers["Retry-After"], r.content_type) == (503, "3", "text/html")
    assert (await get_json(http, jf, "/System/Info/Public"))["Version"] == "12.0.0"
    assert [r.injected for r in jf.requests] == ["status:503", "status:503", None]


async def test_fail_next_filters_by_path_and_method(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    jf.fail_next(1, 502, path=r"/Download$", method="GET")
    await get_json(http, jf, "/System/Info/Public")
    async with http.get(f"{jf.base_url}/Items/{tracks['a1'].id}/Download", headers=auth(jf)) as r:
        assert r.status == 502
    async with http.get(f"{jf.base_url}/Items/{tracks['a1'].id}/Download", headers=auth(jf)) as r:
        assert r.status == 200
    jf.fail_next(None, 500, path="/Items")
    for _ in range(3):
        await get_json(http, jf, "/Items", status=500, Recursive="true")
    jf.clear_failures()
    await get_json(http, jf, "/Items", Recursive="true")


async def test_dropped_connection_and_truncated_body(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack]
) -> None:
    # aiohttp's client silently retries an idempotent request once after a disconnect: drop both tries
    jf.fail_next(2, mode="drop")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.get(jf.base_url + "/System/Info/Public") as r:
            await r.read()
    jf.fail_next(1, mode="truncate", path="/Download")
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(f"{jf.base_url}/Items/{tracks['a1'].id}/Download", headers=auth(jf)) as r:
            assert r.status == 200
            await r.read()
    async with http.get(f"{jf.base_url}/Items/{tracks['a1'].id}/Download", headers=auth(jf)) as r:
        assert await r.read() == tracks["a1"].path.read_bytes()
    assert [r.injected for r in jf.requests] == ["drop", "drop", "truncate", None]
    assert [r.status for r in jf.requests] == [None, None, 200, 200]


async def test_request_log(jf: FakeJellyfin, http: aiohttp.ClientSession) -> None:
    await get_json(http, jf, "/Items", headers={**auth(jf), "X-Trace": "1"}, Recursive="true", Limit="1")
    rec = jf.requests[-1]
    assert (rec.method, rec.path, rec.status, rec.operation, rec.auth) == (
        "GET",
        "/Items",
        200,
        "GetItems",
        "Authorization",
    )
    assert rec.query["Recursive"] == "true" and rec.param("limit") == "1"
    assert rec.headers["x-trace"] == "1"
    assert jf.requests_to("/items", "GET") == [rec]


async def test_base_path(tracks: dict[str, FakeTrack], http: aiohttp.ClientSession) -> None:
    async with FakeJellyfin(tracks.values(), base_path="/jellyfin/", contract=CONTRACT) as fake:
        assert fake.base_url.endswith("/jellyfin")
        assert (await get_json(http, fake, "/System/Info/Public"))["Version"] == "12.0.0"
        async with http.get(fake.base_url.removesuffix("/jellyfin") + "/System/Info/Public") as r:
            assert r.status == 500
        assert [v.kind for v in fake.violations] == ["outside-base-path"]


# --------------------------------------------------------------------------- the contract checks can fail


@pytest.mark.parametrize(
    "path,params,kind",
    [
        ("/Items", {"Recursive": "true", "IncludeItemType": "Audio"}, "undeclared-query-parameter"),
        ("/Items", {"Recursive": "yes"}, "invalid-parameter-value"),
        ("/Items", {"IncludeItemTypes": "Track"}, "invalid-parameter-value"),
        ("/Items", {"Fields": "ProductionYear"}, "invalid-parameter-value"),  # not an ItemFields value
        ("/Items", {"ParentId": "12"}, "invalid-parameter-value"),
        ("/Items/not-a-guid", {}, "invalid-parameter-value"),
        ("/Items", {"Recursive": "true", "HasTmdbId": "true"}, "unsupported-by-fake"),
        ("/Items", {"Recursive": "true", "SortBy": "CommunityRating"}, "unsupported-by-fake"),
        ("/Library/VirtualFolders", {}, "unknown-path"),  # in Jellyfin 12.0, not in the subset
        ("/Library/Nope", {}, "unknown-path"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_requests_outside_the_contract_are_violations(
    jf: FakeJellyfin, http: aiohttp.ClientSession, path: str, params: dict[str, str], kind: str
) -> None:
    async with http.get(jf.base_url + path, params=params, headers=auth(jf)) as r:
        assert r.status == 500
        assert kind in await r.text()
    assert [v.kind for v in jf.violations] == [kind]
    with pytest.raises(AssertionError, match=re.escape(kind)):
        jf.assert_no_violations()
    jf.clear_violations()


async def test_unknown_path_hints(jf: FakeJellyfin, http: aiohttp.ClientSession) -> None:
    for path in ("/Library/VirtualFolders", "/Library/Nope", f"/Users/{jf.user_id}/Items"):
        async with http.get(jf.base_url + path, headers=auth(jf)) as r:
            assert r.status == 500
    details = [v.detail for v in jf.violations]
    assert (
        "GET /Library/VirtualFolders in Jellyfin 12.0.0 but not in the fake's contract subset" in details[0]
    )
    assert "no such operation in Jellyfin 12.0.0" in details[1]
    assert "use /Items?userId=" in details[2]
    async with http.put(jf.base_url + "/Items", headers=auth(jf)) as r:
        assert r.status == 500
    assert jf.violations[-1].kind == "method-not-allowed"
    jf.clear_violations()


async def test_legacy_user_items_route_when_enabled(
    tracks: dict[str, FakeTrack], http: aiohttp.ClientSession
) -> None:
    async with FakeJellyfin(tracks.values(), legacy_routes=True, contract=CONTRACT) as fake:
        result = await get_json(
            http, fake, f"/Users/{fake.user_id}/Items", Recursive="true", IncludeItemTypes="MusicAlbum"
        )
        assert result["TotalRecordCount"] == 3
        await get_json(http, fake, f"/Users/{fake.user_id}/Items", status=500, Bogus="1")
        assert [v.kind for v in fake.violations] == ["undeclared-query-parameter"]


async def test_not_strict_ignores_unmodelled_parameters(
    tracks: dict[str, FakeTrack], http: aiohttp.ClientSession
) -> None:
    async with FakeJellyfin(tracks.values(), strict=False, contract=CONTRACT) as fake:
        await get_json(http, fake, "/Items", Recursive="true", HasTmdbId="true")
        await get_json(
            http, fake, "/Items", status=500, Recursive="true", Bogus="1"
        )  # undeclared: still refused
        assert [v.kind for v in fake.violations] == ["undeclared-query-parameter"]


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda p: {**p, "TotalRecordCount": "3"}, "'3' is not of type 'integer'"),
        (lambda p: {**p, "Items": [{**p["Items"][0], "Bogus": 1}]}, "Additional properties are not allowed"),
        (
            lambda p: {**p, "Items": [{**p["Items"][0], "Id": "0f8fad5b-d9cb-469f-a165-70867728950e"}]},
            "is not a 'uuid'",
        ),
        (lambda p: {**p, "Items": [{**p["Items"][0], "Type": "Track"}]}, "'Track' is not one of"),
        (lambda p: {**p, "Items": [{**p["Items"][0], "DateCreated": "01/02/2024"}]}, "is not a 'date-time'"),
        (lambda p: {**p, "Items": [{**p["Items"][0], "RunTimeTicks": 1.5}]}, "is not of type 'integer'"),
        (
            lambda p: {**p, "Items": [{**p["Items"][0], "ArtistItems": [{"Name": "x", "Id": 1}]}]},
            "1 is not of type",
        ),
    ],
    ids=[
        "count-as-string",
        "extra-member",
        "dashed-guid",
        "bad-enum",
        "bad-date",
        "float-ticks",
        "bad-nested",
    ],
)
async def test_wrong_responses_are_violations(
    jf: FakeJellyfin, http: aiohttp.ClientSession, tracks: dict[str, FakeTrack], mutate: Any, expected: str
) -> None:
    jf.mutate_next_response(mutate, path="/Items")
    async with http.get(jf.base_url + "/Items", params={"Ids": tracks["a1"].id}, headers=auth(jf)) as r:
        assert r.status == 500
        text = await r.text()
    assert "response-schema" in text and expected in text, text
    assert [v.kind for v in jf.violations] == ["response-schema"]
    jf.clear_violations()
    await get_json(http, jf, "/Items", Ids=tracks["a1"].id)  # one-shot: the next response is fine


def test_contract_validator_directly() -> None:
    op = CONTRACT.operation("GET", "/Items")
    good = {
        "Items": [{"Id": "a" * 32, "Name": "x", "Type": "Audio", "RunTimeTicks": 10}],
        "TotalRecordCount": 1,
        "StartIndex": 0,
    }
    assert CONTRACT.check_json_response(op, 200, good, camel=False) == []
    camel = {
        "items": [{"id": "a" * 32, "name": "x", "type": "Audio"}],
        "totalRecordCount": 1,
        "startIndex": 0,
    }
    assert CONTRACT.check_json_response(op, 200, camel, camel=True) == []
    assert CONTRACT.check_json_response(op, 200, good, camel=True)  # PascalCase where camelCase was asked
    assert (
        CONTRACT.check_json_response(op, 200, {**good, "Items": [{"Name": None}]}, camel=False) == []
    )  # nullable
    assert CONTRACT.check_json_response(
        op, 200, {**good, "Items": [{"Id": None}]}, camel=False
    )  # not nullable
    assert CONTRACT.check_json_response(op, 201, good, camel=False)  # undeclared 2xx
    problem = {"type": "t", "title": "Not Found", "status": 404, "traceId": "x"}
    assert CONTRACT.check_json_response(op, 404, problem, camel=False) == []
    delete = CONTRACT.operation("DELETE", "/Items/{itemId}")
    assert CONTRACT.check_bodyless_response(delete, 204, "empty") == []
    assert CONTRACT.check_bodyless_response(delete, 200, "empty")
    assert (
        CONTRACT.check_bodyless_response(CONTRACT.operation("GET", "/Items/{itemId}/Download"), 206, "binary")
        == []
    )


def test_track_ids_must_be_jellyfin_guids(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="32 lowercase hex"):
        FakeTrack(
            "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "n",
            "a",
            "al",
            "a" * 32,
            "a",
            None,
            [],
            tmp_path / "x.wav",
            utc(2024, 1, 1),
            1.0,
            1,
        )
    t1 = FakeTrack.build("n", "Artist", "Album", tmp_path / "1.wav")
    t2 = FakeTrack.build("m", "Other", "Album", tmp_path / "2.wav", album_artist="Artist", id=make_guid("x"))
    assert t1.album_id == t2.album_id
    bad = FakeTrack(
        make_guid("y"),
        "o",
        "Artist",
        "Different name",
        t1.album_id,
        "Artist",
        None,
        [],
        tmp_path / "3.wav",
        utc(2024, 1, 1),
        1.0,
    )
    with pytest.raises(ValueError, match="disagree"):
        FakeJellyfin([t1, t2, bad], contract=CONTRACT)


# --------------------------------------------------------------------------- the subset itself


def test_subset_names_its_source_and_covers_the_fake() -> None:
    doc = json.loads(CONTRACT_PATH.read_text(encoding="utf-8"))
    assert doc["info"]["version"] == "12.0.0" and "GPL-2.0" in doc["x-source"]["project"]
    assert "GET /Users/{userId}/Items" not in doc["x-all-operations"]
    implemented = {name[4:] for name in dir(FakeJellyfin) if name.startswith("_op_")}
    declared = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    assert declared == implemented


SOURCE = CONTRACT_PATH.parents[3].parent / "shared" / "contracts" / "jellyfin-openapi-12.0.0.json"


@pytest.mark.skipif(not SOURCE.exists(), reason="the full Jellyfin OpenAPI document is not available here")
def test_subset_is_up_to_date_with_the_full_document() -> None:
    script = CONTRACT_PATH.parent / "extract.py"
    done = subprocess.run(
        [sys.executable, str(script), str(SOURCE), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
