"""The ``.m3u8`` playlist files the local provider writes, and the rules that keep them safe.

* A playlist named NAME is the file ``STEM.m3u8`` in the playlist folder.  STEM is NAME itself when
  NAME only holds letters, digits, ``_``, space and ``-.()&'+,`` (and fits in 150 bytes, does not start
  or end with a dot or a space); any other name gets its other characters replaced by ``_`` plus ``-``
  and 8 hex digits of the md5 of NAME, so "Rock/Pop", "Rock?Pop" and "Rock:Pop" get three files.
  The playlist id is STEM.
* A file of ours starts with ``#EXTM3U``, then :data:`MARKER`, then ``#PLAYLIST:NAME``.  Only a
  regular file (not a symlink) carrying the marker and the same NAME is ever replaced: any other
  file in the way (hand-made, another program's, another name whose STEM is the same) is a conflict
  (ProviderRefused, status 409) and is left untouched.
* ``replace_id`` (the STEM a previous call returned for this NAME) is replaced when it is such a
  file; when it is missing or not ours, NAME's own STEM is used under the rules above.
* NAME is one line: control characters and line separators are refused (status 400), and so is a
  name longer than :data:`MAX_NAME_CHARS`.  A track whose path holds a line break cannot be an M3U
  entry (status 422).  Track paths are written as the bytes of the file name (relative to the
  playlist folder), so a non-UTF-8 file name still resolves.
* The new content goes to a temporary file created exclusively in the playlist folder
  (``O_CREAT|O_EXCL|O_NOFOLLOW``, random name starting with a dot), is flushed to disk, then
  renamed onto the target with ``os.replace``: readers never see half a playlist, and a planted
  symlink can neither be followed nor redirect the write.
* Deleting removes ``ID.m3u8`` only when it is such a file of ours holding the same NAME; a missing
  file counts as deleted, any other file is a conflict (status 409) and stays.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from sidecar.providers.base import ProviderRefused

MARKER = "#AUDIOMUSE-SIDECAR"
MAX_NAME_CHARS = 500
_MAX_STEM_BYTES = 150
_SAFE_CHAR = re.compile(r"[\w\- .()&'+,]")
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CALL = "create playlist"


@dataclass(frozen=True, slots=True)
class Entry:
    """One playlist line: the real path of the file (str as the OS gave it) and its #EXTINF label."""

    path: str
    label: str
    duration_s: float | None = None


def check_name(name: str) -> None:
    """Refuse (status 400) a name that is not one printable line."""
    if not name.strip():
        raise ProviderRefused("local", _CALL, "the playlist name is empty", status=400)
    if len(name) > MAX_NAME_CHARS:
        raise ProviderRefused(
            "local", _CALL, f"the playlist name is longer than {MAX_NAME_CHARS} characters", status=400
        )
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")), None)
    if bad is not None:
        raise ProviderRefused(
            "local",
            _CALL,
            f"the playlist name contains the control character U+{ord(bad):04X} (a name is one line of text)",
            status=400,
        )


def playlist_stem(name: str) -> str:
    """The file name (without ``.m3u8``) of the playlist NAME; see the module docstring."""
    readable = "".join(c if _SAFE_CHAR.fullmatch(c) else "_" for c in name)
    if readable == name and name == name.strip(" .") and len(name.encode("utf-8")) <= _MAX_STEM_BYTES:
        return name
    cut = readable.encode("utf-8")[: _MAX_STEM_BYTES - 9].decode("utf-8", "ignore").strip(" .")
    digest = hashlib.md5(name.encode("utf-8")).hexdigest()[:8]
    return f"{cut or 'playlist'}-{digest}"


