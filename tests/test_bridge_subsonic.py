"""The Subsonic bridge (sidecar/bridge/subsonic.py) in front of a REAL Subsonic server
(supysonic 0.7.9, API 1.12, password auth only), called by a real client library (py-sonic)
and by raw HTTP.  Answers are checked against the OpenSubsonic OpenAPI schemas
(tests/contracts/opensubsonic/, OpenSubsonic API 1.16.1).

The library: tests/audio_factory.py's DEFAULT_LIBRARY (4 albums, 9 tracks, 3 artists) served
by supysonic, synced into our database by the Subsonic provider, every track but "Loop Two"
given a synthetic embedding and marked analysed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import aiohttp
import asyncpg
import jsonschema
import libsonic
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from audio_factory import LibraryTrack
from library_factory import make_embeddings
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from scratch_db import scratch_database
from servers.supysonic import SupysonicServer, find_free_port
from yarl import URL

from sidecar.app import create_app as create_main_app
from sidecar.bridge import subsonic as bridge_module
from sidecar.config import Settings, load_settings
from sidecar.db.tracks import upsert_tracks
from sidecar.embedded.postgres import EmbeddedPostgres
from sidecar.providers.subsonic import SubsonicProvider
from sidecar.services import Endpoints
from sidecar.similarity.service import MixKind, MixService
from sidecar.web.keys import DB, SETTINGS

CONTRACTS = Path(__file__).parent / "contracts" / "opensubsonic" / "openapi"
BASE_URI = "https://opensubsonic.invalid/openapi/"
NS = "{http://subsonic.org/restapi}"
UNANALYSED_TITLE = "Loop Two"
_db_names = itertools.count()


# -- contract ----------------------------------------------------------------------------------


def _registry() -> Registry:
    resources = []
    for path in CONTRACTS.rglob("*.json"):
        contents = json.loads(path.read_text())
        uri = BASE_URI + path.relative_to(CONTRACTS).as_posix()
        resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


REGISTRY = _registry()
RESPONSES = {
    "getSimilarSongs": "endpoints/getSimilarSongs/GetSimilarSongsResponse.json",
    "getSimilarSongs2": "endpoints/getSimilarSongs2/GetSimilarSongs2Response.json",
    "getSonicSimilarTracks": "endpoints/getSonicSimilarTracks/GetSonicSimilarTracksResponse.json",
    "findSonicPath": "endpoints/findSonicPath/FindSonicPathResponse.json",
    "getOpenSubsonicExtensions": "endpoints/getOpenSubsonicExtensions/GetOpenSubsonicExtensionsResponse.json",
    "error": "schemas/SubsonicResponse.json",
}


def validate(method: str, document: dict[str, Any]) -> None:
    """Validate a whole answer ({"subsonic-response": ...}) against the method's response schema."""
    validator = jsonschema.Draft202012Validator({"$ref": BASE_URI + RESPONSES[method]}, registry=REGISTRY)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    # oneOf(success, failure) passes for either: pin which one it is
    status = document["subsonic-response"]["status"]
    assert status in ("ok", "failed")


def _schema(relative: str) -> dict[str, Any]:
    return json.loads((CONTRACTS / relative).read_text())


def _ref_file(prop: dict[str, Any], here: str) -> str | None:
    ref = prop.get("$ref") or next((s.get("$ref") for s in prop.get("allOf", []) if "$ref" in s), None)
    return os.path.normpath(os.path.join(os.path.dirname(here), ref)) if ref else None


def xml_to_json(el: ET.Element, schema_file: str = "schemas/Child.json") -> dict[str, Any]:
    """An XML element as the JSON object the schema describes: attributes typed by the
    schema's properties, child elements as nested objects or arrays."""
    schema = _schema(schema_file)
    props = schema.get("properties", {})
    out: dict[str, Any] = {}
    for name, raw in el.attrib.items():
        kind = props.get(name, {}).get("type")
        out[name] = (
            int(raw)
            if kind == "integer"
            else float(raw)
            if kind == "number"
            else raw == "true"
            if kind == "boolean"
            else raw
        )
    for child in el:
        name = child.tag.removeprefix(NS)
        prop = props.get(name, {})
        if prop.get("type") == "array":
            item_file = _ref_file(prop["items"], schema_file)
            value: Any = xml_to_json(child, item_file) if item_file else child.text
            out.setdefault(name, []).append(value)
        else:
            target = _ref_file(prop, schema_file)
            out[name] = xml_to_json(child, target) if target else child.text
    return out


def xml_answer_to_json(root: ET.Element) -> dict[str, Any]:
    """A bridge XML answer as its JSON twin (envelope, similarSongs(2), sonicMatch, extensions, error)."""
    assert root.tag == NS + "subsonic-response", root.tag
    inner: dict[str, Any] = {k: (v == "true" if k == "openSubsonic" else v) for k, v in root.attrib.items()}
    for child in root:
        name = child.tag.removeprefix(NS)
        if name in ("similarSongs", "similarSongs2"):
            inner[name] = {"song": [xml_to_json(s) for s in child]}
        elif name == "sonicMatch":
            (entry,) = list(child)
            assert entry.tag == NS + "entry"
            inner.setdefault(name, []).append(
                {"entry": xml_to_json(entry), "similarity": float(child.attrib["similarity"])}
            )
        elif name == "openSubsonicExtensions":
            inner.setdefault(name, []).append(
                {"name": child.attrib["name"], "versions": [int(v.text or "") for v in child]}
            )
        elif name == "error":
            inner[name] = {"code": int(child.attrib["code"]), "message": child.attrib.get("message", "")}
        else:
            raise AssertionError(f"unexpected element {name}")
    return {"subsonic-response": inner}


