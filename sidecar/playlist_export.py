"""Playlists and mixes as ``.m3u8`` files (extended M3U, UTF-8) that any player can open.

Each entry is where the track can be played from:

* the local provider: the file's path, as the provider lists it;
* Jellyfin: ``<JELLYFIN_URL>/Audio/<id>/universal?UserId=<JELLYFIN_USER_ID>&Container=...``
  (Jellyfin sends the file as it is when the player can play its container, else mp3);
* Navidrome / Subsonic: ``<NAVIDROME_URL>/rest/stream.view?id=<id>&v=1.16.1&c=audiomuse``.

No credential is ever written (a playlist file is shared, synced, left in folders): the base
URL loses any user name, password or query it carries.  The player adds its own: Jellyfin
``&api_key=<token>`` (or an ``Authorization: MediaBrowser Token="<token>"`` header); Subsonic
``&u=<user>&t=<md5(password + salt)>&s=<salt>`` (or ``&u=<user>&p=<password>``).  The file's
``#`` comment lines say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from sidecar.config import Settings

SUBSONIC_API_VERSION = "1.16.1"
CLIENT_NAME = "audiomuse"
#: containers a player is assumed to play as they are (Jellyfin transcodes anything else to mp3)
JELLYFIN_CONTAINERS = "mp3,flac,ogg,oga,opus,m4a,aac,wav,webm"

CREDENTIAL_NOTES = {
    "jellyfin": "Jellyfin stream URLs carry no credentials: append &api_key=<your token> to each URL "
    'or send the header Authorization: MediaBrowser Token="<your token>"',
    "navidrome": "Subsonic stream URLs carry no credentials: append &u=<user>&t=<md5(password+salt)>&s=<salt> "
    "(or &u=<user>&p=<password>) to each URL",
}


@dataclass(frozen=True)
class Entry:
    item_id: str
    title: str
    artist: str
    duration_s: float | None
    file_path: str | None
    provider: str


def base_url(url: str) -> str:
    """``url`` without user name, password, query or fragment, and without a trailing slash."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def location(settings: Settings, entry: Entry) -> str | None:
    """Where ``entry`` can be played from (None when nothing is known)."""
    if entry.provider == "local":
        return entry.file_path or None
    if entry.provider == "jellyfin" and settings.jellyfin_url:
        query = urlencode(
            {
                "UserId": settings.jellyfin_user_id or "",
                "Container": JELLYFIN_CONTAINERS,
                "TranscodingContainer": "mp3",
                "AudioCodec": "mp3",
            },
            safe=",",
        )
        return f"{base_url(settings.jellyfin_url)}/Audio/{quote(entry.item_id, safe='')}/universal?{query}"
    if entry.provider == "navidrome" and settings.navidrome_url:
        query = urlencode({"id": entry.item_id, "v": SUBSONIC_API_VERSION, "c": CLIENT_NAME})
        return f"{base_url(settings.navidrome_url)}/rest/stream.view?{query}"
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render(settings: Settings, name: str, entries: Sequence[Entry]) -> str:
    """The ``.m3u8`` text of a playlist called ``name``; entries with no known location are
    named in a comment line instead."""
    lines = ["#EXTM3U", f"#PLAYLIST:{_one_line(name)}"]
    for provider in sorted({e.provider for e in entries} & CREDENTIAL_NOTES.keys()):
        lines.append(f"# {CREDENTIAL_NOTES[provider]}")
    for e in entries:
        where = location(settings, e)
        shown = _one_line(f"{e.artist} - {e.title}" if e.artist else e.title)
        if where is None:
            lines.append(f"# not playable from here (no path or stream URL known): {e.item_id} {shown}")
            continue
        seconds = round(e.duration_s) if e.duration_s else -1
        lines.append(f"#EXTINF:{seconds},{shown}")
        lines.append(_one_line(where) if "\n" in where or "\r" in where else where)
    return "\n".join(lines) + "\n"


def in_order(item_ids: Iterable[str], found: dict[str, Entry]) -> list[Entry]:
    """The entries of ``item_ids`` in that order (ids no longer in the library left out)."""
    return [found[i] for i in item_ids if i in found]
