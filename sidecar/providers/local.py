"""Local-folder provider: a music folder on disk is the library.

* Tracks are files with an audio extension (or no extension but an audio header, as some
  Debian game packages ship) under LOCAL_MUSIC_DIR; tags come from mutagen.
* Ids are stable: the track id is the md5 of the file's path relative to the folder (32 hex
  characters, like a Jellyfin id); the album id is the md5 of album artist + album title
  (or of the folder, for untagged files).  Moving a file gives it a new id.
* "Date added" is the file's modification time; albums sort by their newest track.
* Playlists are written as UTF-8 ``.m3u8`` files (relative paths) in LOCAL_PLAYLIST_DIR,
  where Jellyfin and Navidrome pick them up; the playlist id is the file name's stem.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sidecar.providers.base import Album, ProviderError, ProviderNotFound, Track

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset({
    ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".wav", ".wma", ".aif", ".aiff",
    ".ape", ".wv", ".mpc", ".spx", ".mod", ".xm", ".s3m", ".it",
})


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8", "surrogateescape")).hexdigest()


def _first(tags: Any, key: str) -> str:
    try:
        values = tags.get(key) if tags is not None else None
    except (KeyError, ValueError):
        values = None
    if not values:
        return ""
    return str(values[0]).strip()


def _int_prefix(text: str) -> int | None:
    m = re.match(r"\s*(\d+)", text)
    return int(m.group(1)) if m else None


def read_track(root: Path, path: Path) -> Track | None:
    """Metadata of one file, or None when it is not audio at all."""
    import mutagen

    try:
        audio = mutagen.File(path, easy=True)
    except Exception as exc:  # mutagen raises many types for damaged files
        log.debug("tags of %s unreadable: %s", path, exc)
        audio = None
    if audio is None and path.suffix.lower() not in AUDIO_EXTENSIONS:
        return None  # no extension and no audio header: not music
    tags = getattr(audio, "tags", None) if audio is not None else None
    rel = path.relative_to(root).as_posix()
    title = _first(tags, "title") or path.stem
    artist = _first(tags, "artist")
    album = _first(tags, "album")
    album_artist = _first(tags, "albumartist") or artist
    if album:
        album_key = f"album\0{album_artist.casefold()}\0{album.casefold()}"
    else:
        album_key = f"folder\0{path.parent.relative_to(root).as_posix()}"
        album = path.parent.name if path.parent != root else ""
    genres = tuple(g.strip() for g in (tags.get("genre") if tags is not None and "genre" in tags else [])
                   if g and g.strip())
    length = getattr(getattr(audio, "info", None), "length", None)
    stat = path.stat()
    return Track(
        item_id=_md5(rel),
        title=title,
        artist=artist,
        album=album,
        album_artist=album_artist,
        album_id=_md5(album_key),
        track_number=_int_prefix(_first(tags, "tracknumber")),
        duration_s=float(length) if length else None,
        year=_int_prefix(_first(tags, "date") or _first(tags, "originaldate")),
        genres=genres,
        file_path=str(path),
        date_added=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        suffix=path.suffix.lstrip(".").lower() or None,
    )


def scan(root: Path, skip: Path | None = None) -> list[Track]:
    tracks: list[Track] = []
    skip_resolved = skip.resolve() if skip is not None else None
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (skip_resolved is None or (here / d).resolve() != skip_resolved))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            suffix = path.suffix.lower()
            if suffix and suffix not in AUDIO_EXTENSIONS:
                continue
            try:
                track = read_track(root, path)
            except OSError as exc:
                log.warning("local: cannot read %s: %s", path, exc)
                continue
            if track is not None:
                tracks.append(track)
    return tracks


def _playlist_stem(name: str) -> str:
    stem = re.sub(r"[^\w\- .()&'+,]", "_", name, flags=re.UNICODE).strip(" .")
    return stem[:120] or "playlist"


class LocalProvider:
    name = "local"

    def __init__(self, music_dir: Path, playlist_dir: Path) -> None:
        self.music_dir = music_dir
        self.playlist_dir = playlist_dir
        self._tracks: dict[str, Track] = {}
        self._albums: dict[str, list[Track]] = {}
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        return None

    async def ping(self) -> str:
        if not self.music_dir.is_dir():
            raise ProviderError("local", "open music folder", f"{self.music_dir} is not a folder")
        if not os.access(self.music_dir, os.R_OK | os.X_OK):
            raise ProviderError("local", "open music folder", f"{self.music_dir} is not readable")
        return f"local folder {self.music_dir.resolve()}"

    async def rescan(self) -> None:
        async with self._lock:
            tracks = await asyncio.to_thread(scan, self.music_dir, self.playlist_dir)
            self._tracks = {t.item_id: t for t in tracks}
            albums: dict[str, list[Track]] = {}
            for t in tracks:
                albums.setdefault(t.album_id or "", []).append(t)
            for items in albums.values():
                items.sort(key=lambda t: (t.track_number is None, t.track_number or 0, t.title.casefold()))
            self._albums = albums

    async def list_albums(self, limit: int | None = None) -> list[Album]:
        await self.rescan()
        albums = []
        for album_id, items in self._albums.items():
            newest = max((t.date_added for t in items if t.date_added), default=None)
            first = items[0]
            albums.append(Album(id=album_id, name=first.album, artist=first.album_artist,
                                year=first.year, date_added=newest, track_count=len(items)))
        epoch = datetime.min.replace(tzinfo=UTC)
        albums.sort(key=lambda a: (a.date_added or epoch, a.name), reverse=True)
        return albums if limit is None else albums[:limit]

    async def album_tracks(self, album_id: str) -> list[Track]:
        if album_id not in self._albums:
            await self.rescan()
        if album_id not in self._albums:
            raise ProviderNotFound("local", f"album {album_id}", "no such album in the music folder")
        return list(self._albums[album_id])

    async def get_tracks(self, item_ids: Sequence[str]) -> list[Track]:
        if any(i not in self._tracks for i in item_ids):
            await self.rescan()
        return [self._tracks[i] for i in dict.fromkeys(item_ids) if i in self._tracks]

    @asynccontextmanager
    async def audio_file(self, track: Track, temp_dir: Path) -> AsyncIterator[Path]:
        # The file is already local: no copy, and nothing to delete afterwards.
        path = Path(track.file_path or "")
        if not path.is_file():
            raise ProviderNotFound("local", f"open {track.item_id}", f"{path} no longer exists")
        yield path

    async def create_playlist(self, name: str, track_ids: Sequence[str], replace_id: str | None = None) -> str:
        tracks = await self.get_tracks(track_ids)
        missing = set(track_ids) - {t.item_id for t in tracks}
        if missing:
            raise ProviderNotFound("local", "create playlist", f"unknown track ids: {sorted(missing)[:5]}")
        stem = replace_id or _playlist_stem(name)
        self.playlist_dir.mkdir(parents=True, exist_ok=True)
        target = self.playlist_dir / f"{stem}.m3u8"
        lines = ["#EXTM3U", f"#PLAYLIST:{name}"]
        for t in tracks:
            seconds = int(round(t.duration_s)) if t.duration_s else -1
            label = f"{t.artist} - {t.title}" if t.artist else t.title
            lines.append(f"#EXTINF:{seconds},{label}")
            lines.append(Path(os.path.relpath(t.file_path or "", self.playlist_dir)).as_posix())
        tmp = target.with_suffix(".m3u8.tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        return stem
