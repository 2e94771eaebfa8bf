"""Navidrome / any Subsonic server provider.

Authentication: salted token (``u``, ``t`` = md5(password + salt), ``s``) first; when the
server answers that it does not support tokens (error 41, or 40 from servers that only know
passwords), the same call is retried with ``p=enc:<hex>`` and password auth is kept from then
on.  Subsonic reports errors with HTTP 200 and ``status="failed"``: they become
:class:`ProviderError` subclasses naming the call, the code and the server's message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import aiohttp

from sidecar.providers.base import (
    Album,
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRefused,
    Track,
)
from sidecar.providers.http import HttpClient

API_VERSION = "1.12.0"
CLIENT_NAME = "AudioMuse-sidecar"
PAGE_SIZE = 500
AUTH_CODES = {40, 41, 42, 43, 44}
TOKEN_REFUSED_CODES = {10, 40, 41}


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def track_from_child(song: dict[str, Any]) -> Track:
    """A Subsonic ``Child`` (song) as a :class:`Track`."""
    genres = [g.get("name", "") for g in song.get("genres") or [] if isinstance(g, dict)]
    if not genres and song.get("genre"):
        genres = [song["genre"]]
    return Track(
        item_id=str(song["id"]),
        title=song.get("title") or "",
        artist=song.get("artist") or "",
        album=song.get("album") or "",
        album_artist=song.get("displayAlbumArtist") or song.get("albumArtist") or song.get("artist") or "",
        album_id=str(song["albumId"])
        if song.get("albumId") is not None
        else (str(song["parent"]) if song.get("parent") is not None else None),
        track_number=song.get("track"),
        duration_s=float(song["duration"]) if isinstance(song.get("duration"), (int, float)) else None,
        year=song.get("year"),
        genres=tuple(g for g in genres if g),
        file_path=song.get("path"),
        date_added=_parse_date(song.get("created")),
        suffix=song.get("suffix"),
    )


class SubsonicError(ProviderError):
    """The server answered status="failed"."""

    def __init__(self, server: str, call: str, code: int, message: str) -> None:
        self.code = code
        super().__init__(server, call, f"Subsonic error {code}: {message}")


class SubsonicProvider:
    name = "navidrome"

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        *,
        timeout_s: float = 30,
        retries: int = 3,
        max_download_bytes: int = 1 << 30,
        backoff_s: float = 0.5,
        server_label: str = "Subsonic",
    ) -> None:
        self.user = user
        self._password = password
        self.server = server_label
        self.use_password_auth = False
        self._auth_known = False
        self.max_download_bytes = max_download_bytes
        self.http = HttpClient(server_label, url, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)

    async def close(self) -> None:
        await self.http.close()

    # -- protocol -------------------------------------------------------------------------
    def auth_params(self) -> dict[str, str]:
        base = {"u": self.user, "v": API_VERSION, "c": CLIENT_NAME}
        if self.use_password_auth:
            return {**base, "p": "enc:" + self._password.encode().hex()}
        salt = secrets.token_hex(8)
        token = hashlib.md5((self._password + salt).encode()).hexdigest()
        return {**base, "t": token, "s": salt}

    def _check(self, call: str, data: Any) -> dict[str, Any]:
        body = data.get("subsonic-response") if isinstance(data, dict) else None
        if not isinstance(body, dict):
            raise ProviderError(self.server, call, "answer is not a subsonic-response")
        if body.get("status") == "ok":
            return body
        err = body.get("error") or {}
        code = int(err.get("code", 0)) if str(err.get("code", "0")).isdigit() else 0
        message = str(err.get("message") or "unknown error")
        if code in AUTH_CODES:
            exc: ProviderError = ProviderAuthError(self.server, call, f"Subsonic error {code}: {message}")
            exc.code = code  # type: ignore[attr-defined]
            raise exc
        if code == 70:
            raise ProviderNotFound(self.server, call, f"Subsonic error 70: {message}")
        raise SubsonicError(self.server, call, code, message)

    async def call(
        self, method: str, params: dict[str, Any] | list[tuple[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Call ``/rest/<method>.view`` with f=json; return the subsonic-response body."""
        extra = list(params.items()) if isinstance(params, dict) else list(params or [])
        while True:
            query = [*self.auth_params().items(), ("f", "json"), *extra]
            data = await self.http.request_json("GET", f"/rest/{method}.view", method, params=query)
            try:
                body = self._check(method, data)
                self._auth_known = True
                return body
            except ProviderError as exc:
                code = getattr(exc, "code", None)
                if not self.use_password_auth and code in TOKEN_REFUSED_CODES:
                    # The server does not take tokens (41; 40 from password-only servers; supysonic
                    # answers 10, "p" missing): retry with the password and keep using it.
                    self.use_password_auth = True
                    continue
                if code in (40, 41):
                    raise ProviderAuthError(
                        self.server, method, f"wrong user name or password for {self.user!r} ({exc.reason})"
                    ) from None
                raise

    # -- MediaProvider ---------------------------------------------------------------------
    async def ping(self) -> str:
        body = await self.call("ping")
        kind = body.get("type") or "Subsonic"
        version = body.get("serverVersion") or body.get("version") or "?"
        auth = "password" if self.use_password_auth else "token"
        return f"{kind} {version} at {self.http.base_url}, user {self.user} ({auth} auth)"

    async def list_albums(self, limit: int | None = None) -> list[Album]:
        albums: list[Album] = []
        offset = 0
        while limit is None or len(albums) < limit:
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(albums))
            body = await self.call("getAlbumList2", {"type": "newest", "size": size, "offset": offset})
            page = (body.get("albumList2") or {}).get("album") or []
            for a in page:
                albums.append(
                    Album(
                        id=str(a["id"]),
                        name=a.get("name") or a.get("title") or "",
                        artist=a.get("artist") or "",
                        year=a.get("year"),
                        date_added=_parse_date(a.get("created")),
                        track_count=a.get("songCount"),
                    )
                )
            offset += len(page)
            if len(page) < size:
                break
        return albums

    async def album_tracks(self, album_id: str) -> list[Track]:
        body = await self.call("getAlbum", {"id": album_id})
        songs = (body.get("album") or {}).get("song") or []
        return [track_from_child(s) for s in songs if not s.get("isVideo")]

    async def get_tracks(self, item_ids: Sequence[str]) -> list[Track]:
        sem = asyncio.Semaphore(8)

        async def one(item_id: str) -> Track | None:
            async with sem:
                try:
                    body = await self.call("getSong", {"id": item_id})
                except ProviderNotFound:
                    return None
            song = body.get("song")
            return track_from_child(song) if isinstance(song, dict) else None

        ids = list(dict.fromkeys(item_ids))
        results = await asyncio.gather(*(one(i) for i in ids))
        return [t for t in results if t is not None]

    async def _reject_error_body(self, resp: aiohttp.ClientResponse) -> None:
        """A download answered with a Subsonic document instead of audio: raise its error."""
        ctype = resp.headers.get("Content-Type", "")
        if "json" not in ctype and "xml" not in ctype:
            return
        text = await resp.text(errors="replace")
        if "json" in ctype:
            self._check("download", json.loads(text))
        else:
            root = ElementTree.fromstring(text)
            err = next((el for el in root.iter() if el.tag.endswith("error")), None)
            if err is not None:
                self._check(
                    "download", {"subsonic-response": {"status": "failed", "error": dict(err.attrib)}}
                )
        raise ProviderError(
            self.server, "download", f"server answered {ctype} instead of audio: {text[:160]}"
        )

    async def _ensure_auth_mode(self) -> None:
        """Downloads carry auth in the URL: find out once whether the server takes tokens."""
        if not self._auth_known:
            await self.call("ping")

    @asynccontextmanager
    async def audio_file(self, track: Track, temp_dir: Path) -> AsyncIterator[Path]:
        suffix = f".{track.suffix}" if track.suffix else ""
        await self._ensure_auth_mode()
        async with AsyncExitStack() as stack:
            try:
                path = await stack.enter_async_context(
                    self.http.download(
                        "/rest/download.view",
                        f"download {track.item_id}",
                        temp_dir,
                        max_bytes=self.max_download_bytes,
                        suffix=suffix,
                        check=self._reject_error_body,
                        params=[*self.auth_params().items(), ("id", track.item_id)],
                    )
                )
            except (SubsonicError, ProviderNotFound):
                # download may be disabled for the user (error 50) or missing: stream the original.
                path = await stack.enter_async_context(
                    self.http.download(
                        "/rest/stream.view",
                        f"stream {track.item_id}",
                        temp_dir,
                        max_bytes=self.max_download_bytes,
                        suffix=suffix,
                        check=self._reject_error_body,
                        params=[*self.auth_params().items(), ("id", track.item_id), ("format", "raw")],
                    )
                )
            yield path

    async def create_playlist(
        self, name: str, track_ids: Sequence[str], replace_id: str | None = None
    ) -> str:
        songs = [("songId", i) for i in track_ids]
        if replace_id:
            try:
                await self.call("createPlaylist", [("playlistId", replace_id), *songs])
                return replace_id
            except ProviderNotFound:
                pass
        body = await self.call("createPlaylist", [("name", name), *songs])
        playlist = body.get("playlist")
        if isinstance(playlist, dict) and playlist.get("id") is not None:
            return str(playlist["id"])
        # API < 1.14 answers with an empty body: find the newest playlist with that name.
        lists = (await self.call("getPlaylists")).get("playlists", {}).get("playlist") or []
        mine = [p for p in lists if p.get("name") == name]
        if not mine:
            raise ProviderError(self.server, "createPlaylist", f"playlist {name!r} not found after creation")
        mine.sort(key=lambda p: p.get("created") or "", reverse=True)
        return str(mine[0]["id"])

    async def delete_playlist(self, playlist_id: str, name: str) -> None:
        try:
            await self.call("deletePlaylist", {"id": playlist_id})
        except ProviderNotFound:
            return  # already removed
        except ProviderError as exc:
            code = getattr(exc, "code", None)
            if code == 50 or exc.status == 403:  # 50: "not authorized" (not the owner)
                raise ProviderRefused(
                    self.server,
                    "deletePlaylist",
                    f"playlist {name!r} ({playlist_id}): {exc.reason}",
                    status=409,
                ) from None
            raise