def _plain_stem(stem: str) -> bool:
    """A replace_id usable as a file name in the playlist folder (one component, no hidden file)."""
    try:
        size = len(stem.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return 0 < size <= 200 and "/" not in stem and not stem.startswith(".") and not _LINE_BREAKS.search(stem)


def _owner(dfd: int, filename: str) -> tuple[bool, str | None]:
    """(the file exists, the playlist name on it when it is a regular file of ours, else None)."""
    try:
        st = os.stat(filename, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return False, None
    if not stat.S_ISREG(st.st_mode):
        return True, None
    try:
        fd = os.open(filename, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:  # replaced by a symlink or a FIFO meanwhile, or unreadable: not ours to replace
        return True, None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return True, None
        head = [f.readline(8 * MAX_NAME_CHARS).rstrip(b"\r\n") for _ in range(3)]
    if (
        head[0].removeprefix(b"\xef\xbb\xbf") != b"#EXTM3U"
        or head[1] != MARKER.encode()
        or not head[2].startswith(b"#PLAYLIST:")
    ):
        return True, None
    return True, head[2].removeprefix(b"#PLAYLIST:").decode("utf-8", "replace")


def _conflict(path: Path, reason: str) -> ProviderRefused:
    return ProviderRefused(
        "local",
        _CALL,
        f"{os.fsencode(path).decode('utf-8', 'replace')} {reason}; "
        "it is left as it is (rename or remove it, or choose another name)",
        status=409,
    )


def _target(dfd: int, folder: Path, name: str, replace_id: str | None) -> str:
    if replace_id and _plain_stem(replace_id):
        exists, owner = _owner(dfd, f"{replace_id}.m3u8")
        if exists and owner == name:
            return replace_id
    stem = playlist_stem(name)
    exists, owner = _owner(dfd, f"{stem}.m3u8")
    if not exists or owner == name:
        return stem
    if owner is None:
        raise _conflict(
            folder / f"{stem}.m3u8",
            f"exists and was not written by this service (no {MARKER} line, or not a regular file)",
        )
    raise _conflict(folder / f"{stem}.m3u8", f"holds the playlist {owner!r}, whose file name is the same")


def render(folder: Path, name: str, entries: Sequence[Entry]) -> bytes:
    lines = [b"#EXTM3U", MARKER.encode(), f"#PLAYLIST:{name}".encode()]
    for e in entries:
        rel = os.fsencode(os.path.relpath(e.path, folder))
        if b"\n" in rel or b"\r" in rel:
            shown = os.fsencode(e.path).decode("utf-8", "replace")
            raise ProviderRefused(
                "local",
                _CALL,
                f"the file name of {shown!r} holds a line break, which an M3U playlist cannot hold",
                status=422,
            )
        seconds = int(round(e.duration_s)) if e.duration_s else -1
        label = _LINE_BREAKS.sub(" ", e.label).encode("utf-8", "replace")
        lines += [f"#EXTINF:{seconds},".encode() + label, rel]
    return b"\n".join(lines) + b"\n"


def write_playlist(folder: Path, name: str, entries: Sequence[Entry], replace_id: str | None = None) -> str:
    """Write (or replace) the playlist NAME with ``entries`` (blocking); return its id, the file stem."""
    check_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    data = render(folder, name, entries)
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        stem = _target(dfd, folder, name, replace_id)
        tmp = f".{stem}.{secrets.token_hex(8)}.tmp"
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd
        )
        renamed = False
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, f"{stem}.m3u8", src_dir_fd=dfd, dst_dir_fd=dfd)
            renamed = True
        finally:
            if not renamed:
                with suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)
    finally:
        os.close(dfd)
    return stem


def delete_playlist(folder: Path, playlist_id: str, name: str) -> None:
    """Remove the playlist file ``playlist_id`` (a stem) when it is ours and holds NAME (blocking)."""
    if not _plain_stem(playlist_id):
        raise ProviderRefused(
            "local", "delete playlist", f"{playlist_id!r} is not a playlist file name", status=400
        )
    try:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        filename = f"{playlist_id}.m3u8"
        exists, owner = _owner(dfd, filename)
        if not exists:
            return
        if owner != name:
            what = "was not written by this service" if owner is None else f"now holds the playlist {owner!r}"
            raise ProviderRefused(
                "local",
                "delete playlist",
                f"{os.fsencode(folder / filename).decode('utf-8', 'replace')} {what}; it is left as it is",
                status=409,
            )
        with suppress(FileNotFoundError):
            os.unlink(filename, dir_fd=dfd)
    finally:
        os.close(dfd)
