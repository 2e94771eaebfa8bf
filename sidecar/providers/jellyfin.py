"""Jellyfin (server 10.10 and 12) provider.

Authenticates with ``Authorization: MediaBrowser ..., Token="..."`` (Jellyfin 12 turns the
legacy ``X-Emby-Token`` header off by default).  Query parameter names are those of the
published OpenAPI document (camelCase; the server matches them case-insensitively).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sidecar.providers.base import Album, ProviderError, ProviderNotFound, ProviderRefused, Track
from sidecar.providers.http import HttpClient

PAGE_SIZE = 200
IDS_PER_REQUEST = 100
TRACK_FIELDS = "Path,Genres,DateCreated,ParentId"
ALBUM_FIELDS = "DateCreated,ChildCount"


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.rstrip("Z")
    if "." in text:  # .NET writes 7 fractional digits; Python takes at most 6
        head, frac = text.split(".", 1)
        tz = ""
        for sep in ("+", "-"):
            if sep in frac:
                frac, tz = frac.split(sep, 1)
                tz = sep + tz
        text = f"{head}.{frac[:6]}{tz}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def track_from_dto(item: dict[str, Any]) -> Track:
    """A Jellyfin ``BaseItemDto`` of type Audio as a :class:`Track`."""
    artists = item.get("Artists") or [a.get("Name", "") for a in item.get("ArtistItems") or []]
    ticks = item.get("RunTimeTicks")
    path = item.get("Path")
    suffix = item.get("Container") or (Path(path).suffix.lstrip(".") if path else None)
    return Track(
        item_id=str(item["Id"]),
        title=item.get("Name") or "",
        artist=", ".join(a for a in artists if a) or item.get("AlbumArtist") or "",
        album=item.get("Album") or "",
        album_artist=item.get("AlbumArtist") or "",
        album_id=item.get("AlbumId") or item.get("ParentId"),
        track_number=item.get("IndexNumber"),
        duration_s=ticks / 10_000_000 if isinstance(ticks, (int, float)) else None,
        year=item.get("ProductionYear"),
        genres=tuple(item.get("Genres") or ()),
        file_path=path,
        date_added=_parse_date(item.get("DateCreated")),
        suffix=(suffix.split(",")[0] or None) if suffix else None,
    )


class JellyfinProvider:
    name = "jellyfin"

    def __init__(
        self,
        url: str,
        user_id: str,
        token: str,
        *,
        timeout_s: float = 30,
        retries: int = 3,
        max_download_bytes: int = 1 << 30,
        backoff_s: float = 0.5,
    ) -> None:
        self.user_id = user_id
        self.max_download_bytes = max_download_bytes
        auth = (
            f'MediaBrowser Client="AudioMuse sidecar", Device="sidecar", DeviceId="audiomuse-sidecar", '
            f'Version="0.1.0", Token="{token}"'
        )
        self.http = HttpClient(
            "Jellyfin",
            url,
            timeout_s=timeout_s,
            retries=retries,
            backoff_s=backoff_s,
            headers={"Authorization": auth, "Accept": "application/json"},
        )

    async def close(self) -> None:
        await self.http.close()

    async def ping(self) -> str:
        info = await self.http.request_json("GET", "/System/Info", "GET /System/Info")
        user = await self.http.request_json("GET", f"/Users/{self.user_id}", f"GET /Users/{self.user_id}")
        return (
            f"Jellyfin {info.get('Version', '?')} at {self.http.base_url} "
            f"({info.get('ServerName', '?')}), user {user.get('Name', self.user_id)}"
        )

    async def _items(self, call: str, params: dict[str, Any]) -> dict[str, Any]:
        data = await self.http.request_json("GET", "/Items", call, params={"userId": self.user_id, **params})
        if not isinstance(data, dict) or not isinstance(data.get("Items"), list):
            raise ProviderError("Jellyfin", call, "answer is not a BaseItemDtoQueryResult")
        return data

    async def list_albums(self, limit: int | None = None) -> list[Album]:
        albums: list[Album] = []
        start = 0
        while limit is None or len(albums) < limit:
            page = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(albums))
            data = await self._items(
                "GET /Items (albums)",
                {
                    "includeItemTypes": "MusicAlbum",
                    "recursive": "true",
                    "sortBy": "DateCreated,SortName",
                    "sortOrder": "Descending",
                    "startIndex": start,
                    "limit": page,
                    "fields": ALBUM_FIELDS,
                    "enableImages": "false",
                    "enableUserData": "false",
                },
            )
            items = data["Items"]
            for it in items:
                albums.append(
                    Album(
                        id=str(it["Id"]),
                        name=it.get("Name") or "",
                        artist=it.get("AlbumArtist") or "",
                        year=it.get("ProductionYear"),
                        date_added=_parse_date(it.get("DateCreated")),
                        track_count=it.get("ChildCount"),
                    )
                )
            start += len(items)
            total = data.get("TotalRecordCount")
            if not items or (isinstance(total, int) and start >= total):
                break
        return albums

    async def album_tracks(self, album_id: str) -> list[Track]:
        data = await self._items(
            f"GET /Items (tracks of album {album_id})",
            {
                "parentId": album_id,
                "includeItemTypes": "Audio",
                "recursive": "true",
                "sortBy": "ParentIndexNumber,IndexNumber,SortName",
                "sortOrder": "Ascending",
                "fields": TRACK_FIELDS,
                "enableImages": "false",
                "enableUserData": "false",
            },
        )
        return [track_from_dto(it) for it in data["Items"] if it.get("Type", "Audio") == "Audio"]

    async def get_tracks(self, item_ids: Sequence[str]) -> list[Track]:
        found: dict[str, Track] = {}
        ids = list(dict.fromkeys(item_ids))
        for i in range(0, len(ids), IDS_PER_REQUEST):
            chunk = ids[i : i + IDS_PER_REQUEST]
            data = await self._items(
                "GET /Items (by ids)",
                {"ids": ",".join(chunk), "fields": TRACK_FIELDS, "enableImages": "false"},
            )
            for it in data["Items"]:
                if it.get("Type", "Audio") == "Audio":
                    t = track_from_dto(it)
                    found[t.item_id] = t
        return [found[i] for i in ids if i in found]

    @asynccontextmanager
    async def audio_file(self, track: Track, temp_dir: Path) -> AsyncIterator[Path]:
        suffix = f".{track.suffix}" if track.suffix else ""
        async with AsyncExitStack() as stack:
            try:
                path = await stack.enter_async_context(
                    self.http.download(
                        f"/Items/{track.item_id}/Download",
                        f"download {track.item_id}",
                        temp_dir,
                        max_bytes=self.max_download_bytes,
                        suffix=suffix,
                    )
                )
            except ProviderError as exc:
                # Users without the download permission get 403; some servers lack the route.
                if exc.status not in (403, 404, 405):
                    raise
                path = await stack.enter_async_context(
                    self.http.download(
                        f"/Audio/{track.item_id}/stream",
                        f"stream {track.item_id}",
                        temp_dir,
                        max_bytes=self.max_download_bytes,
                        suffix=suffix,
                        params={"static": "true"},
                    )
                )
            yield path

    async def create_playlist(
        self, name: str, track_ids: Sequence[str], replace_id: str | None = None
    ) -> str:
        if replace_id:
            try:
                await self.http.request_json(
                    "POST",
                    f"/Playlists/{replace_id}",
                    f"update playlist {replace_id}",
                    json={"Name": name, "Ids": list(track_ids)},
                )
                return replace_id
            except ProviderError as exc:
                if exc.status != 404:
                    raise
        data = await self.http.request_json(
            "POST",
            "/Playlists",
            "create playlist",
            json={"Name": name, "Ids": list(track_ids), "UserId": self.user_id, "MediaType": "Audio"},
        )
        if not isinstance(data, dict) or not data.get("Id"):
            raise ProviderError("Jellyfin", "create playlist", f"answer has no Id: {data!r:.120}")
        return str(data["Id"])

    async def delete_playlist(self, playlist_id: str, name: str) -> None:
        try:
            await self.http.request_json("DELETE", f"/Items/{playlist_id}", f"delete playlist {playlist_id}")
        except ProviderNotFound:
            return  # already removed
        except ProviderError as exc:
            if exc.status in (401, 403):
                raise ProviderRefused(
                    "Jellyfin",
                    f"delete playlist {playlist_id}",
                    f"playlist {name!r}: {exc.reason}",
                    status=409,
                ) from None
            raise
