"""Media-server providers behind one interface (:class:`MediaProvider`).

``make_provider`` is the only place that picks an implementation; its return type makes mypy
check that each one conforms to the protocol.
"""

from __future__ import annotations

from sidecar.config import MediaServerType, Settings
from sidecar.providers.base import (
    Album,
    MediaProvider,
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderTooLarge,
    ProviderUnavailable,
    Track,
)
from sidecar.providers.jellyfin import JellyfinProvider
from sidecar.providers.local import LocalProvider
from sidecar.providers.subsonic import SubsonicProvider

__all__ = [
    "Album",
    "MediaProvider",
    "ProviderAuthError",
    "ProviderError",
    "ProviderNotFound",
    "ProviderTooLarge",
    "ProviderUnavailable",
    "Track",
    "make_provider",
]


def make_provider(settings: Settings) -> MediaProvider:
    timeout_s, retries = settings.media_http_timeout_seconds, settings.media_http_retries
    max_bytes = settings.max_download_bytes
    if settings.mediaserver_type is MediaServerType.JELLYFIN:
        assert settings.jellyfin_url and settings.jellyfin_user_id and settings.jellyfin_token
        return JellyfinProvider(
            settings.jellyfin_url,
            settings.jellyfin_user_id,
            settings.jellyfin_token,
            timeout_s=timeout_s,
            retries=retries,
            max_download_bytes=max_bytes,
        )
    if settings.mediaserver_type is MediaServerType.NAVIDROME:
        assert settings.navidrome_url and settings.navidrome_user and settings.navidrome_password
        return SubsonicProvider(
            settings.navidrome_url,
            settings.navidrome_user,
            settings.navidrome_password,
            timeout_s=timeout_s,
            retries=retries,
            max_download_bytes=max_bytes,
        )
    return LocalProvider(
        settings.music_dir, settings.playlist_dir, scan_timeout_s=settings.local_scan_timeout_seconds
    )
