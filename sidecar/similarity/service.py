"""Mixes from the library: the pgvector candidates (store) through the mix engine (rules).

One entry point per kind of request; every endpoint (our API, the Jellyfin and Subsonic
bridges) goes through here, so every client gets the same guarantees.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from enum import StrEnum
from typing import TypeVar

import asyncpg

from sidecar.config import Settings
from sidecar.mix.engine import (
    Candidate,
    MixResult,
    MixRules,
    multi_seed_mix,
    similar_tracks,
    song_mix,
    song_path_async,
)
from sidecar.mix.normalize import normalize_album, normalize_artist
from sidecar.similarity import store
from sidecar.similarity.store import AlbumHit, ArtistHit

MAX_CANDIDATES = 2000
MAX_SEEDS = 25

#: Names looked at when a seed is taken as a name, and their trigram word-similarity floor
#: (looser than the search lists': the ranking below decides).
NAME_CANDIDATES = 50
NAME_CANDIDATE_THRESHOLD = 0.4
#: A fuzzy match is clear when its similarity ratio (difflib, on normalised names) is at least
#: CLEAR_MATCH and every other candidate's is at least CLEAR_MARGIN lower.
CLEAR_MATCH = 0.8
CLEAR_MARGIN = 0.1
SUGGESTIONS = 5

Hit = TypeVar("Hit", AlbumHit, ArtistHit)


class MixKind(StrEnum):
    SONG = "song"
    ALBUM = "album"
    ARTIST = "artist"
    PLAYLIST = "playlist"
    GENRE = "genre"


@dataclass(frozen=True)
class ArtistMatch:
    artist: str
    divergence: float
    #: (query artist's track, this artist's closest track to it)
    pairs: list[tuple[Candidate, Candidate]]


class NothingAnalysed(Exception):
    """No track has an embedding yet."""


class UnknownSeed(Exception):
    """The seed does not exist, or has not been analysed (``reason`` says which).  When it was
    taken as a name, ``suggestions`` holds the nearest names (possibly none); else ``None``."""

    def __init__(
        self, what: str, reason: str, suggestions: Sequence[AlbumHit | ArtistHit] | None = None
    ) -> None:
        super().__init__(f"{what}: {reason}")
        self.what, self.reason = what, reason
        self.suggestions = None if suggestions is None else list(suggestions)


class AmbiguousSeed(Exception):
    """A name that matches several albums or artists equally well: ``candidates`` lists them."""

    def __init__(self, what: str, kind: MixKind, candidates: Sequence[AlbumHit | ArtistHit]) -> None:
        super().__init__(f"{what}: matches {len(candidates)} {kind.value}s")
        self.what, self.kind, self.candidates = what, kind, list(candidates)


_LEADING_THE = re.compile(r"^the\s+")


def _album_keys(hit: AlbumHit) -> list[str]:
    """The album's name, and its name with its artist before or after it, normalised."""
    album, artist = normalize_album(hit.album), normalize_album(hit.artist)
    return [album, f"{artist} {album}", f"{album} {artist}"]


def _artist_key(name: str) -> str:
    """An artist's name without case, accents, punctuation or a leading "the"."""
    squashed = normalize_album(name)
    return _LEADING_THE.sub("", squashed) or squashed


def _artist_keys(hit: ArtistHit) -> list[str]:
    return [_artist_key(hit.artist)]


