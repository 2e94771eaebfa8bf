"""Mixes from the library: the pgvector candidates (store) through the mix engine (rules).

One entry point per kind of request; every endpoint (our API, the Jellyfin and Subsonic
bridges) goes through here, so every client gets the same guarantees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from sidecar.config import Settings
from sidecar.mix.engine import Candidate, MixResult, MixRules, multi_seed_mix, song_mix, song_path_async
from sidecar.similarity import store

MAX_CANDIDATES = 2000
MAX_SEEDS = 25


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
    """The seed does not exist, or has not been analysed (``reason`` says which)."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.what, self.reason = what, reason


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
        return MixRules(max_songs_per_artist=self.settings.max_songs_per_artist,
                        duplicate_distance=self.settings.duplicate_distance_threshold_cosine
                        if eliminate_duplicates else 0.0,
                        exclude_ids=frozenset(previous))

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
        return UnknownSeed(item_id, "unknown track" if status is None else f"track not analysed ({status})")

    async def _seed_and_pool(self, seed: Candidate | str, k: int,
                             exclude: Sequence[str] = ()) -> tuple[Candidate, list[Candidate]]:
        """The seed (a stored track, or its id) and its ``k`` nearest candidates, ``exclude`` left out;
        one round trip when given an id."""
        if isinstance(seed, Candidate):
            return seed, await store.nearest(self.db, seed.embedding, k, exclude=[seed.item_id, *exclude],
                                             seed_id=seed.item_id)
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
        """The n tracks most similar to ``seed`` (a stored track or its id; itself excluded), artist
        cap applied, duplicates (same song elsewhere, near-identical audio) removed unless asked not to."""
        k = pool_size(n)
        track, cands = await self._seed_and_pool(seed, k)
        while True:
            if not eliminate_duplicates:
                return cands[:n]
            result = song_mix(track, cands, n + 1, self.rules(eliminate_duplicates=True), relax=True)
            picked = [c for c in result.tracks if c.item_id != track.item_id]
            if len(picked) >= n or len(cands) < k or k >= MAX_CANDIDATES:
                return sorted(picked[:n], key=lambda c: c.distance)
            k = min(MAX_CANDIDATES, 4 * k)
            _, cands = await self._seed_and_pool(track, k)

    async def song_mix(self, seed: Candidate | str, n: int, previous: Sequence[str] = ()) -> MixResult:
        """A mix that starts with ``seed`` (a stored track, or its id)."""
        k = pool_size(n)
        track, cands = await self._seed_and_pool(seed, k, previous)
        while True:
            result = song_mix(track, cands, n, self.rules(previous))
            if len(result.tracks) >= n or len(cands) < k or k >= MAX_CANDIDATES:
                return result
            k = min(MAX_CANDIDATES, 4 * k)
            _, cands = await self._seed_and_pool(track, k, previous)

    async def multi_mix(self, seeds: Sequence[Candidate], n: int, previous: Sequence[str] = ()) -> MixResult:
        """A mix around several seeds (an album, an artist, a playlist, a genre), every seed represented."""
        seeds = list(seeds)[:MAX_SEEDS]
        k = min(MAX_CANDIDATES, max(pool_size(n) // max(1, len(seeds)), 2 * n, 50))
        exclude = [s.item_id for s in seeds] + list(previous)
        while True:
            by_seed = await store.nearest_many(self.db, seeds, k, exclude=exclude)
            result = multi_seed_mix(seeds, by_seed, n, self.rules(previous))
            if len(result.tracks) >= n or all(len(v) < k for v in by_seed.values()) or k >= MAX_CANDIDATES:
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

    async def similar_artists(self, artist: str, n: int) -> list[ArtistMatch]:
        """Artists whose tracks sit closest to this artist's tracks.

        Up to MAX_SEEDS of the artist's tracks, spread over the catalogue, each look up their
        nearest tracks; an artist's divergence is the mean, over those seed tracks, of the
        distance to that artist's nearest track (the seed's farthest candidate when none of
        theirs is among its candidates): low when every side of the query artist has a close
        match in the other.
        """
        seeds = await store.artist_seeds(self.db, artist, MAX_SEEDS)
        if not seeds:
            await self._require_library()
            raise UnknownSeed(artist, "unknown artist, or none of their tracks is analysed")
        own = {seeds[0].artist.casefold(), artist.casefold()}
        by_seed = await store.nearest_many(self.db, seeds, 200, exclude=[s.item_id for s in seeds])
        best: dict[str, dict[str, Candidate]] = {}
        names: dict[str, str] = {}
        for seed_id, cands in by_seed.items():
            for c in cands:
                key = c.artist.casefold()
                if not key or key in own:
                    continue
                names.setdefault(key, c.artist)
                per_seed = best.setdefault(key, {})
                if seed_id not in per_seed or c.distance < per_seed[seed_id].distance:
                    per_seed[seed_id] = c
        ceiling = {sid: (cands[-1].distance if cands else 1.0) for sid, cands in by_seed.items()}
        matches = []
        for key, per_seed in best.items():
            divergence = sum(per_seed[s.item_id].distance if s.item_id in per_seed else ceiling[s.item_id]
                             for s in seeds) / len(seeds)
            pairs = [(s, per_seed[s.item_id]) for s in seeds if s.item_id in per_seed]
            matches.append(ArtistMatch(names[key], divergence, pairs))
        matches.sort(key=lambda m: (m.divergence, m.artist))
        return matches[:n]

    async def path(self, start: Candidate, end: Candidate, steps: int) -> MixResult:
        async def pool(vector: object, k: int, excluded: frozenset[str]) -> list[Candidate]:
            return await store.nearest(self.db, vector, k, exclude=sorted(excluded))  # type: ignore[arg-type]

        return await song_path_async(start, end, steps, pool, self.rules())