def test_validator_rejects_wrong_shapes() -> None:
    ok = {"status": "ok", "version": "1.16.1", "type": "t", "serverVersion": "1", "openSubsonic": True}
    validate(
        "getSimilarSongs2",
        {"subsonic-response": {**ok, "similarSongs2": {"song": [{"id": "1", "isDir": False, "title": "x"}]}}},
    )
    for bad in (
        {**ok},  # no similarSongs2
        {**ok, "similarSongs2": {"song": [{"id": "1", "isDir": False}]}},  # Child without title
        {"status": "ok", "version": "1.12.0", "similarSongs2": {"song": []}},
    ):  # not OpenSubsonic
        with pytest.raises(AssertionError):
            validate("getSimilarSongs2", {"subsonic-response": bad})
    with pytest.raises(AssertionError):
        validate(
            "getSonicSimilarTracks",
            {
                "subsonic-response": {
                    **ok,
                    "sonicMatch": [{"entry": {"id": "1", "isDir": False, "title": "x"}, "similarity": 1.5}],
                }
            },
        )


def test_vendored_schemas_are_complete() -> None:
    """Every $ref of the vendored files points at a vendored file."""

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for k, v in node.items():
                yield from ([v] if k == "$ref" else refs(v))
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    for path in CONTRACTS.rglob("*.json"):
        for ref in refs(json.loads(path.read_text())):
            target = (path.parent / ref.split("#")[0]).resolve()
            assert target.is_file(), f"{path.relative_to(CONTRACTS)}: $ref {ref} is not vendored"
    assert (CONTRACTS.parent / "LICENSE").read_text().lstrip().startswith("Apache License")


# -- servers -----------------------------------------------------------------------------------