def pick_by_name(
    seed: str, kind: MixKind, hits: Sequence[Hit], keys: Callable[[Hit], list[str]], seed_key: str
) -> Hit:
    """The one hit ``seed`` names, in three steps, the first that finds any deciding:

    1. names equal to the seed (case, accents and punctuation aside; for artists a leading
       "the" too; for albums also "artist album" and "album artist");
    2. names that contain the seed as whole words ("abbey" in "Abbey Road");
    3. a clear fuzzy match: similarity ratio >= CLEAR_MATCH, every other one CLEAR_MARGIN lower.

    One hit in a step is the answer; several raise AmbiguousSeed; none at all UnknownSeed with
    the nearest hits as suggestions.
    """
    if seed_key:
        for test in (lambda k: k == seed_key, lambda k: f" {seed_key} " in f" {k} "):
            found = [h for h in hits if any(test(k) for k in keys(h))]
            if len(found) == 1:
                return found[0]
            if found:
                raise AmbiguousSeed(seed, kind, found)
    scored = sorted(
        (
            (max((SequenceMatcher(None, seed_key, k).ratio() for k in keys(h)), default=0.0), i)
            for i, h in enumerate(hits)
        ),
        key=lambda si: (-si[0], si[1]),
    )
    if scored and seed_key and scored[0][0] >= CLEAR_MATCH:
        close = [hits[i] for score, i in scored if score > scored[0][0] - CLEAR_MARGIN]
        if len(close) == 1:
            return close[0]
        raise AmbiguousSeed(seed, kind, close)
    what = "album has this id" if kind is MixKind.ALBUM else "artist has this name"
    raise UnknownSeed(seed, f"no {what} or a name close to it", [hits[i] for _, i in scored[:SUGGESTIONS]])


def pool_size(n: int) -> int:
    """Candidates fetched for an n-track answer: room for the rules to choose from.

    The HNSW search costs in proportion to ef_search >= k, so k stays small (100 covers a
    50-track mix: the engine looks at ~60 candidates); a short answer asks again with 4x.
    """
    return min(MAX_CANDIDATES, max(2 * n, 100))


