"""The content fingerprint of an audio file: what identifies the file itself, whatever the media
server calls it, so a backup of the analysis finds its tracks again after the ids changed.

``"<size>:<blake2b-128 hex>"`` of the file's size and three 16 KiB windows (start, middle,
end): 48 KiB read per file, whatever its length, so fingerprinting a whole library costs a
fraction of one analysis.  Two different recordings never share the windows; the same file
copied or moved keeps its fingerprint; re-tagging (the header changes, usually the size too)
makes a new one, and the path and tags are then what matches (see :mod:`sidecar.backup.matching`).
The size comes first so that a file can be compared with many candidates by a ``stat`` alone.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

#: bytes read at each of the three places
WINDOW = 16 * 1024
#: prefix naming the recipe; a new recipe gets a new prefix (fingerprints of two recipes never match)
SCHEME = "v1"


def fingerprint_of(size: int, windows: Iterable[bytes]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(size.to_bytes(8, "little"))
    for w in windows:
        h.update(len(w).to_bytes(4, "little"))
        h.update(w)
    return f"{SCHEME}:{size}:{h.hexdigest()}"


def size_of(fingerprint: str) -> int | None:
    """The file size a fingerprint records (None when it is not of this recipe)."""
    scheme, _, rest = fingerprint.partition(":")
    size, _, _ = rest.partition(":")
    return int(size) if scheme == SCHEME and size.isdigit() else None


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """Fingerprint of the file at ``path`` (raises OSError when it cannot be read)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        windows = []
        for start in sorted({0, max(0, size // 2 - WINDOW // 2), max(0, size - WINDOW)}):
            f.seek(start)
            windows.append(f.read(WINDOW))
    return fingerprint_of(size, windows)


class LocalFingerprints:
    """Finds, among files on this machine, those with a given fingerprint: candidates are first
    narrowed by size (one ``stat`` each, done once), and only files of the right size are read.
    For the local provider, whose tracks' files are at hand without a download."""

    def __init__(self, files: Iterable[tuple[str, str]]) -> None:
        """``files``: (item_id, path) of the tracks to search among (stat'ed at the first search)."""
        self._files = list(files)
        self._by_size: dict[int, list[tuple[str, str]]] | None = None
        self._known: dict[str, str] = {}  # item_id -> fingerprint, computed on demand

    def _sizes(self) -> dict[int, list[tuple[str, str]]]:
        if self._by_size is None:
            self._by_size = {}
            for item_id, path in self._files:
                try:
                    size = Path(path).stat().st_size
                except OSError:
                    continue
                self._by_size.setdefault(size, []).append((item_id, path))
        return self._by_size

    def find(self, fingerprint: str) -> list[str]:
        """Ids of the files whose content has ``fingerprint``."""
        size = size_of(fingerprint)
        if size is None:
            return []
        found = []
        for item_id, path in self._sizes().get(size, ()):
            fp = self._known.get(item_id)
            if fp is None:
                try:
                    fp = file_fingerprint(path)
                except OSError:
                    continue
                self._known[item_id] = fp
            if fp == fingerprint:
                found.append(item_id)
        return found
