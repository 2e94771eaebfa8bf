"""Playlists this service made, and mixes, as files: GET /api/playlists/list (every playlist in
the ``playlists`` table, with its songs), GET /api/playlists/{id}.m3u8, DELETE /api/playlists/{id}
(on the media server, then its row), and the ``.m3u8`` answer of GET /api/mix?format=m3u8
(:func:`m3u8_response`).  Locations and credentials: see
sidecar/playlist_export.py."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from aiohttp import web

from sidecar.db import playlists as playlists_db
from sidecar.playlist_export import Entry, in_order, render
from sidecar.web.errors import ApiError
from sidecar.web.keys import DB, PROVIDER, SETTINGS

routes = web.RouteTableDef()

CONTENT_TYPE = "audio/x-mpegurl"


async def _entries(request: web.Request, item_ids: Sequence[str]) -> list[Entry]:
    rows = await playlists_db.track_entries(request.app[DB], item_ids)
    return in_order(item_ids, {r["item_id"]: Entry(**dict(r)) for r in rows})


def _filename(name: str) -> str:
    """A file name for ``name``: a plain ASCII fallback, and the full name per RFC 6266."""
    plain = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" ._") or "playlist"
    return f"attachment; filename=\"{plain}.m3u8\"; filename*=UTF-8''{quote(name + '.m3u8', safe='')}"


async def m3u8_response(request: web.Request, name: str, item_ids: Sequence[str]) -> web.Response:
    """The tracks ``item_ids``, in that order, as an ``.m3u8`` playlist called ``name``."""
    text = render(request.app[SETTINGS], name, await _entries(request, item_ids))
    return web.Response(
        text=text,
        content_type=CONTENT_TYPE,
        charset="utf-8",
        headers={"Content-Disposition": _filename(name)},
    )


@routes.get("/api/playlists/list")
async def list_playlists(request: web.Request) -> web.Response:
    rows = await playlists_db.all_made(request.app[DB])
    ids = list(dict.fromkeys(i for r in rows for i in r["track_ids"]))
    known = {r["item_id"]: r for r in await playlists_db.track_entries(request.app[DB], ids)}
    out: list[dict[str, Any]] = []
    for r in rows:
        songs = [
            {"item_id": i, "title": known[i]["title"], "author": known[i]["artist"]}
            for i in r["track_ids"]
            if i in known
        ]
        out.append(
            {
                "playlist_id": r["playlist_id"],
                "name": r["name"],
                "kind": r["kind"],
                "provider": r["provider"],
                "provider_playlist_id": r["provider_playlist_id"],
                "track_count": len(r["track_ids"]),
                "missing_tracks": len(r["track_ids"]) - len(songs),
                "created_at": r["created_at"].isoformat(),
                "updated_at": r["updated_at"].isoformat(),
                "m3u8": f"/api/playlists/{r['playlist_id']}.m3u8",
                "songs": songs,
            }
        )
    return web.json_response(out)


@routes.get("/api/playlists/{playlist_id}.m3u8")
async def playlist_m3u8(request: web.Request) -> web.Response:
    raw = request.match_info["playlist_id"]
    row = (
        await playlists_db.made(request.app[DB], int(raw))
        if raw.isascii() and raw.isdigit() and len(raw) <= 18
        else None
    )
    if row is None:
        raise ApiError(404, "no playlist made by this service has this id", raw)
    return await m3u8_response(request, row["name"], row["track_ids"])


@routes.delete("/api/playlists/{playlist_id}")
async def delete_playlist(request: web.Request) -> web.Response:
    """Delete a playlist this service made, named by our id or the media server's: first on the
    media server (already gone there counts as deleted), then its row.  A refusal of the media
    server (not ours any more, not allowed) is answered by the error middleware; the row stays."""
    raw = request.match_info["playlist_id"]
    db, provider = request.app[DB], request.app[PROVIDER]
    rows = await playlists_db.matching(db, raw, provider.name)
    if not rows:
        raise ApiError(404, "no playlist made by this service has this id", raw)
    if len(rows) > 1:
        raise ApiError(
            409,
            f"{raw!r} is our id of one playlist and the media server's id of another: give our id",
            [{"playlist_id": r["playlist_id"], "name": r["name"]} for r in rows],
        )
    row = rows[0]
    if row["provider"] != provider.name:
        raise ApiError(
            409,
            f"this playlist was written to the {row['provider']} media server, not to {provider.name}",
            "it can be deleted only while the service uses that media server",
        )
    await provider.delete_playlist(row["provider_playlist_id"], row["name"])
    await playlists_db.forget(db, row["playlist_id"])
    return web.json_response(
        {
            "deleted": True,
            "playlist_id": row["playlist_id"],
            "provider_playlist_id": row["provider_playlist_id"],
            "name": row["name"],
        }
    )
