"""Local-folder provider: a music folder on disk is the library.

* Tracks are regular files (or symlinks to one) with an audio extension (or no extension but an
  audio header, as some Debian game packages ship) under LOCAL_MUSIC_DIR; tags come from mutagen.
  FIFOs, sockets and devices are never opened; each real folder is walked once, so a symlink loop
  lists nothing twice.  A scan that takes longer than ``scan_timeout_s`` (a hung network mount)
  fails with a ProviderError naming the folder instead of hanging.
* Ids are stable: the track id is the md5 of the file's path relative to the folder (32 hex
  characters, like a Jellyfin id); the album id is the md5 of album artist + album title
  (or of the folder, for untagged files).  Moving a file gives it a new id.
* Every text a Track carries is valid UTF-8 without NUL (what PostgreSQL stores): a file name that
  is not UTF-8 shows U+FFFD in ``file_path`` and ``title``; the provider opens files through its
  own id -> real path map, never through ``Track.file_path``.
* "Date added" is the file's modification time; albums sort by their newest track.
* Playlists are ``.m3u8`` files (relative paths) in LOCAL_PLAYLIST_DIR, where Jellyfin and
  Navidrome pick them up; the playlist id is the file name's stem.  The rules that keep them from
  overwriting anything else are in :mod:`sidecar.providers.local_playlists`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sidecar.providers.base import Album, ProviderError, ProviderNotFound, Track
from sidecar.providers.local_playlists import Entry, check_name, write_playlist
from sidecar.providers.local_playlists import delete_playlist as delete_playlist_file

log = logging.getLogger(__name__)

T = TypeVar("T")

AUDIO_EXTENSIONS = frozenset(
    {
        ".mp3",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".m4a",
        ".mp4",
        ".aac",
        ".wav",
        ".wma",
        ".aif",
        ".aiff",
        ".ape",
        ".wv",
        ".mpc",
        ".spx",
        ".mod",
        ".xm",
        ".s3m",
        ".it",
    }
)
#: default bound of one scan of the music folder, in seconds
SCAN_TIMEOUT_S = 600.0
#: bound of one operation on a single file (stat before analysis, writing a playlist), in seconds
FILE_TIMEOUT_S = 60.0


class ScanTimeout(Exception):
    """The scan went past its deadline (raised between two files)."""


def clean_text(text: str) -> str:
    """``text`` as valid UTF-8 without NUL: undecodable file-name bytes and lone surrogates become U+FFFD/?."""
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8", "surrogateescape")).hexdigest()


def _first(tags: Any, key: str) -> str:
    try:
        values = tags.get(key) if tags is not None else None
    except (KeyError, ValueError):
        values = None
    if not values:
        return ""
    return clean_text(str(values[0])).strip()


def _int_prefix(text: str) -> int | None:
    m = re.match(r"\s*(\d+)", text)
    return int(m.group(1)) if m else None


def _nonblocking(path: str, flags: int) -> int:
    # a FIFO swapped in after the stat check must not block the open
    return os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)


def read_track(root: Path, path: str) -> Track | None:
    """Metadata of one file, or None when it is not audio at all or not a regular file."""
    import mutagen

    p = Path(path)
    with open(path, "rb", opener=_nonblocking) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        try:
            audio = mutagen.File(f, easy=True)
        except Exception as exc:  # mutagen raises many types for damaged files
            log.debug("tags of %s unreadable: %s", clean_text(path), exc)
            audio = None
    if audio is None and p.suffix.lower() not in AUDIO_EXTENSIONS:
        return None  # no extension and no audio header: not music
    tags = getattr(audio, "tags", None) if audio is not None else None
    rel = p.relative_to(root).as_posix()
    title = _first(tags, "title") or clean_text(p.stem)
    artist = _first(tags, "artist")
    album = _first(tags, "album")
    album_artist = _first(tags, "albumartist") or artist
    if album:
        album_key = f"album\0{album_artist.casefold()}\0{album.casefold()}"
    else:
        album_key = f"folder\0{p.parent.relative_to(root).as_posix()}"
        album = clean_text(p.parent.name) if p.parent != root else ""
    try:
        raw_genres = tags.get("genre") if tags is not None and "genre" in tags else None
    except (KeyError, ValueError):
        raw_genres = None
    genres = tuple(g for g in (clean_text(str(v)).strip() for v in raw_genres or []) if g)
    length = getattr(getattr(audio, "info", None), "length", None)
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
        file_path=clean_text(path),
        date_added=datetime.fromtimestamp(st.st_mtime, tz=UTC),
        suffix=p.suffix.lstrip(".").lower() or None,
    )


def _dir_key(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def scan(root: Path, skip: Path | None = None, deadline: float | None = None) -> list[tuple[Track, str]]:
    """Every track under ``root`` with its real path (as the OS spells it); blocking.

    ``skip`` (the playlist folder) is not entered.  Raises :class:`ScanTimeout` once
    ``time.monotonic()`` passes ``deadline``.
    """
    found: list[tuple[Track, str]] = []
    root_key = _dir_key(root)
    if root_key is None:
        return found
    visited = {root_key}
    skip_key = _dir_key(skip) if skip is not None else None

    def check_deadline() -> None:
        if deadline is not None and time.monotonic() > deadline:
            raise ScanTimeout

    def unreadable(exc: OSError) -> None:
        log.warning("local: cannot list %s: %s", clean_text(str(exc.filename)), exc.strerror or exc)

    for dirpath, dirnames, filenames in os.walk(os.fspath(root), onerror=unreadable, followlinks=True):
        check_deadline()
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            key = _dir_key(os.path.join(dirpath, d))
            if key is None or key in visited or key == skip_key:
                continue  # vanished, a loop or a second way to a folder already walked, or the playlists
            visited.add(key)
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            check_deadline()
            suffix = os.path.splitext(name)[1].lower()
            if name.startswith(".") or (suffix and suffix not in AUDIO_EXTENSIONS):
                continue
            path = os.path.join(dirpath, name)
            try:
                if not stat.S_ISREG(os.stat(path).st_mode):
                    log.info(
                        "local: %s is not a regular file (FIFO, socket, device?): skipped", clean_text(path)
                    )
                    continue
                track = read_track(root, path)
            except OSError as exc:
                log.warning("local: cannot read %s: %s", clean_text(path), exc.strerror or exc)
                continue
            if track is not None:
                found.append((track, path))
    return found


def _in_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run blocking ``fn`` in a daemon thread: one stuck on a dead mount never blocks the exit."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, exc: BaseException | None) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def run() -> None:
        try:
            result, exc = fn(*args), None
        except BaseException as e:  # handed to the awaiting task
            result, exc = None, e
        with suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, exc)

    # an outcome nobody awaits any more (the caller timed out) is not an "exception never retrieved"
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    threading.Thread(target=run, name=f"local-{getattr(fn, '__name__', 'io')}", daemon=True).start()
    return fut


def _check_folder(path: Path) -> tuple[str | None, str]:
    """(what is wrong with the music folder or None, its resolved path)."""
    if not path.is_dir():
        return "is not a folder", ""
    if not os.access(path, os.R_OK | os.X_OK):
        return "is not readable", ""
    return None, os.fspath(path.resolve())


class LocalProvider:
    name = "local"

    def __init__(self, music_dir: Path, playlist_dir: Path, scan_timeout_s: float = SCAN_TIMEOUT_S) -> None:
        self.music_dir = music_dir
        self.playlist_dir = playlist_dir
        self.scan_timeout_s = scan_timeout_s
        self.file_timeout_s = min(FILE_TIMEOUT_S, scan_timeout_s)
        self._tracks: dict[str, Track] = {}
        self._paths: dict[str, str] = {}  # item id -> real path, as the OS spells it
        self._albums: dict[str, list[Track]] = {}
        self._lock = asyncio.Lock()
        self._playlist_lock = asyncio.Lock()
        self._scan: asyncio.Future[list[tuple[Track, str]]] | None = None
        self._scan_started = 0.0

    async def close(self) -> None:
        return None

    def _folder_text(self) -> str:
        return clean_text(os.fspath(self.music_dir))

    async def _blocking(self, call: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.wait_for(_in_thread(fn, *args), self.file_timeout_s)
        except TimeoutError:
            raise ProviderError(
                "local", call, f"no answer from the file system within {self.file_timeout_s:g} s"
            ) from None

    async def ping(self) -> str:
        problem, resolved = await self._blocking("open music folder", _check_folder, self.music_dir)
        if problem:
            raise ProviderError("local", "open music folder", f"{self._folder_text()} {problem}")
        return f"local folder {clean_text(resolved)}"

    async def rescan(self) -> None:
        async with self._lock:
            if self._scan is not None and self._scan.done():  # a timed-out scan that ended since: stale
                self._scan = None
            if self._scan is None:
                self._scan_started = time.monotonic()
                self._scan = _in_thread(
                    scan, self.music_dir, self.playlist_dir, self._scan_started + self.scan_timeout_s
                )
            running = self._scan
            remaining = self._scan_started + self.scan_timeout_s - time.monotonic()
            try:
                found = await asyncio.wait_for(asyncio.shield(running), max(remaining, 0.0))
            except (TimeoutError, ScanTimeout):
                # a scan stuck in one file operation keeps its thread; the next rescan waits for
                # that one (until its deadline) instead of starting another
                raise ProviderError(
                    "local",
                    "scan music folder",
                    f"{self._folder_text()}: the scan did not "
                    f"finish within {self.scan_timeout_s:g} s (a file or folder that never "
                    "answers, e.g. a hung network mount?)",
                ) from None
            finally:
                if running.done():
                    self._scan = None
            self._tracks = {t.item_id: t for t, _ in found}
            self._paths = {t.item_id: path for t, path in found}
            albums: dict[str, list[Track]] = {}
            for t, _ in found:
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
            albums.append(
                Album(
                    id=album_id,
                    name=first.album,
                    artist=first.album_artist,
                    year=first.year,
                    date_added=newest,
                    track_count=len(items),
                )
            )
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
        # The file is already local: no copy, and nothing to delete afterwards.  It is found by id
        # (track.file_path is display text, not always the real name).
        call = f"open {track.item_id}"
        path = self._paths.get(track.item_id)
        if path is None:
            await self.rescan()
            path = self._paths.get(track.item_id)
        if path is None:
            raise ProviderNotFound(
                "local", call, "no such file in the music folder (moved, renamed or deleted?)"
            )
        shown = clean_text(path)
        try:
            st = await self._blocking(call, os.stat, path)
        except FileNotFoundError:
            raise ProviderNotFound("local", call, f"{shown} no longer exists") from None
        except OSError as exc:
            raise ProviderNotFound("local", call, f"{shown}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ProviderNotFound(
                "local",
                call,
                f"{shown} is not a regular file any more (a FIFO, socket, device or folder): not read",
            )
        yield Path(path)

    async def create_playlist(
        self, name: str, track_ids: Sequence[str], replace_id: str | None = None
    ) -> str:
        check_name(name)
        ids = list(dict.fromkeys(track_ids))  # each track once, first place kept
        await self.get_tracks(ids)
        tracks, paths = self._tracks, self._paths  # one consistent snapshot
        missing = [i for i in ids if i not in tracks]
        if missing:
            raise ProviderNotFound("local", "create playlist", f"unknown track ids: {sorted(missing)[:5]}")
        entries = []
        for i in ids:
            t = tracks[i]
            entries.append(Entry(paths[i], f"{t.artist} - {t.title}" if t.artist else t.title, t.duration_s))
        async with self._playlist_lock:
            try:
                return await self._blocking(
                    "create playlist", write_playlist, self.playlist_dir, name, entries, replace_id
                )
            except OSError as exc:
                raise ProviderError(
                    "local",
                    "create playlist",
                    f"{clean_text(os.fspath(self.playlist_dir))}: {exc.strerror or exc}",
                ) from None

    async def delete_playlist(self, playlist_id: str, name: str) -> None:
        async with self._playlist_lock:
            try:
                await self._blocking(
                    "delete playlist", delete_playlist_file, self.playlist_dir, playlist_id, name
                )
            except OSError as exc:
                raise ProviderError(
                    "local",
                    "delete playlist",
                    f"{clean_text(os.fspath(self.playlist_dir))}: {exc.strerror or exc}",
                ) from None