@dataclass
class World:
    supysonic: SupysonicServer
    made: list[LibraryTrack]
    settings: Settings
    pool: asyncpg.Pool
    bridge: TestServer
    bridge_state: bridge_module.SubsonicBridge
    http: aiohttp.ClientSession
    tracks: dict[str, dict[str, Any]]  # title -> supysonic Child (JSON)
    albums: dict[str, dict[str, Any]]  # name -> supysonic AlbumID3

    @property
    def url(self) -> str:
        return str(self.bridge.make_url("/rest"))

    def auth(self, fmt: str | None = "json", password: str | None = None) -> dict[str, str]:
        return self.supysonic.auth_params(fmt=fmt, password=password)

    def mixes(self) -> MixService:
        return MixService(self.pool, self.settings)

    async def get(
        self,
        base: str,
        method: str,
        *,
        view: bool = True,
        fmt: str | None = "json",
        password: str | None = None,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> tuple[int, dict[str, str], bytes]:
        url = f"{base}/{method}{'.view' if view else ''}"
        query = {**self.auth(fmt, password), **{k: str(v) for k, v in params.items()}}
        async with self.http.get(url, params=query, headers=headers or {}) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    async def bridge_get(self, method: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        return await self.get(self.url, method, **kw)

    async def upstream_get(self, method: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        return await self.get(self.supysonic.rest_url, method, **kw)


@pytest.fixture(scope="module")
def supysonic(
    subsonic_server: SupysonicServer, subsonic_library: tuple[Path, list[LibraryTrack]]
) -> tuple[SupysonicServer, list[LibraryTrack]]:
    return subsonic_server, subsonic_library[1]


@pytest_asyncio.fixture(scope="module")
async def module_dsn(pg_cluster: EmbeddedPostgres) -> AsyncIterator[str]:
    """One migrated database for the module (the world is read-only once built)."""
    name = f"bridge_subsonic_{os.getpid()}_{next(_db_names)}"
    async with scratch_database(pg_cluster, name, migrated=True) as dsn:
        yield dsn


async def fill_library(pool: asyncpg.Pool, srv: SupysonicServer) -> None:
    provider = SubsonicProvider(srv.base_url, srv.user, srv.password, backoff_s=0.01)
    try:
        tracks = [t for a in await provider.list_albums() for t in await provider.album_tracks(a.id)]
    finally:
        await provider.close()
    await upsert_tracks(pool, "navidrome", tracks)
    analysed = [t for t in tracks if t.title != UNANALYSED_TITLE]
    vectors, _ = make_embeddings(len(analysed), styles=3, seed=11)
    await pool.executemany(
        "INSERT INTO embeddings (item_id, embedding, space, model_version)"
        " VALUES ($1, $2, $2 || array_fill(0::real, ARRAY[204])::vector, 'test-v1')",
        [(t.item_id, v) for t, v in zip(analysed, vectors, strict=True)],
    )
    await pool.execute(
        "UPDATE tracks SET analysis_status = 'analyzed', model_version = 'test-v1', "
        "analyzed_at = now() WHERE item_id = ANY($1::text[])",
        [t.item_id for t in analysed],
    )


def bridge_settings(srv: SupysonicServer, data_dir: Path, **overrides: Any) -> Settings:
    return load_settings(
        {
            "AUDIOMUSE_DATA_DIR": str(data_dir),
            "NAVIDROME_URL": srv.base_url,
            "NAVIDROME_USER": srv.user,
            "NAVIDROME_PASSWORD": srv.password,
            "SUBSONIC_BRIDGE_PORT": "0",
        },
        ai_chat_db_user_name="ai_user_bridge_subsonic",
        **overrides,
    )


@pytest_asyncio.fixture(scope="module")
async def world(
    supysonic: tuple[SupysonicServer, list[LibraryTrack]],
    module_dsn: str,
    valkey_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[World]:
    srv, made = supysonic
    settings = bridge_settings(srv, tmp_path_factory.mktemp("bridge-data"))
    main = create_main_app(settings, Endpoints(module_dsn, valkey_url))
    main_server = TestServer(main)
    await main_server.start_server()
    bridge = TestServer(bridge_module.create_app(main))
    await bridge.start_server()
    pool = main[DB]
    await fill_library(pool, srv)
    albums = {a["name"]: a for a in srv.get_json("getAlbumList2", type="newest")["albumList2"]["album"]}
    tracks = {
        s["title"]: s for a in albums.values() for s in srv.get_json("getAlbum", id=a["id"])["album"]["song"]
    }
    http = aiohttp.ClientSession()
    try:
        yield World(srv, made, settings, pool, bridge, bridge.app[bridge_module.BRIDGE], http, tracks, albums)
    finally:
        await http.close()
        await bridge.close()
        await main_server.close()


@pytest_asyncio.fixture
async def variant() -> AsyncIterator[Any]:
    """Start extra bridges over a bare main app (settings and an optional pool set by hand)."""
    servers: list[TestServer] = []

    async def start(
        settings: Settings, pool: asyncpg.Pool | None
    ) -> tuple[str, bridge_module.SubsonicBridge]:
        main = web.Application()
        main[SETTINGS] = settings
        if pool is not None:
            main[DB] = pool
        server = TestServer(bridge_module.create_app(main))
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/rest")), server.app[bridge_module.BRIDGE]

    yield start
    for s in servers:
        await s.close()


@pytest_asyncio.fixture
async def in_front_of(world: World, variant: Any) -> AsyncIterator[Any]:
    """A bridge in front of a hand-written upstream answering ``method path`` with ``handler``
    (NAVIDROME_URL with ``base_path``): returns the bridge's /rest URL."""
    upstreams: list[TestServer] = []

    async def start(method: str, path: str, handler: Any, base_path: str = "") -> str:
        fake = web.Application()
        fake.router.add_route(method, path, handler)
        upstream = TestServer(fake)
        await upstream.start_server()
        upstreams.append(upstream)
        settings = world.settings.model_copy(update={"navidrome_url": str(upstream.make_url(base_path))})
        url, _ = await variant(settings, None)
        return url

    yield start
    for upstream in upstreams:
        await upstream.close()


def inner_json(body: bytes) -> dict[str, Any]:
    return json.loads(body)["subsonic-response"]


def parse_xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)


# -- sonic getSimilarSongs(2) ----------------------------------------------------------------------


async def expected_song_mix(w: World, seed_id: str, count: int) -> list[str]:
    result = await w.mixes().mix(MixKind.SONG, seed_id, count + 1)
    return [c.item_id for c in result.tracks if c.item_id != seed_id][:count]


async def test_similar_songs2_json_are_the_servers_children_in_mix_order(world: World) -> None:
    seed = world.tracks["Dawn"]
    status, headers, body = await world.bridge_get("getSimilarSongs2", id=seed["id"], count=5)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    document = json.loads(body)
    validate("getSimilarSongs2", document)
    inner = document["subsonic-response"]
    assert inner["status"] == "ok" and inner["openSubsonic"] is True and inner["version"] == "1.12.0"
    songs = inner["similarSongs2"]["song"]
    expected = await expected_song_mix(world, seed["id"], 5)
    assert len(expected) == 5 and [s["id"] for s in songs] == expected
    assert seed["id"] not in expected, "similar songs leave the seed out"
    by_id = {t["id"]: t for t in world.tracks.values()}
    assert songs == [by_id[i] for i in expected], "entries are the server's own Child objects, unchanged"


async def test_similar_songs2_xml_on_the_bare_path(world: World) -> None:
    seed = world.tracks["Gust"]
    status, headers, body = await world.bridge_get(
        "getSimilarSongs2", view=False, fmt=None, id=seed["id"], count=4
    )
    assert status == 200 and "xml" in headers["Content-Type"]
    root = parse_xml(body)
    assert root.tag == NS + "subsonic-response" and root.attrib["status"] == "ok"
    document = xml_answer_to_json(root)
    validate("getSimilarSongs2", document)
    holder = root.find(NS + "similarSongs2")
    assert holder is not None
    expected = await expected_song_mix(world, seed["id"], 4)
    assert [s.attrib["id"] for s in holder] == expected and all(s.tag == NS + "song" for s in holder)
    for song in holder:  # the server's own XML element, attribute for attribute
        _, _, raw = await world.upstream_get("getSong", fmt="xml", id=song.attrib["id"])
        upstream_song = parse_xml(raw).find(NS + "song")
        assert upstream_song is not None and song.attrib == upstream_song.attrib
    # the JSON twin has the same songs
    _, _, as_json = await world.bridge_get("getSimilarSongs2", id=seed["id"], count=4)
    assert document["subsonic-response"]["similarSongs2"] == inner_json(as_json)["similarSongs2"]


async def test_similar_songs_v1_and_form_post(world: World) -> None:
    seed = world.tracks["Adagio"]
    form = {**world.auth("json"), "id": seed["id"], "count": "3"}
    async with world.http.post(world.url + "/getSimilarSongs.view", data=form) as resp:
        assert resp.status == 200
        document = await resp.json()
    validate("getSimilarSongs", document)
    songs = document["subsonic-response"]["similarSongs"]["song"]
    assert [s["id"] for s in songs] == await expected_song_mix(world, seed["id"], 3)
    # JSONP: the same document wrapped in the callback
    status, headers, body = await world.bridge_get(
        "getSimilarSongs", fmt="jsonp", callback="cb_1", id=seed["id"], count=3
    )
    text = body.decode()
    assert status == 200 and "javascript" in headers["Content-Type"]
    assert text.startswith("cb_1(") and text.endswith(");") and json.loads(text[5:-2]) == document


async def test_py_sonic_client(world: World) -> None:
    port = world.bridge.port
    assert port is not None
    seed = world.tracks["Morning Run"]
    expected = await expected_song_mix(world, seed["id"], 4)
    # py-sonic POSTs forms (its useGET=True is broken in 1.2.0: NameError urllib2); raw GETs are
    # covered by the other tests
    conn = libsonic.Connection(
        f"http://{world.bridge.host}",
        world.supysonic.user,
        world.supysonic.password,
        port=port,
        legacyAuth=True,
        appName="py-sonic-test",
        apiVersion="1.12.0",
    )
    answer = await asyncio.to_thread(conn.getSimilarSongs2, seed["id"], 4)
    validate("getSimilarSongs2", {"subsonic-response": answer})
    assert [s["id"] for s in answer["similarSongs2"]["song"]] == expected
    v1 = await asyncio.to_thread(conn.getSimilarSongs, world.albums["Quiet Rooms"]["id"], 3)
    validate("getSimilarSongs", {"subsonic-response": v1})
    assert v1["similarSongs"]["song"]
    assert (await asyncio.to_thread(conn.ping)) is True
    album = await asyncio.to_thread(conn.getAlbum, world.albums["First Light"]["id"])
    assert [s["title"] for s in album["album"]["song"]] == ["Dawn", "Morning Run", "High Noon"]
    wrong = libsonic.Connection(
        f"http://{world.bridge.host}",
        world.supysonic.user,
        "not-it",
        port=port,
        legacyAuth=True,
        appName="py-sonic-test",
        apiVersion="1.12.0",
    )
    with pytest.raises(libsonic.errors.CredentialError):
        await asyncio.to_thread(wrong.getSimilarSongs2, seed["id"], 4)


async def test_album_and_artist_ids(world: World) -> None:
    album = world.albums["First Light"]
    status, _, body = await world.bridge_get("getSimilarSongs2", id=album["id"], count=4)
    document = json.loads(body)
    validate("getSimilarSongs2", document)
    got = [s["id"] for s in document["subsonic-response"]["similarSongs2"]["song"]]
    mix = await world.mixes().mix(MixKind.ALBUM, album["id"], 4)
    assert status == 200 and got == [c.item_id for c in mix.tracks] and got
    album_songs = {t["id"] for t in world.tracks.values() if t["albumId"] == album["id"]}
    assert not album_songs & set(got), "an album mix leaves the album's own songs out"

    artist_id = world.tracks["Adagio"]["artistId"]  # Beta Ensemble: resolved through getArtist
    status, _, body = await world.bridge_get("getSimilarSongs2", fmt="xml", id=artist_id, count=5)
    root = parse_xml(body)
    validate("getSimilarSongs2", xml_answer_to_json(root))
    holder = root.find(NS + "similarSongs2")
    assert holder is not None
    got = [s.attrib["id"] for s in holder]
    mix = await world.mixes().mix(MixKind.ARTIST, "Beta Ensemble", 5)
    assert got == [c.item_id for c in mix.tracks] and got
    assert all(s.attrib["artist"] != "Beta Ensemble" for s in holder)


# -- the sonicSimilarity extension ---------------------------------------------------------------


async def test_get_sonic_similar_tracks(world: World) -> None:
    seed = world.tracks["High Noon"]
    _, _, body = await world.bridge_get("getSonicSimilarTracks", id=seed["id"])
    document = json.loads(body)
    validate("getSonicSimilarTracks", document)
    matches = document["subsonic-response"]["sonicMatch"]
    expected = await world.mixes().similar(await world.mixes().song_seed(seed["id"]), 10, True)
    assert [m["entry"]["id"] for m in matches] == [c.item_id for c in expected] and matches
    assert seed["id"] not in [m["entry"]["id"] for m in matches]
    sims = [m["similarity"] for m in matches]
    assert sims == sorted(sims, reverse=True) and all(-1 <= s <= 1 for s in sims)
    assert sims == [pytest.approx(1 - c.distance, abs=1e-5) for c in expected]

    _, _, xml_body = await world.bridge_get("getSonicSimilarTracks", fmt="xml", id=seed["id"], count=3)
    xml_doc = xml_answer_to_json(parse_xml(xml_body))
    validate("getSonicSimilarTracks", xml_doc)
    _, _, json_body = await world.bridge_get("getSonicSimilarTracks", id=seed["id"], count=3)
    assert xml_doc["subsonic-response"]["sonicMatch"] == inner_json(json_body)["sonicMatch"]
    assert len(inner_json(json_body)["sonicMatch"]) == 3


async def test_find_sonic_path(world: World) -> None:
    start, end = world.tracks["Dawn"], world.tracks["Loop One"]
    _, _, body = await world.bridge_get(
        "findSonicPath", startSongId=start["id"], endSongId=end["id"], count=5
    )
    document = json.loads(body)
    validate("findSonicPath", document)
    path = document["subsonic-response"]["sonicMatch"]
    ids = [m["entry"]["id"] for m in path]
    assert ids[0] == start["id"] and ids[-1] == end["id"] and len(ids) == 5 and len(set(ids)) == 5
    assert path[0]["similarity"] == pytest.approx(1.0)
    assert all(-1 <= m["similarity"] <= 1 for m in path)

    _, _, xml_body = await world.bridge_get(
        "findSonicPath", fmt="xml", startSongId=start["id"], endSongId=end["id"], count=5
    )
    xml_doc = xml_answer_to_json(parse_xml(xml_body))
    validate("findSonicPath", xml_doc)
    assert xml_doc["subsonic-response"]["sonicMatch"] == path


async def test_extensions_list_without_auth(world: World) -> None:
    async with world.http.get(world.url + "/getOpenSubsonicExtensions", params={"f": "json"}) as resp:
        document = await resp.json()
    validate("getOpenSubsonicExtensions", document)
    # supysonic knows no extension (it answers "Unknown method"): the list is the bridge's own
    assert document["subsonic-response"]["openSubsonicExtensions"] == [
        {"name": "sonicSimilarity", "versions": [1]}
    ]
    async with world.http.get(world.url + "/getOpenSubsonicExtensions.view") as resp:
        xml_doc = xml_answer_to_json(parse_xml(await resp.read()))
    validate("getOpenSubsonicExtensions", xml_doc)
    assert xml_doc["subsonic-response"]["openSubsonicExtensions"] == [
        {"name": "sonicSimilarity", "versions": [1]}
    ]


async def test_extensions_merge_and_credentials_forwarded(world: World, in_front_of: Any) -> None:
    """Against a tiny OpenSubsonic upstream: the server's list is kept (its own sonicSimilarity
    entry replaced by ours), and every credential form reaches the server's ping untouched."""
    pings: list[dict[str, str]] = []

    async def rest(request: web.Request) -> web.Response:
        name = request.match_info["name"].removesuffix(".view")
        base = {
            "status": "ok",
            "version": "1.16.1",
            "type": "navidrome",
            "serverVersion": "0.58.0",
            "openSubsonic": True,
        }
        if name == "getOpenSubsonicExtensions":
            return web.json_response(
                {
                    "subsonic-response": {
                        **base,
                        "openSubsonicExtensions": [
                            {"name": "formPost", "versions": [1]},
                            {"name": "sonicSimilarity", "versions": [7]},
                        ],
                    }
                }
            )
        if name == "ping":
            pings.append(dict(request.query))
            return web.json_response(
                {
                    "subsonic-response": {
                        **base,
                        "status": "failed",
                        "error": {"code": 44, "message": "Invalid API key"},
                    }
                }
            )
        return web.json_response(
            {"subsonic-response": {**base, "status": "failed", "error": {"code": 0, "message": "unexpected"}}}
        )

    url = await in_front_of("GET", "/rest/{name}", rest)
    async with world.http.get(url + "/getOpenSubsonicExtensions.view", params={"f": "json"}) as resp:
        document = await resp.json()
    validate("getOpenSubsonicExtensions", document)
    inner = document["subsonic-response"]
    assert inner["openSubsonicExtensions"] == [
        {"name": "formPost", "versions": [1]},
        {"name": "sonicSimilarity", "versions": [1]},
    ]
    assert (inner["type"], inner["serverVersion"], inner["version"]) == ("navidrome", "0.58.0", "1.16.1")
    for creds in ({"apiKey": "k-123"}, {"u": "bob", "t": "0123abcd", "s": "salty"}, {"u": "bob", "p": "pw"}):
        query = {**creds, "v": "1.16.1", "c": "client", "f": "json", "id": "x"}
        async with world.http.get(url + "/getSimilarSongs2", params=query) as resp:
            refused = await resp.json()
        assert refused["subsonic-response"]["error"] == {"code": 44, "message": "Invalid API key"}
        assert pings[-1] == {**creds, "v": "1.16.1", "c": "client", "f": "json"}


# -- authentication ----------------------------------------------------------------------------


async def test_wrong_password_gets_the_servers_own_error_40(world: World) -> None:
    seed = world.tracks["Dawn"]
    for fmt in ("json", "xml", None):
        mine = await world.bridge_get("getSimilarSongs2", fmt=fmt, password="wrong", id=seed["id"])
        theirs = await world.upstream_get("getSimilarSongs2", fmt=fmt, password="wrong", id=seed["id"])
        assert mine[0] == theirs[0] == 200
        assert mine[2] == theirs[2], (mine[2], theirs[2])
        assert mine[1]["Content-Type"] == theirs[1]["Content-Type"]
    assert (
        inner_json((await world.bridge_get("getSonicSimilarTracks", password="x", id=seed["id"]))[2])[
            "error"
        ]["code"]
        == 40
    )
    assert (
        inner_json(
            (
                await world.bridge_get(
                    "findSonicPath", password="x", startSongId=seed["id"], endSongId=seed["id"]
                )
            )[2]
        )["error"]["code"]
        == 40
    )


async def test_credentials_verdict_is_cached(world: World, variant: Any) -> None:
    seed = world.tracks["Dawn"]["id"]
    state = world.bridge_state
    await world.bridge_get("getSimilarSongs2", id=seed, count=2)
    before = state.auth_checks
    for _ in range(3):
        assert inner_json((await world.bridge_get("getSimilarSongs2", id=seed, count=2))[2])["status"] == "ok"
    assert state.auth_checks == before, "a success is trusted for BRIDGE_AUTH_CACHE_SECONDS"
    for _ in range(2):
        await world.bridge_get("getSimilarSongs2", password="wrong", id=seed)
    assert state.auth_checks == before + 2, "a refusal is never cached"

    url, uncached = await variant(
        world.settings.model_copy(update={"bridge_auth_cache_seconds": 0}), world.pool
    )
    for _ in range(2):
        async with world.http.get(url + "/getSimilarSongs2", params={**world.auth(), "id": seed}) as resp:
            assert (await resp.json())["subsonic-response"]["status"] == "ok"
    assert uncached.auth_checks == 2


# -- fallback to the server's own answer ------------------------------------------------------------


async def test_fallback_is_the_servers_own_answer(world: World) -> None:
    """getSimilarSongs(2) for an id the server knows but we have no sonic answer for (a song not
    analysed yet, a music folder id only the server knows): the request goes to supysonic
    unchanged and its answer comes back as is (supysonic lacks these calls: HTTP 404, code 0
    "Unknown method")."""
    pending = world.tracks[UNANALYSED_TITLE]["id"]
    index = world.supysonic.get_json("getIndexes")["indexes"]["index"]
    folder = index[0]["artist"][0]["id"]  # a directory: not a song, an album or an ID3 artist
    cases: list[tuple[str, dict[str, Any]]] = [
        ("getSimilarSongs2", {"id": pending}),
        ("getSimilarSongs", {"id": pending}),
        ("getSimilarSongs", {"id": folder}),
        ("getSimilarSongs2", {"id": folder, "count": "3"}),
    ]
    for method, params in cases:
        for fmt in ("json", "xml"):
            mine = await world.bridge_get(method, fmt=fmt, **params)
            theirs = await world.upstream_get(method, fmt=fmt, **params)
            assert (mine[0], mine[2]) == (theirs[0], theirs[2]), (method, params, fmt)
    status, _, body = await world.bridge_get("getSimilarSongs2", id=pending)
    assert status == 404 and inner_json(body)["error"] == {"code": 0, "message": "Unknown method"}


async def error_of(world: World, method: str, fmt: str, **params: Any) -> dict[str, Any]:
    """The bridge's Subsonic error (HTTP 200, status failed, schema-valid) for a call, in ``fmt``."""
    status, headers, body = await world.bridge_get(method, fmt=fmt, callback="cb", **params)
    assert status == 200, (method, params, fmt, body)
    if fmt == "xml":
        assert headers["Content-Type"].startswith("application/xml")
        document = xml_answer_to_json(parse_xml(body))
    elif fmt == "jsonp":
        text = body.decode()
        assert headers["Content-Type"].startswith("application/javascript") and text.startswith("cb(")
        document = json.loads(text[3:-2])
    else:
        document = json.loads(body)
    validate("error", document)
    validate(method, document)  # the failure branch of the call's own response schema
    inner = document["subsonic-response"]
    assert inner["status"] == "failed" and set(inner) >= {"version", "type", "serverVersion", "openSubsonic"}
    error: dict[str, Any] = inner["error"]
    return error


async def test_invalid_parameters_get_subsonic_error_10(world: World) -> None:
    """Missing or malformed parameters of the calls the bridge owns: error 10 naming the parameter,
    in every format, once the credentials are accepted (the server never sees the call)."""
    seed, other = world.tracks["Dawn"]["id"], world.tracks["Gust"]["id"]
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("getSonicSimilarTracks", {}, "Required parameter is missing: id"),
        ("getSonicSimilarTracks", {"id": ""}, "Required parameter is missing: id"),
        ("getSonicSimilarTracks", {"id": seed, "count": "-1"}, "count: -1 (the minimum is 0)"),
        ("getSonicSimilarTracks", {"id": seed, "count": "abc"}, "count: 'abc' is not an integer"),
        ("findSonicPath", {"endSongId": other}, "Required parameter is missing: startSongId"),
        ("findSonicPath", {"startSongId": seed}, "Required parameter is missing: endSongId"),
        (
            "findSonicPath",
            {"startSongId": seed, "endSongId": other, "count": "0"},
            "count: 0 (the minimum is 1)",
        ),
        ("findSonicPath", {"startSongId": seed, "endSongId": seed}, "endSongId"),
        ("getSimilarSongs", {}, "Required parameter is missing: id"),
        ("getSimilarSongs", {"id": seed, "count": "-1"}, "count: -1 (the minimum is 0)"),
        ("getSimilarSongs2", {}, "Required parameter is missing: id"),
        ("getSimilarSongs2", {"id": seed, "count": "abc"}, "count: 'abc' is not an integer"),
        ("getSimilarSongs2", {"id": seed, "count": "2.5"}, "count: '2.5' is not an integer"),
    ]
    for method, params, message in cases:
        for fmt in ("json", "xml", "jsonp"):
            error = await error_of(world, method, fmt, **params)
            assert error["code"] == 10 and message in error["message"], (method, params, fmt, error)
    # credentials first: a wrong password gets the server's error 40, not our error 10
    for method, params, _ in cases[:3]:
        _, _, body = await world.bridge_get(method, password="wrong", **params)
        assert inner_json(body)["error"]["code"] == 40, (method, params)


async def test_unknown_ids_get_subsonic_error_70(world: World) -> None:
    """An id we have no sonic data for: error 70 from the sonicSimilarity calls; from
    getSimilarSongs(2) only when the server does not know the id either."""
    pending, seed = world.tracks[UNANALYSED_TITLE]["id"], world.tracks["Dawn"]["id"]
    unknown = str(uuid.uuid4())
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("getSonicSimilarTracks", {"id": unknown}, f"Song not found: id={unknown}"),
        ("getSonicSimilarTracks", {"id": unknown, "count": "0"}, f"Song not found: id={unknown}"),
        ("getSonicSimilarTracks", {"id": pending}, f"Song id={pending} has no sonic analysis yet"),
        (
            "findSonicPath",
            {"startSongId": unknown, "endSongId": seed},
            f"Song not found: startSongId={unknown}",
        ),
        (
            "findSonicPath",
            {"startSongId": seed, "endSongId": pending},
            f"Song endSongId={pending} has no sonic",
        ),
        ("getSimilarSongs2", {"id": unknown}, f"Song, album or artist not found: id={unknown}"),
        ("getSimilarSongs", {"id": "not-an-id"}, "Song, album or artist not found: id=not-an-id"),
    ]
    for method, params, message in cases:
        for fmt in ("json", "xml", "jsonp"):
            error = await error_of(world, method, fmt, **params)
            assert error["code"] == 70 and message in error["message"], (method, params, fmt, error)


async def test_our_failure_falls_back_to_the_servers_answer(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception in the bridge's own path is logged and counted and the server answers, never
    a 500 (the failure policy of both bridges)."""
    seed = world.tracks["Dawn"]["id"]
    counts = world.bridge_state.fallbacks.counts
    failed = counts["failed"]

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom in the mix engine")

    monkeypatch.setattr(MixService, "similar", broken)
    monkeypatch.setattr(MixService, "mix", broken)
    monkeypatch.setattr(MixService, "path", broken)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("getSonicSimilarTracks", {"id": seed}),
        ("getSimilarSongs2", {"id": seed}),
        ("getSimilarSongs", {"id": seed, "count": "3"}),
        ("findSonicPath", {"startSongId": seed, "endSongId": world.tracks["Gust"]["id"]}),
    ]
    for method, params in cases:
        caplog.clear()
        with caplog.at_level("WARNING", logger="sidecar.bridge.subsonic"):
            mine = await world.bridge_get(method, **params)
        theirs = await world.upstream_get(method, **params)
        assert (mine[0], mine[2]) == (theirs[0], theirs[2]), method
        assert any(
            r.name == "sidecar.bridge.subsonic"
            and r.levelname == "WARNING"
            and r.exc_info
            and "boom in the mix engine" in str(r.exc_info[1])
            and method in r.getMessage()
            for r in caplog.records
        ), method
    assert counts["failed"] == failed + len(cases)

    # the database unreachable: a warning without a traceback (counted apart), the server answers
    async def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("database down")

    monkeypatch.setattr(MixService, "similar", down)
    unavailable = counts["unavailable"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="sidecar.bridge.subsonic"):
        mine = await world.bridge_get("getSonicSimilarTracks", id=seed)
    theirs = await world.upstream_get("getSonicSimilarTracks", id=seed)
    assert (mine[0], mine[2]) == (theirs[0], theirs[2])
    (record,) = [r for r in caplog.records if "database down" in r.getMessage()]
    assert record.levelname == "WARNING" and not record.exc_info
    assert counts["unavailable"] == unavailable + 1 and counts["failed"] == failed + len(cases)


async def test_fallback_when_nothing_is_analysed_or_no_database(
    world: World, variant: Any, db: asyncpg.Pool
) -> None:
    seed = world.tracks["Dawn"]["id"]
    theirs = await world.upstream_get("getSimilarSongs2", id=seed)
    for pool in (db, None):  # an empty library; the main app's database not ready
        url, _ = await variant(world.settings, pool)
        async with world.http.get(
            url + "/getSimilarSongs2.view", params={**world.auth(), "id": seed}
        ) as resp:
            assert (resp.status, await resp.read()) == (theirs[0], theirs[2])


# -- pass-through ------------------------------------------------------------------------------------


async def test_ping_and_get_album_pass_through_byte_for_byte(world: World) -> None:
    album_id = world.albums["Second Wind"]["id"]
    for method, params in (
        ("ping", {}),
        ("getAlbum", {"id": album_id}),
        ("getAlbumList2", {"type": "newest"}),
    ):
        for fmt in ("json", "xml"):
            mine = await world.bridge_get(method, fmt=fmt, **params)
            theirs = await world.upstream_get(method, fmt=fmt, **params)
            assert (mine[0], mine[2]) == (theirs[0], theirs[2]) and mine[0] == 200
            assert mine[1]["Content-Type"] == theirs[1]["Content-Type"]
    # a form POST body reaches the server untouched
    form = {**world.auth("json"), "id": album_id}
    async with world.http.post(world.url + "/getAlbum.view", data=form) as resp:
        assert inner_json(await resp.read())["album"]["name"] == "Second Wind"


async def test_stream_and_range_pass_through(world: World) -> None:
    track = world.tracks["Dawn"]
    original = next(m.path for m in world.made if m.title == "Dawn").read_bytes()
    status, headers, body = await world.bridge_get("stream", fmt=None, id=track["id"])
    _, upstream_headers, _ = await world.upstream_get("stream", fmt=None, id=track["id"])
    assert status == 200 and body == original
    for name in (
        "Content-Type",
        "Content-Length",
        "Content-Disposition",
        "Etag",
        "Last-Modified",
        "Accept-Ranges",
    ):
        assert headers.get(name) == upstream_headers.get(name), name
    status, headers, body = await world.bridge_get(
        "stream", fmt=None, id=track["id"], headers={"Range": "bytes=10-99"}
    )
    assert status == 206 and body == original[10:100]
    assert headers["Content-Range"] == f"bytes 10-99/{len(original)}"
    status, _, body = await world.bridge_get("download", fmt=None, view=False, id=track["id"])
    assert status == 200 and body == original


async def test_head_pass_through(world: World) -> None:
    track = world.tracks["Gust"]
    query = {**world.auth(None), "id": track["id"]}
    async with (
        world.http.head(world.url + "/stream.view", params=query) as mine,
        world.http.head(world.supysonic.rest_url + "/stream.view", params=query) as theirs,
    ):
        assert (mine.status, await mine.read()) == (theirs.status, await theirs.read())
        assert mine.headers.get("Content-Length") == theirs.headers.get("Content-Length")


async def test_proxy_streams_both_ways_and_keeps_the_request(world: World, in_front_of: Any) -> None:
    """Against a hand-written upstream: the raw path and query string, end-to-end headers and
    the body arrive unchanged, hop-by-hop headers do not; both bodies are streamed (each side
    waits for the other half-way, which would deadlock a proxy that buffers whole bodies)."""
    seen: dict[str, Any] = {}
    half_received = asyncio.Event()
    client_has_first_chunk = asyncio.Event()

    async def upload(request: web.Request) -> web.StreamResponse:
        seen["raw_path"], seen["headers"] = request.raw_path, dict(request.headers)
        first = await request.content.readexactly(4)
        half_received.set()
        seen["body"] = first + await request.content.read()
        resp = web.StreamResponse(
            headers={
                "X-Upstream": "yes",
                "Content-Type": "audio/x-test",
                "Connection": "keep-alive, X-Secret",
                "X-Secret": "hop",
            }
        )
        await resp.prepare(request)
        await resp.write(b"first-")
        await asyncio.wait_for(client_has_first_chunk.wait(), 10)
        await resp.write(b"second")
        await resp.write_eof()
        return resp

    url = await in_front_of("*", "/{tail:.*}", upload)

    async def body() -> AsyncIterator[bytes]:
        yield b"part"
        await asyncio.wait_for(half_received.wait(), 10)
        yield b"-rest"

    raw = "/rest/savePlayQueue.view?id=a%2Fb&id=c&u=me&p=enc%3A6869&x=%C3%A9"
    async with world.http.post(
        URL(url.removesuffix("/rest") + raw, encoded=True),
        data=body(),
        headers={
            "X-Client": "kept",
            "Connection": "X-Drop",
            "X-Drop": "1",
            "Content-Type": "application/octet-stream",
        },
    ) as resp:
        assert resp.status == 200 and resp.headers["X-Upstream"] == "yes"
        assert "X-Secret" not in resp.headers
        assert await resp.content.readexactly(6) == b"first-"
        client_has_first_chunk.set()
        assert await resp.content.read() == b"second"
    assert seen["raw_path"] == raw and seen["body"] == b"part-rest"
    assert seen["headers"]["X-Client"] == "kept" and "X-Drop" not in seen["headers"]
    assert seen["headers"]["Content-Type"] == "application/octet-stream"


async def test_upstream_breaking_off_mid_body_truncates_the_client(world: World, in_front_of: Any) -> None:
    async def short(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "100", "Content-Type": "audio/mpeg"})
        await resp.prepare(request)
        await resp.write(b"0123456789")
        assert request.transport is not None
        request.transport.close()
        return resp

    url = await in_front_of("GET", "/rest/stream.view", short)
    async with world.http.get(url + "/stream.view", params={"id": "x"}) as resp:
        assert resp.status == 200 and resp.headers["Content-Length"] == "100"
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_base_path_of_the_server(world: World, in_front_of: Any) -> None:
    """NAVIDROME_URL with a base path: client paths with or without it reach the same server path,
    and the bridge's calls are recognised under it."""
    paths: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        paths.append(request.raw_path)
        return web.json_response(
            {
                "subsonic-response": {
                    "status": "failed",
                    "version": "1.16.1",
                    "error": {"code": 0, "message": "Unknown method"},
                }
            },
            status=404,
        )

    url = await in_front_of("*", "/{tail:.*}", anything, base_path="/music")
    root = url.removesuffix("/rest")
    for path in ("/rest/ping.view?f=json", "/music/rest/ping.view?f=json", "/musicbox/x"):
        async with world.http.get(URL(root + path, encoded=True)) as resp:
            assert resp.status == 404
    assert paths == ["/music/rest/ping.view?f=json"] * 2 + ["/music/musicbox/x"]
    for path in ("/rest/getOpenSubsonicExtensions", "/music/rest/getOpenSubsonicExtensions.view"):
        async with world.http.get(root + path, params={"f": "json"}) as resp:
            document = await resp.json()
        assert document["subsonic-response"]["openSubsonicExtensions"] == [
            {"name": "sonicSimilarity", "versions": [1]}
        ]
    assert paths[-2:] == ["/music/rest/getOpenSubsonicExtensions.view?f=json"] * 2


async def test_dead_upstream_is_a_clear_subsonic_error(world: World, variant: Any) -> None:
    dead = f"http://127.0.0.1:{find_free_port()}"
    url, _ = await variant(world.settings.model_copy(update={"navidrome_url": dead}), world.pool)
    params = {**world.auth(), "id": world.tracks["Dawn"]["id"]}
    for method in ("getSimilarSongs2", "stream", "ping"):
        async with world.http.get(f"{url}/{method}.view", params=params) as resp:
            document = await resp.json()
            assert resp.status == 200
        validate("error", document)
        error = document["subsonic-response"]["error"]
        assert error["code"] == 0 and dead in error["message"] and "cannot reach" in error["message"]
    async with world.http.get(url + "/getSimilarSongs2", params={**params, "f": "xml"}) as resp:
        root = parse_xml(await resp.read())
    error_el = root.find(NS + "error")
    assert root.attrib["status"] == "failed" and error_el is not None and error_el.attrib["code"] == "0"
    async with world.http.get(url.removesuffix("/rest") + "/app/") as resp:
        assert resp.status == 502 and dead in await resp.text()
