"""The media-server interface every provider implements, and what it returns.

Providers are small: they translate one server's API into these types and report failures
as :class:`ProviderError` naming the server, the call and the reason.  Conformance to the
protocol is checked by mypy (``tests/test_providers_conformance.py`` type-checks the module
that binds each implementation to :class:`MediaProvider`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Album:
    id: str
    name: str
    artist: str = ""
    year: int | None = None
    date_added: datetime | None = None
    track_count: int | None = None


@dataclass(frozen=True, slots=True)
class Track:
    item_id: str
    title: str
    artist: str = ""
    album: str = ""
    album_artist: str = ""
    album_id: str | None = None
    track_number: int | None = None
    duration_s: float | None = None
    year: int | None = None
    genres: tuple[str, ...] = field(default_factory=tuple)
    file_path: str | None = None
    date_added: datetime | None = None
    #: file extension hint for the downloaded copy ("flac", "mp3", ...), when known
    suffix: str | None = None


class ProviderError(Exception):
    """A media-server call failed.  ``str()`` names the server, the call and the reason."""

    retryable = False

    def __init__(self, server: str, call: str, reason: str, status: int | None = None) -> None:
        self.server, self.call, self.reason, self.status = server, call, reason, status
        super().__init__(f"{server}: {call}: {reason}")


class ProviderAuthError(ProviderError):
    """The server rejected our credentials (HTTP 401/403, Subsonic 40/41/44): a configuration problem."""


class ProviderNotFound(ProviderError):
    """The server does not know the requested item."""


class ProviderUnavailable(ProviderError):
    """Network error, timeout or 5xx after all retries."""

    retryable = True


class ProviderRefused(ProviderError):
    """The request cannot be carried out as given, for a reason its caller can fix (a playlist
    name that is taken or not allowed): ``status`` is 400, 409 or 422, answered as such."""


class ProviderTooLarge(ProviderError):
    """The audio file exceeds MAX_DOWNLOAD_MB."""


@runtime_checkable
class MediaProvider(Protocol):
    """What the sidecar needs from a media server."""

    #: short name used in errors, logs and the tracks.provider column
    name: str

    async def ping(self) -> str:
        """Reach the server with our credentials; return a one-line description of it."""
        ...

    async def list_albums(self, limit: int | None = None) -> list[Album]:
        """Albums newest first (by date added); all of them, or the ``limit`` most recent."""
        ...

    async def album_tracks(self, album_id: str) -> list[Track]:
        """The album's audio tracks with their metadata, in album order."""
        ...

    async def get_tracks(self, item_ids: Sequence[str]) -> list[Track]:
        """Metadata of the given tracks (unknown ids are left out), in the order asked."""
        ...

    def audio_file(self, track: Track, temp_dir: Path) -> AbstractAsyncContextManager[Path]:
        """Context manager giving a local file with the track's audio.

        Downloads go to ``temp_dir``, are bounded by MAX_DOWNLOAD_MB and are removed on exit.
        """
        ...

    async def create_playlist(
        self, name: str, track_ids: Sequence[str], replace_id: str | None = None
    ) -> str:
        """Create a playlist (or replace the content of ``replace_id``); return its id."""
        ...

    async def delete_playlist(self, playlist_id: str, name: str) -> None:
        """Delete the playlist ``playlist_id`` this service created under ``name``.

        One that is already gone counts as deleted (no error).  A server that refuses (not ours,
        not allowed) raises :class:`ProviderRefused`; other failures raise :class:`ProviderError`.
        """
        ...

    async def close(self) -> None: ...
