"""Similarity and mixes (names and shapes compatible with AudioMuse-AI):
GET /api/similar_tracks, GET /api/similar_artists, GET /api/search_tracks, GET /api/search_albums,
GET /api/search_artists, GET /api/find_path, GET /api/mix, POST /api/create_playlist."""

from __future__ import annotations

import unicodedata
from dataclasses import asdict
from typing import Any

from aiohttp import web

from sidecar.db import playlists
from sidecar.mix.engine import Candidate, MixResult, total_distance
from sidecar.routes.params import bool_param, int_param, list_param, str_param
from sidecar.routes.playlists import m3u8_response
from sidecar.similarity import store
from sidecar.similarity.service import MixKind, MixService
from sidecar.web.errors import ApiError, read_json_object
from sidecar.web.keys import DB, PROVIDER, SETTINGS

routes = web.RouteTableDef()

MAX_N = 500


def track_json(c: Candidate) -> dict[str, Any]:
    return {
        "item_id": c.item_id,
        "title": c.title,
        "author": c.artist,
        "album": c.album,
        "album_id": c.album_id,
        "distance": round(float(c.distance), 6),
    }


def service(request: web.Request) -> MixService:
    return MixService(request.app[DB], request.app[SETTINGS])


@routes.get("/api/similar_tracks")
async def similar_tracks(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    n = int_param(request, "n", 10, 1, MAX_N)
    dedupe = bool_param(request, "eliminate_duplicates", settings.similarity_eliminate_duplicates_default)
    bool_param(request, "radius_similarity", True)  # accepted for AudioMuse-AI plugins; order is by distance
    item_id = str_param(request, "item_id")
    svc = service(request)
    seed: Candidate | str
    if item_id:
        seed = item_id
    else:
        title, artist = str_param(request, "title"), str_param(request, "artist")
        if not title or not artist:
            raise ApiError(400, "give item_id, or title and artist")
        seed = await svc.seed_by_title_artist(title, artist)
    tracks = await svc.similar(seed, n, dedupe)
    return web.json_response([track_json(c) for c in tracks])


@routes.get("/api/similar_artists")
async def similar_artists(request: web.Request) -> web.Response:
    artist = str_param(request, "artist") or str_param(request, "artist_id")
    if not artist:
        raise ApiError(400, "give artist (a name)")
    n = int_param(request, "n", 10, 1, 200)
    details = bool_param(request, "include_component_matches", False)
    matches = await service(request).similar_artists(artist, n)
    out = []
    for m in matches:
        item: dict[str, Any] = {"artist": m.artist, "artist_id": None, "divergence": round(m.divergence, 6)}
        if details:
            item["component_matches"] = [
                {
                    "query_track": track_json(a),
                    "match_track": track_json(b),
                    "distance": round(float(b.distance), 6),
                }
                for a, b in m.pairs
            ]
        out.append(item)
    return web.json_response(out)


@routes.get("/api/search_tracks")
async def search_tracks(request: web.Request) -> web.Response:
    query = str_param(request, "search_query") or " ".join(
        v for v in (str_param(request, "title"), str_param(request, "artist")) if v
    )
    if not query:
        raise ApiError(400, "search_query is required")
    start, end = _window(request)
    rows = await store.search_tracks(request.app[DB], query, start, end - start)
    return web.json_response(
        [
            {
                "item_id": r["item_id"],
                "title": r["title"],
                "author": r["artist"],
                "album": r["album"],
                "album_id": r["album_id"],
                "analyzed": r["analysis_status"] == "analyzed",
            }
            for r in rows
        ]
    )


def _window(request: web.Request) -> tuple[int, int]:
    """``start`` and ``end`` of a page of search results (at most 200)."""
    start = int_param(request, "start", 0, 0, 1_000_000)
    return start, int_param(request, "end", start + 20, start, start + 200)


def _name_query(request: web.Request) -> str:
    query = str_param(request, "query") or str_param(request, "search_query")
    if not query:
        raise ApiError(400, "query is required", "e.g. ?query=abbey road")
    return query


@routes.get("/api/search_albums")
async def search_albums(request: web.Request) -> web.Response:
    query = _name_query(request)
    start, end = _window(request)
    hits = await store.search_albums(request.app[DB], query, start, end - start)
    return web.json_response([asdict(h) for h in hits])


@routes.get("/api/search_artists")
async def search_artists(request: web.Request) -> web.Response:
    query = _name_query(request)
    start, end = _window(request)
    hits = await store.search_artists(request.app[DB], query, start, end - start)
    return web.json_response([asdict(h) for h in hits])


@routes.get("/api/find_path")
async def find_path(request: web.Request) -> web.Response:
    start_id = str_param(request, "start_song_id", required=True)
    end_id = str_param(request, "end_song_id", required=True)
    steps = int_param(request, "max_steps", request.app[SETTINGS].path_default_length, 2, 200)
    if start_id == end_id:
        raise ApiError(400, "start_song_id and end_song_id are the same track")
    svc = service(request)
    start = await svc.song_seed(start_id or "")
    end = await svc.song_seed(end_id or "")
    result: MixResult = await svc.path(start, end, steps)
    return web.json_response(
        {
            "path": [track_json(c) for c in result.tracks],
            "total_distance": round(total_distance(result.tracks), 6),
            "relaxed": result.relaxed,
        }
    )


@routes.get("/api/mix")
async def mix(request: web.Request) -> web.Response:
    seed = str_param(request, "seed", required=True) or ""
    raw_kind = (str_param(request, "kind") or "song").lower()
    try:
        kind = MixKind(raw_kind)
    except ValueError:
        raise ApiError(400, "kind must be one of song, album, artist, playlist, genre", raw_kind) from None
    n = int_param(request, "n", 50, 1, MAX_N)
    previous = list_param(request, "previous")
    answer = (str_param(request, "format") or "json").lower()
    if answer not in ("json", "m3u8"):
        raise ApiError(400, "format must be json or m3u8", answer)
    result, resolved = await service(request).mix_by_name(kind, seed, n, previous)
    if answer == "m3u8":
        return await m3u8_response(request, f"{kind.value} mix {seed}", [c.item_id for c in result.tracks])
    return web.json_response(
        {
            "kind": kind.value,
            "seed": seed,
            "resolved": asdict(resolved) if resolved is not None else None,
            "items": [track_json(c) for c in result.tracks],
            "relaxed": result.relaxed,
        }
    )


@routes.post("/api/create_playlist")
async def create_playlist(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    name = body.get("playlist_name")
    ids = body.get("track_ids")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "playlist_name must be a non-empty string")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise ApiError(
            400, "playlist_name must be one line of text", "no line breaks, tabs or control characters"
        )
    if len(name) > 200:
        raise ApiError(400, "playlist_name may hold at most 200 characters", len(name))
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise ApiError(400, "track_ids must be a non-empty list of track ids")
    if len(ids) > 5000:
        raise ApiError(400, "track_ids may hold at most 5000 ids", len(ids))
    ids = list(dict.fromkeys(ids))  # each track once, in the order given: track_count is what is written
    db, provider = request.app[DB], request.app[PROVIDER]
    name = name.strip()
    existing = await playlists.provider_id(db, provider.name, "similar", name)
    playlist_id = await provider.create_playlist(name, ids, replace_id=existing)
    await playlists.record(db, provider.name, "similar", name, ids, playlist_id)
    return web.json_response({"playlist_id": playlist_id, "name": name, "track_count": len(ids)}, status=201)