@dataclass
class MixService:
    db: asyncpg.Pool
    settings: Settings

    def rules(self, previous: Sequence[str] = (), eliminate_duplicates: bool = True) -> MixRules:
        return MixRules(
            max_songs_per_artist=self.settings.max_songs_per_artist,
            duplicate_distance=self.settings.duplicate_distance_threshold_cosine
            if eliminate_duplicates
            else 0.0,
            exclude_ids=frozenset(previous),
        )

    async def _require_library(self) -> None:
        if not await store.anything_analysed(self.db):
            raise NothingAnalysed()

    async def song_seed(self, item_id: str) -> Candidate:
        found = await store.seeds_by_ids(self.db, [item_id])
        if found:
            return found[0]
        raise await self._unknown_track(item_id)

    async def _unknown_track(self, item_id: str) -> Exception:
        """Why ``item_id`` cannot seed: NothingAnalysed, or UnknownSeed saying whether the track
        is unknown or not analysed (one round trip)."""
        status, anything = await store.track_status(self.db, item_id)
        if not anything:
            return NothingAnalysed()
        if status is None:
            return UnknownSeed(item_id, "unknown track")
        if status == "analyzed":  # analysed moments ago: its vector comes with the next fit
            return UnknownSeed(
                item_id, "track analysed but not yet placed in the similarity space; retry shortly"
            )
        return UnknownSeed(item_id, f"track not analysed ({status})")

    async def _seed_and_pool(
        self, seed: Candidate | str, k: int, exclude: Sequence[str] = ()
    ) -> tuple[Candidate, list[Candidate]]:
        """The seed (a stored track, or its id) and its ``k`` nearest candidates, ``exclude`` left out;
        one round trip when given an id."""
        if isinstance(seed, Candidate):
            return seed, await store.nearest(
                self.db, seed.embedding, k, exclude=[seed.item_id, *exclude], seed_id=seed.item_id
            )
        found, cands = await store.seed_and_nearest(self.db, seed, k, exclude)
        if found is None:
            raise await self._unknown_track(seed)
        return found, cands

    async def seed_by_title_artist(self, title: str, artist: str) -> Candidate:
        seed = await store.seed_by_title_artist(self.db, title, artist)
        if seed is None:
            await self._require_library()
            raise UnknownSeed(f"{title!r} by {artist!r}", "no analysed track matches")
        return seed

    async def similar(self, seed: Candidate | str, n: int, eliminate_duplicates: bool) -> list[Candidate]:
        """The n tracks most similar to ``seed`` (a stored track or its id; itself excluded), by
        distance: with ``eliminate_duplicates`` (the default), other versions of a song and
        near-identical audio removed and at most MAX_SONGS_PER_ARTIST per artist (the seed counts);
        no album rule, so the seed's album-mates come first when they are the nearest.  The cap
        gives way only when the whole library cannot fill the answer otherwise."""
        k = pool_size(n)
        track, cands = await self._seed_and_pool(seed, k)
        if not eliminate_duplicates:
            return cands[:n]
        rules = self.rules(eliminate_duplicates=True)
        while True:
            last = len(cands) < k or k >= MAX_CANDIDATES  # nothing more to fetch
            result = similar_tracks(track, cands, n, rules, relax=last)
            if len(result.tracks) >= n or last:
                return result.tracks
            k = min(MAX_CANDIDATES, 4 * k)
            _, cands = await self._seed_and_pool(track, k)

    async def song_mix(self, seed: Candidate | str, n: int, previous: Sequence[str] = ()) -> MixResult:
        """A mix that starts with ``seed`` (a stored track, or its id): the seed's nearest tracks
        that keep the set rules, in an order that keeps albums and artists apart.  More
        candidates are fetched before a set rule gives way."""
        k = pool_size(n)
        track, cands = await self._seed_and_pool(seed, k, previous)
        rules = self.rules(previous)
        while True:
            last = len(cands) < k or k >= MAX_CANDIDATES
            result = song_mix(track, cands, n, rules, relax_set=last)
            if len(result.tracks) >= n or last:
                return result
            k = min(MAX_CANDIDATES, 4 * k)
            _, cands = await self._seed_and_pool(track, k, previous)

    async def multi_mix(self, seeds: Sequence[Candidate], n: int, previous: Sequence[str] = ()) -> MixResult:
        """A mix around several seeds (an album, an artist, a playlist, a genre), every seed
        represented: at most MAX_SEEDS of them, spread evenly over the list (the one seed choice
        of every entry point: /api/mix, both bridges)."""
        seeds = store.spread_evenly(list(seeds), MAX_SEEDS)
        k = min(MAX_CANDIDATES, max(pool_size(n) // max(1, len(seeds)), 2 * n, 50))
        exclude = [s.item_id for s in seeds] + list(previous)
        rules = self.rules(previous)
        while True:
            by_seed = await store.nearest_many(self.db, seeds, k, exclude=exclude)
            last = all(len(v) < k for v in by_seed.values()) or k >= MAX_CANDIDATES
            result = multi_seed_mix(seeds, by_seed, n, rules, relax_set=last)
            if len(result.tracks) >= n or last:
                return result
            k = min(MAX_CANDIDATES, 4 * k)

    async def seeds_for(self, kind: MixKind, seed: str) -> list[Candidate]:
        limit = MAX_SEEDS
        if kind is MixKind.SONG:
            return [await self.song_seed(seed)]
        if kind is MixKind.ALBUM:
            found = await store.album_seeds(self.db, seed)
        elif kind is MixKind.ARTIST:
            found = await store.artist_seeds(self.db, seed, limit)
        elif kind is MixKind.GENRE:
            found = await store.genre_seeds(self.db, seed, limit)
        else:
            ids = await store.playlist_track_ids(self.db, seed)
            if ids is None:
                raise UnknownSeed(seed, "unknown playlist")
            found = await store.seeds_by_ids(self.db, ids)
        if not found:
            await self._require_library()
            raise UnknownSeed(seed, f"no analysed track for this {kind.value}")
        return found

    async def mix(self, kind: MixKind, seed: str, n: int, previous: Sequence[str] = ()) -> MixResult:
        if kind is MixKind.SONG:
            return await self.song_mix(seed, n, previous)
        return await self.multi_mix(await self.seeds_for(kind, seed), n, previous)

    async def mix_by_name(
        self, kind: MixKind, seed: str, n: int, previous: Sequence[str] = ()
    ) -> tuple[MixResult, AlbumHit | ArtistHit | None]:
        """:meth:`mix`, an album or artist seed also taken as a name when it is no album id or
        exact artist name; the album or artist the name stood for comes back too (``None`` when
        the seed was used as it is)."""
        hit: AlbumHit | ArtistHit | None
        if kind is MixKind.ALBUM:
            seeds, hit = await self.album_seeds_by_name(seed)
        elif kind is MixKind.ARTIST:
            seeds, hit = await self.artist_seeds_by_name(seed)
        else:
            return await self.mix(kind, seed, n, previous), None
        return await self.multi_mix(seeds, n, previous), hit

    async def album_seeds_by_name(self, seed: str) -> tuple[list[Candidate], AlbumHit | None]:
        """The analysed tracks of album ``seed``: an album id (which always wins), else the one
        album this name stands for (:func:`pick_by_name`)."""
        found = await store.album_seeds(self.db, seed)
        if found:
            return found, None
        known, anything = await store.album_known(self.db, seed)
        if not anything:
            raise NothingAnalysed()
        if known:
            raise UnknownSeed(seed, "no analysed track for this album")
        hits = await store.search_albums(self.db, seed, 0, NAME_CANDIDATES, NAME_CANDIDATE_THRESHOLD)
        hit = pick_by_name(seed, MixKind.ALBUM, hits, _album_keys, normalize_album(seed))
        found = await store.album_seeds(self.db, hit.album_id)
        if not found:
            raise UnknownSeed(f"{hit.album} ({hit.album_id})", "no analysed track for this album")
        return found, hit

    async def artist_seeds_by_name(self, seed: str) -> tuple[list[Candidate], ArtistHit | None]:
        """Up to MAX_SEEDS analysed tracks of artist ``seed``: their exact name (case aside), else
        the one artist this name stands for (:func:`pick_by_name`)."""
        found = await store.artist_seeds(self.db, seed, MAX_SEEDS)
        if found:
            return found, None
        await self._require_library()
        hits = await store.search_artists(self.db, seed, 0, NAME_CANDIDATES, NAME_CANDIDATE_THRESHOLD)
        hit = pick_by_name(seed, MixKind.ARTIST, hits, _artist_keys, _artist_key(seed))
        found = await store.artist_seeds(self.db, hit.artist, MAX_SEEDS)
        if not found:
            raise UnknownSeed(hit.artist, "no analysed track for this artist")
        return found, hit

    async def similar_artists(self, artist: str, n: int) -> list[ArtistMatch]:
        """Artists whose tracks sit closest to this artist's tracks.

        Up to MAX_SEEDS of the artist's tracks, spread over the catalogue, each look up their
        nearest tracks; an artist's divergence is the mean, over those seed tracks, of the
        distance to that artist's nearest track (the seed's farthest candidate when none of
        theirs is among its candidates): low when every side of the query artist has a close
        match in the other.
        """
        seeds, hit = await self.artist_seeds_by_name(artist)
        own = {seeds[0].artist.casefold(), artist.casefold(), *([hit.artist.casefold()] if hit else [])}
        by_seed = await store.nearest_many(self.db, seeds, 200, exclude=[s.item_id for s in seeds])
        best: dict[str, dict[str, Candidate]] = {}
        names: dict[str, str] = {}
        for seed_id, cands in by_seed.items():
            for c in cands:
                key = c.artist.casefold()
                if key in own or not normalize_artist(c.artist):  # no artist, or a placeholder
                    continue
                names.setdefault(key, c.artist)
                per_seed = best.setdefault(key, {})
                if seed_id not in per_seed or c.distance < per_seed[seed_id].distance:
                    per_seed[seed_id] = c
        ceiling = {sid: (cands[-1].distance if cands else 1.0) for sid, cands in by_seed.items()}
        matches = []
        for key, per_seed in best.items():
            divergence = sum(
                per_seed[s.item_id].distance if s.item_id in per_seed else ceiling[s.item_id] for s in seeds
            ) / len(seeds)
            pairs = [(s, per_seed[s.item_id]) for s in seeds if s.item_id in per_seed]
            matches.append(ArtistMatch(names[key], divergence, pairs))
        matches.sort(key=lambda m: (m.divergence, m.artist))
        return matches[:n]

    async def path(self, start: Candidate, end: Candidate, steps: int) -> MixResult:
        async def pool(vector: object, k: int, excluded: frozenset[str]) -> list[Candidate]:
            return await store.nearest(self.db, vector, k, exclude=sorted(excluded))  # type: ignore[arg-type]

        return await song_path_async(start, end, steps, pool, self.rules())
