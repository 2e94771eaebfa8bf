"""What "like X" in a request stands for, and the sonic mix around it (the no-LLM chat path).

X may be an artist ("like Iron Maiden"), a song ("songs like Clair de Lune") or a song and its
artist ("like Clair de Lune by Debussy").  The choice, deliberate and always stated:

1. "T by A": the song titled T (equal once case, accents, punctuation, "feat." and version
   suffixes are set aside) by artist A (the same name, else the closest: the title decides);
   with no song titled T, the track best matching T and A (typo-tolerant, as the bridges'
   title/artist seeds); with none either, X is taken whole;
2. X as a song title (equal as above) and as an artist;
3. an artist whose name *is* X (case aside) wins over a song titled X (the usual meaning of
   "like X"; the answer names the song and how to ask for it); a song titled X wins over an
   artist whose name only contains X (the answer names such artists; no fuzzy artist search,
   costly on a big library when X is a common title); with no song, the artist as the mix-by-name search
   finds it (exact name, then a name containing X, then a clear fuzzy match).

An artist gives a multi-seed mix of their tracks (the seeds left out); a song gives a song mix
that starts with it.  Both follow the mix engine's rules (no duplicates, the artist cap).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from difflib import SequenceMatcher

import asyncpg

from sidecar.config import Settings
from sidecar.db.chat import analysed_titles_like, artists_containing
from sidecar.mix.engine import Candidate
from sidecar.mix.normalize import normalize_artist, normalize_title
from sidecar.similarity import store
from sidecar.similarity.service import MAX_SEEDS, AmbiguousSeed, MixService, NothingAnalysed, UnknownSeed

_BY = re.compile(r"^(?P<title>.+?)\s+by\s+(?P<artist>.+)$", re.IGNORECASE)
#: other songs with the title named in the answer
_NAMED = 3


@dataclass
class SoundsLike:
    """The item ids of the mix (empty: nothing found) and what X was taken as."""

    item_ids: list[str] = field(default_factory=list)
    #: "artist", "song" or None (nothing found)
    kind: str | None = None
    #: the artist's name, or "'Title' by Artist"
    label: str = ""
    #: how the choice was made, for the answer's log
    notes: list[str] = field(default_factory=list)


async def sounds_like(db: asyncpg.Pool, settings: Settings, name: str, n: int) -> SoundsLike:
    """The mix for "like ``name``" (at most ``n`` tracks); see the module docstring."""
    mixes = MixService(db, settings)
    out = SoundsLike()
    by = _BY.match(name)
    if by:
        title, by_artist = by["title"].strip(), by["artist"].strip()
        titled = await _songs_titled(db, title)
        seed = _by_artist(titled, by_artist)
        if seed is None and not titled:
            seed = await store.seed_by_title_artist(db, title, by_artist)  # typos in the title
        if seed is not None:
            out.notes.append(f"'{name}' taken as the song '{seed.title}' by {seed.artist}.")
            return await _song(mixes, seed, n, out)
    songs = await _songs_titled(db, name)
    if songs:
        # only an artist with this very name outranks the song: no fuzzy artist search needed
        exact = await store.artist_seeds(db, name, MAX_SEEDS)
        if not exact:
            seed = songs[0]
            out.notes.append(f"'{name}' taken as the song '{seed.title}' by {seed.artist}.")
            near = await artists_containing(db, name)
            if near:
                out.notes.append(
                    f"The artist {' and '.join(near)} has a name containing it: ask 'like {near[0]}' "
                    "for a mix around their songs."
                )
            _others(out, name, songs[1:])
            return await _song(mixes, seed, n, out)
    seeds, artist, artist_exact, why_not = await _artist(mixes, name)
    if artist is not None:
        if songs:
            out.notes.append(
                f"'{name}' is the artist {artist} and also the title of a song by {songs[0].artist}: "
                f"taken as the artist; ask 'like {songs[0].title} by {songs[0].artist}' for a mix "
                "around that song."
            )
        else:
            out.notes.append(f"'{name}' taken as the artist {artist}.")
        mix = await mixes.multi_mix(seeds, n)
        out.kind, out.label = "artist", artist
        out.item_ids = [c.item_id for c in mix.tracks]
        return out
    out.notes.append(f"No sonic mix for '{name}' ({why_not}): matching the artist name instead.")
    return out


async def _artist(mixes: MixService, name: str) -> tuple[list[Candidate], str | None, bool, str]:
    """(the artist's tracks to seed with, the artist ``name`` stands for or None, whether it is
    that very name, why none)."""
    try:
        seeds, hit = await mixes.artist_seeds_by_name(name)
    except (UnknownSeed, AmbiguousSeed, NothingAnalysed) as exc:
        if isinstance(exc, AmbiguousSeed):
            return [], None, False, f"{len(exc.candidates)} artists match it, no song has this title"
        if isinstance(exc, NothingAnalysed):
            return [], None, False, "nothing is analysed yet"
        return [], None, False, "no such artist or song title"
    artist = hit.artist if hit is not None else seeds[0].artist
    exact = hit is None or normalize_artist(hit.artist) == normalize_artist(name)
    return seeds, artist, exact, ""


def _by_artist(songs: list[Candidate], artist: str) -> Candidate | None:
    """The song of ``songs`` (all titled as asked) by ``artist``: the same normalised name, else
    the closest name (the title decides; the answer names the artist taken); None when empty."""
    key = normalize_artist(artist)
    for song in songs:
        if normalize_artist(song.artist or "") == key:
            return song
    ratios = [SequenceMatcher(None, key, normalize_artist(s.artist or "")).ratio() for s in songs]
    return songs[ratios.index(max(ratios))] if songs else None


async def _songs_titled(db: asyncpg.Pool, name: str) -> list[Candidate]:
    """Analysed tracks whose title is ``name`` (normalised), one per song (title and artist),
    as mix seeds; the first is the one taken."""
    key = normalize_title(name)
    if not key:
        return []
    rows = await analysed_titles_like(db, name)
    seen: set[str] = set()
    ids = []
    for r in rows:
        artist = normalize_artist(r["artist"] or "")
        if normalize_title(r["title"] or "") == key and artist not in seen:
            seen.add(artist)
            ids.append(r["item_id"])
    return await store.seeds_by_ids(db, ids)


def _others(out: SoundsLike, name: str, others: list[Candidate]) -> None:
    if others:
        named = ", ".join(c.artist or "an unknown artist" for c in others[:_NAMED])
        more = f" and {len(others) - _NAMED} more" if len(others) > _NAMED else ""
        out.notes.append(
            f"Other songs titled '{name}' are by {named}{more}: ask 'like {name} by <artist>' for one of them."
        )


async def _song(mixes: MixService, seed: Candidate, n: int, out: SoundsLike) -> SoundsLike:
    mix = await mixes.song_mix(seed, n)
    out.kind, out.label = "song", f"'{seed.title}' by {seed.artist}"
    out.item_ids = [c.item_id for c in mix.tracks]
    return out
