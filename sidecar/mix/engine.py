"""The mix engine: pure functions that turn nearest-neighbour candidates into a mix.

Nothing here touches the database or the network. The caller (the pgvector search)
produces :class:`Candidate` lists ranked by cosine distance; the functions below choose
and order tracks under :class:`MixRules` and return a :class:`MixResult`.

Rules
-----
Never relaxed (a mix is shorter rather than break these):

* the seed comes first in a song mix and never appears again; seeds of a multi-seed mix
  never appear at all;
* no item id twice; no two tracks with the same normalised title + primary artist
  (:func:`sidecar.mix.normalize.track_key`, e.g. the same song on an album and on a
  compilation, or its remaster);
* no id from ``MixRules.exclude_ids`` (the client's ``previous`` list).

Soft, relaxed in this order when they would leave the mix short
(:data:`RELAXATION_ORDER`):

1. ``album_spacing`` – at least ``MixRules.album_spacing`` other tracks between two
   tracks of the same album;
2. ``artist_in_a_row`` – never the same (primary) artist twice in a row;
3. ``max_songs_per_artist`` – at most ``MixRules.max_songs_per_artist`` tracks per
   artist (the seed counts);
4. ``duplicate_distance`` – no two tracks (seeds included) closer than
   ``MixRules.duplicate_distance`` in cosine distance (near-identical audio).

How a mix is built
------------------
Position by position. Each position takes the best-ranked candidate that breaks no soft
rule. Candidates that only break an *ordering* rule (artist in a row, album spacing) are
kept aside and retried at every following position, so they land as soon as they fit and
the mix stays close to similarity rank. When nothing fits at the end of the list, a
kept-aside track may be *inserted* earlier where it fits (inserting only widens the gaps
between the tracks already placed, so it never breaks a rule that held). Only when
neither works is a rule relaxed, and then minimally for that one position: the
candidate breaking the least severe set of rules wins (rules are ordered as above and a
later rule outranks any combination of earlier ones), ties going to the artist with the
fewest tracks so far, then to rank. ``MixResult.relaxed`` names exactly the rules the
returned list breaks, in relaxation order; it is empty for an unconstrained pool.
A rule is therefore only ever broken for tracks that could not be placed otherwise, and
the mix has ``min(n, available)`` tracks, where *available* counts the distinct tracks
the never-relaxed rules allow.

Cost: a candidate is looked at once when the scan reaches it (plus once per position
while it waits for an ordering rule), its title normalisation is cached, and the
near-duplicate test is one small mat-vec against the tracks placed so far, done only for
candidates that passed every other rule. Embeddings are normalised 64 at a time, only
for the part of the candidate list actually scanned. A 50-track mix from 1,000
candidates therefore touches ~60 candidates, not 1,000, and never does O(n²) work over
the whole list.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Generator, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from operator import attrgetter
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from sidecar.mix.normalize import normalize_album, normalize_artist, track_key

__all__ = [
    "ALBUM_SPACING",
    "ARTIST_CAP",
    "ARTIST_IN_A_ROW",
    "DEFAULT_RULES",
    "DUPLICATE_DISTANCE",
    "RELAXATION_ORDER",
    "Candidate",
    "MixResult",
    "MixRules",
    "PathQuery",
    "PoolQuery",
    "AsyncPoolQuery",
    "cosine_distance",
    "dedupe",
    "multi_seed_mix",
    "path_points",
    "song_mix",
    "song_path",
    "song_path_async",
    "total_distance",
]

Vector = npt.NDArray[np.float32]

ALBUM_SPACING = "album_spacing"
ARTIST_IN_A_ROW = "artist_in_a_row"
ARTIST_CAP = "max_songs_per_artist"
DUPLICATE_DISTANCE = "duplicate_distance"
#: Soft rules, in the order they are given up.
RELAXATION_ORDER: tuple[str, ...] = (ALBUM_SPACING, ARTIST_IN_A_ROW, ARTIST_CAP, DUPLICATE_DISTANCE)

# Violation bits; the numeric order of a mask is its severity (a later rule outranks any
# combination of earlier ones), so "least severe" is simply "smallest mask".
_SP = 1
_ADJ = 2
_CAP = 4
_DUP = 8
_DEAD = -1  # breaks a never-relaxed rule
_BIT_NAMES = ((_SP, ALBUM_SPACING), (_ADJ, ARTIST_IN_A_ROW), (_CAP, ARTIST_CAP), (_DUP, DUPLICATE_DISTANCE))
_CHUNK_SHIFT = 6  # embeddings are stacked and normalised 64 candidates at a time
_CHUNK = 1 << _CHUNK_SHIFT


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True, slots=True)
class Candidate:
    """One track as the search returns it.

    ``distance`` is the cosine distance to the seed/query vector that produced it;
    ``seed_id`` names that seed in multi-seed searches. ``embedding`` (200-d float32, not
    necessarily unit length) takes no part in equality or hashing.
    """

    item_id: str
    title: str
    artist: str
    album: str
    album_id: str | None
    embedding: Vector = field(compare=False, repr=False)
    distance: float = 0.0
    seed_id: str | None = None


@dataclass(frozen=True, slots=True)
class MixRules:
    """Constraints for one mix. The defaults follow AudioMuse-AI.

    ``max_songs_per_artist``: at most this many tracks per primary artist (AudioMuse-AI's
    ``MAX_SONGS_PER_ARTIST``, default 3; the seed of a song mix counts); 0 disables.
    ``duplicate_distance``: two tracks closer than this cosine distance are the same
    audio (AudioMuse-AI's ``DUPLICATE_DISTANCE_THRESHOLD_COSINE``, default 0.01); 0
    disables. ``album_spacing``: at least this many other tracks between two tracks of the
    same album (album id, else album title + artist); 0 disables. ``no_artist_in_a_row``:
    never the same primary artist on consecutive positions. ``exclude_ids``: ids that must
    not appear (the client's ``previous`` list of recently played tracks); any iterable
    is accepted and stored as a frozenset.
    """

    max_songs_per_artist: int = 3
    duplicate_distance: float = 0.01
    album_spacing: int = 3
    no_artist_in_a_row: bool = True
    exclude_ids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.exclude_ids, frozenset):
            object.__setattr__(self, "exclude_ids", frozenset(self.exclude_ids))
        if self.max_songs_per_artist < 0:
            raise ValueError("max_songs_per_artist must be >= 0 (0 disables the cap)")
        if not 0.0 <= self.duplicate_distance <= 2.0:
            raise ValueError("duplicate_distance must be within [0, 2]")
        if self.album_spacing < 0:
            raise ValueError("album_spacing must be >= 0 (0 disables it)")

    def excluding(self, ids: Iterable[str]) -> MixRules:
        """A copy that also excludes *ids* (e.g. the request's ``previous`` list)."""
        return MixRules(
            self.max_songs_per_artist,
            self.duplicate_distance,
            self.album_spacing,
            self.no_artist_in_a_row,
            self.exclude_ids | frozenset(ids),
        )


DEFAULT_RULES = MixRules()


@dataclass(frozen=True, slots=True)
class MixResult:
    """The ordered tracks and the soft rules (names from :data:`RELAXATION_ORDER`) they break."""

    tracks: list[Candidate]
    relaxed: list[str]


class PathQuery(NamedTuple):
    """What :func:`song_path` asks the pool for: the ``k`` nearest tracks to ``vector``
    (unit length) whose ids are not in ``excluded``, nearest first, each with
    ``distance`` = cosine distance to ``vector``."""

    vector: Vector
    k: int
    excluded: frozenset[str]


PoolQuery = Callable[[Vector, int, frozenset[str]], Sequence[Candidate]]
AsyncPoolQuery = Callable[[Vector, int, frozenset[str]], Awaitable[Sequence[Candidate]]]


# --------------------------------------------------------------------------- helpers

_Meta = tuple[tuple[str, str] | None, str | None, Hashable | None]  # (track key, artist, album)
_by_distance = attrgetter("distance")


def _meta(c: Candidate) -> _Meta:
    return _meta_of(c.title, c.artist, c.album, c.album_id)


@lru_cache(maxsize=1 << 16)
def _meta_of(title: str, artist: str, album: str, album_id: str | None) -> _Meta:
    norm_artist = normalize_artist(artist) if artist else ""
    album_key: Hashable | None
    if album_id:
        album_key = album_id
    elif album:
        album_key = ("name", normalize_album(album), norm_artist)
    else:
        album_key = None
    return track_key(title, artist), norm_artist or None, album_key


def _unit_rows(vectors: Sequence[Vector]) -> Vector:
    mat = np.array(vectors, dtype=np.float32)
    if mat.ndim != 2:
        raise ValueError("embeddings must all be 1-d vectors of the same length")
    norms = np.sqrt(np.einsum("ij,ij->i", mat, mat))
    np.maximum(norms, 1e-12, out=norms)
    mat /= norms[:, None]
    return mat


def _unit(vector: Vector) -> Vector:
    vec = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.sqrt(np.dot(vec, vec)))
    return vec / norm if norm > 1e-12 else vec.copy()


def _names(mask: int) -> list[str]:
    return [name for bit, name in _BIT_NAMES if mask & bit]


def cosine_distance(a: Vector, b: Vector) -> float:
    """``1 - cos(a, b)``, the metric of the pgvector ``<=>`` operator (1.0 for a zero vector)."""
    ua, ub = _unit(a), _unit(b)
    return float(1.0 - np.clip(np.dot(ua, ub), -1.0, 1.0))


def total_distance(tracks: Sequence[Candidate]) -> float:
    """Sum of cosine distances between consecutive tracks (``total_distance`` of a path)."""
    if len(tracks) < 2:
        return 0.0
    mat = _unit_rows([t.embedding for t in tracks])
    sims = np.einsum("ij,ij->i", mat[:-1], mat[1:])
    return float(np.sum(1.0 - np.clip(sims, -1.0, 1.0)))


class _Refs:
    """Unit vectors every new track must stay ``duplicate_distance`` away from."""

    __slots__ = ("on", "lim", "mat", "m", "capacity")

    def __init__(self, threshold: float, capacity: int) -> None:
        self.on = threshold > 0.0
        self.lim = np.float32(1.0 - threshold)
        self.mat: Vector | None = None
        self.m = 0
        self.capacity = max(capacity, 4)

    def add(self, unit_vector: Vector) -> None:
        if not self.on:
            return
        if self.mat is None:
            self.mat = np.empty((self.capacity, unit_vector.shape[0]), dtype=np.float32)
        elif self.m == self.mat.shape[0]:
            self.mat = np.concatenate([self.mat, np.empty_like(self.mat)])
        self.mat[self.m] = unit_vector
        self.m += 1

    def near(self, unit_vector: Vector, start: int = 0) -> bool:
        """Is *unit_vector* closer than the threshold to any reference from *start* on?"""
        if self.mat is None or start >= self.m:
            return False
        return bool((self.mat[start : self.m] @ unit_vector).max() > self.lim)

    def near_rows(self, unit_rows: Vector) -> list[bool]:
        """``near`` for each row of *unit_rows*, in one matrix product."""
        if self.mat is None or self.m == 0 or len(unit_rows) == 0:
            return [False] * len(unit_rows)
        flags: list[bool] = ((unit_rows @ self.mat[: self.m].T).max(axis=1) > self.lim).tolist()
        return flags


class _Seq:
    """The list under construction and the bookkeeping every rule check needs."""

    __slots__ = (
        "tracks",
        "artists",
        "albums",
        "counts",
        "ids",
        "keys",
        "adj",
        "spacing",
        "cap",
        "fixed",
        "violations",
    )

    def __init__(self, rules: MixRules, fixed: int) -> None:
        self.tracks: list[Candidate] = []
        self.artists: list[str | None] = []
        self.albums: list[Hashable | None] = []
        self.counts: dict[str, int] = {}
        self.ids: set[str] = set()  # ids that may not be placed (placed, excluded, seeds)
        self.keys: set[tuple[str, str]] = set()  # track keys that may not be placed
        self.adj = rules.no_artist_in_a_row
        self.spacing = rules.album_spacing
        self.cap = rules.max_songs_per_artist
        self.fixed = fixed  # leading positions nothing may be inserted before
        self.violations = 0

    def __len__(self) -> int:
        return len(self.tracks)

    def order_mask(self, artist: str | None, album: Hashable | None) -> int:
        """Ordering rules broken by appending a track with this artist and album."""
        mask = 0
        if self.adj and artist is not None and self.artists and self.artists[-1] == artist:
            mask = _ADJ
        if self.spacing and album is not None and album in self.albums[-self.spacing :]:
            mask |= _SP
        return mask

    def gap_mask(self, j: int, artist: str | None, album: Hashable | None) -> int:
        """Ordering rules broken by inserting the track before position *j*."""
        mask = 0
        if self.adj and artist is not None:
            if self.artists[j] == artist or (j > 0 and self.artists[j - 1] == artist):
                mask = _ADJ
        spacing = self.spacing
        if spacing and album is not None:
            if album in self.albums[max(0, j - spacing) : j] or album in self.albums[j : j + spacing]:
                mask |= _SP
        return mask

    def best_gap(self, artist: str | None, album: Hashable | None) -> tuple[int, int]:
        """``(mask, j)`` of the least-breaking insertion point, the latest on ties."""
        best_mask, best_j = _SP | _ADJ | _CAP, -1
        for j in range(len(self.tracks) - 1, self.fixed - 1, -1):
            mask = self.gap_mask(j, artist, album)
            if mask < best_mask:
                best_mask, best_j = mask, j
                if mask == 0:
                    break
        return best_mask, best_j

    def excess(self, artist: str | None) -> int:
        """0 under the cap, else how many tracks over it the artist would be."""
        if not self.cap or artist is None:
            return 0
        count = self.counts.get(artist, 0)
        return count - self.cap + 1 if count >= self.cap else 0

    def place(
        self, c: Candidate, meta: _Meta, mask: int, at: int | None = None, counted: bool = False
    ) -> None:
        key, artist, album = meta
        if at is None or at >= len(self.tracks):
            self.tracks.append(c)
            self.artists.append(artist)
            self.albums.append(album)
        else:
            self.tracks.insert(at, c)
            self.artists.insert(at, artist)
            self.albums.insert(at, album)
        self.ids.add(c.item_id)
        if key is not None:
            self.keys.add(key)
        if artist is not None and not counted:
            self.counts[artist] = self.counts.get(artist, 0) + 1
        self.violations |= mask

    def block(self, c: Candidate, meta: _Meta | None = None) -> None:
        """Make *c* (and its title + artist) unplaceable without placing it."""
        self.ids.add(c.item_id)
        key = (meta or _meta(c))[0]
        if key is not None:
            self.keys.add(key)

    def ordering_violations(self) -> int:
        """Ordering rules the current list breaks. Recomputed rather than accumulated:
        a later insertion can separate two tracks that were placed side by side."""
        mask = 0
        artists, albums, spacing = self.artists, self.albums, self.spacing
        if self.adj:
            for a, b in pairwise(artists):
                if a is not None and a == b:
                    mask = _ADJ
                    break
        if spacing:
            last: dict[Hashable, int] = {}
            for i, album in enumerate(albums):
                if album is not None:
                    if i - last.get(album, -spacing - 1) <= spacing:
                        mask |= _SP
                        break
                    last[album] = i
        return mask

    def result(self) -> MixResult:
        mask = (self.violations & (_CAP | _DUP)) | self.ordering_violations()
        return MixResult(list(self.tracks), _names(mask))


class _Stream:
    """One ranked candidate list (one per seed) and what the scan learnt about it.

    Candidates the scan passed over but may still place wait in ``waiting``, grouped by
    artist (ranks ascending): the artist cap and "artist in a row" hold or fail for a
    whole group at once, so a position costs O(groups), not O(candidates). Groups whose
    artist reached the cap move to ``capped`` (counts only grow), out of the fast path.
    """

    __slots__ = (
        "cands",
        "idx",
        "ptr",
        "waiting",
        "capped",
        "dups",
        "picks",
        "metas",
        "chunks",
        "seen",
        "dupflag",
        "ids",
        "dead",
        "shift",
    )

    def __init__(self, cands: list[Candidate], idx: int, expected: int = _CHUNK) -> None:
        self.cands = cands
        self.idx = idx
        # embeddings are stacked and normalised in chunks of 16..64 ranks, sized to the
        # number of picks this list is expected to supply
        self.shift = 4 if expected <= 6 else 5 if expected <= 14 else _CHUNK_SHIFT
        self.ptr = 0  # next rank to scan
        self.waiting: dict[str | None, list[int]] = {}
        self.capped: dict[str | None, list[int]] = {}  # groups whose artist is at the cap
        self.dups: list[int] = []  # ranks near-identical to a reference (a last resort)
        self.picks = 0
        self.metas: list[_Meta | None] = [None] * len(cands)
        self.chunks: dict[int, Vector] = {}
        self.seen: dict[int, int] = {}  # rank -> references already compared against
        self.dupflag: set[int] = set()  # ranks known to be near-identical to a reference
        self.ids: set[str] | None = None
        self.dead = False  # nothing placeable left, ever

    def meta(self, r: int) -> _Meta:
        meta = self.metas[r]
        if meta is None:
            meta = self.metas[r] = _meta(self.cands[r])
        return meta

    def row(self, r: int) -> Vector:
        shift = self.shift
        chunk_no = r >> shift
        chunk = self.chunks.get(chunk_no)
        if chunk is None:
            lo = chunk_no << shift
            chunk = self.chunks[chunk_no] = _unit_rows(
                [c.embedding for c in self.cands[lo : lo + (1 << shift)]]
            )
        row: Vector = chunk[r & ((1 << shift) - 1)]
        return row

    def id_set(self) -> set[str]:
        if self.ids is None:
            self.ids = {c.item_id for c in self.cands}
        return self.ids


class _Option(NamedTuple):
    mask: int
    excess: int
    rank: int
    gap: int | None  # insertion point, None = append


_GROUP_SCAN_LIMIT = 32  # live candidates examined per artist group when relaxing


@dataclass(slots=True)
class _SlowContext:
    last: str | None
    recent: set[Hashable | None]
    can_insert: bool
    gaps: dict[tuple[str | None, Hashable | None], tuple[int, int]]


class _Builder:
    def __init__(self, seq: _Seq, refs: _Refs, streams: list[_Stream], relax: bool) -> None:
        self.seq = seq
        self.refs = refs
        self.streams = streams
        self.relax = relax

    def _dead(self, s: _Stream, r: int) -> bool:
        seq = self.seq
        if s.cands[r].item_id in seq.ids:
            return True
        key = s.meta(r)[0]
        return key is not None and key in seq.keys

    def _recent(self) -> set[Hashable | None]:
        seq = self.seq
        if not seq.spacing:
            return set()
        recent = set(seq.albums[-seq.spacing :])
        recent.discard(None)
        return recent

    def is_dup(self, s: _Stream, r: int) -> bool:
        refs = self.refs
        if not refs.on:
            return False
        if r in s.dupflag:
            return True
        start = s.seen.get(r, 0)
        if start < refs.m:
            if refs.near(s.row(r), start):
                s.dupflag.add(r)
                return True
            s.seen[r] = refs.m
        return False

    # -- candidate search ----------------------------------------------------------
    def fast(self, s: _Stream) -> int | None:
        """Best-ranked candidate of *s* that breaks nothing when appended, if any."""
        seq = self.seq
        last = seq.artists[-1] if seq.artists else None
        recent = self._recent()
        cap, adj = seq.cap, seq.adj
        dupflag = s.dupflag
        while True:
            best_r, best_group = -1, None
            empty: list[str | None] = []
            for artist, group in s.waiting.items():
                if artist is not None:
                    if cap and seq.counts.get(artist, 0) >= cap:
                        empty.append(artist)  # moved to the capped groups below
                        continue
                    if adj and artist == last:
                        continue
                i = 0
                while i < len(group):
                    r = group[i]
                    if best_r >= 0 and r > best_r:
                        break
                    if r in dupflag:
                        del group[i]
                        s.dups.append(r)
                    elif self._dead(s, r):
                        del group[i]
                    elif s.meta(r)[2] in recent:
                        i += 1
                    else:
                        best_r, best_group = r, group
                        break
                if not group:
                    empty.append(artist)
            for artist in empty:
                group = s.waiting.pop(artist)
                if group and artist is not None:
                    held = s.capped.get(artist)
                    s.capped[artist] = sorted(held + group) if held else group
            if best_group is None:
                break
            best_group.remove(best_r)
            if not self.is_dup(s, best_r):
                return best_r
            s.dups.append(best_r)  # near-identical to something placed: look again
        n = len(s.cands)
        waiting = s.waiting
        while s.ptr < n:
            r = s.ptr
            s.ptr = r + 1
            if s.cands[r].item_id in seq.ids:
                continue
            key, artist, album = s.meta(r)
            if key is not None and key in seq.keys:
                continue
            if artist is not None and cap and seq.counts.get(artist, 0) >= cap:
                held = s.capped.get(artist)
                if held is None:
                    s.capped[artist] = [r]
                else:
                    held.append(r)
                continue
            if (artist is None or not (adj and artist == last)) and album not in recent:
                if not self.is_dup(s, r):
                    return r
                s.dups.append(r)
                continue
            pool = waiting.get(artist)
            if pool is None:
                waiting[artist] = [r]
            else:
                pool.append(r)
        return None

    def slow(self, s: _Stream) -> _Option | None:
        """Least-breaking option of *s* (append or insert); only called once ``fast``
        failed, i.e. with the whole list scanned. Marks the stream dead when empty."""
        seq = self.seq
        ctx = _SlowContext(
            last=seq.artists[-1] if seq.artists else None,
            recent=self._recent(),
            can_insert=len(seq) > seq.fixed,
            gaps={},
        )
        best: _Option | None = None
        empty: list[str | None] = []
        for groups in (s.waiting, s.capped):
            for artist, group in groups.items():
                best = self._scan(s, artist, group, best, ctx)
                if not group:
                    empty.append(artist)
            for artist in empty:
                del groups[artist]
            empty.clear()
        if s.dups and (best is None or best.mask & _DUP):
            # last resort: tracks near-identical to one already in the mix
            s.dups = sorted(r for r in s.dups if not self._dead(s, r))
            by_artist: dict[str | None, list[int]] = {}
            for r in s.dups:
                by_artist.setdefault(s.meta(r)[1], []).append(r)
            for artist, group in by_artist.items():
                best = self._scan(s, artist, group, best, ctx)
        if not s.waiting and not s.capped and not s.dups and s.ptr >= len(s.cands):
            s.dead = True
        if best is not None and not self.relax and best.mask:
            return None
        return best

    def _scan(
        self, s: _Stream, artist: str | None, group: list[int], best: _Option | None, ctx: _SlowContext
    ) -> _Option | None:
        """Improve *best* with the candidates of one artist group (ranks ascending)."""
        seq = self.seq
        capbit = _CAP if seq.cap and artist is not None and seq.counts.get(artist, 0) >= seq.cap else 0
        if not self.relax and capbit:
            return best
        excess = seq.excess(artist)
        if best is not None and group and (best.mask, best.excess, best.rank) < (capbit, excess, group[0]):
            return best
        adjbit = _ADJ if seq.adj and artist is not None and artist == ctx.last else 0
        seen = 0
        i = 0
        while i < len(group) and seen < _GROUP_SCAN_LIMIT:
            r = group[i]
            if r in s.dupflag and (s.waiting.get(artist) is group or s.capped.get(artist) is group):
                del group[i]
                s.dups.append(r)
                continue
            if self._dead(s, r):
                del group[i]
                continue
            i += 1
            seen += 1
            album = s.meta(r)[2]
            order = adjbit | (_SP if album in ctx.recent else 0)
            gap: int | None = None
            if order and ctx.can_insert:
                cls = (artist, album if seq.spacing else None)
                found = ctx.gaps.get(cls)
                if found is None:
                    found = ctx.gaps[cls] = seq.best_gap(artist, album)
                if found[0] < order:
                    order, gap = found
            floor = capbit | (_DUP if r in s.dupflag else 0)
            mask = floor | order
            if best is not None and (best.mask, best.excess, best.rank) <= (mask, excess, r):
                if mask == floor:
                    break  # later candidates of this group cannot do better
                continue
            if not mask & _DUP and self.is_dup(s, r):
                if s.waiting.get(artist) is group or s.capped.get(artist) is group:  # to the last resort
                    i -= 1
                    seen -= 1
                    del group[i]
                    s.dups.append(r)
                continue
            best = _Option(mask, excess, r, gap)
            if mask == floor:
                break
        return best

    def place(self, s: _Stream, r: int, mask: int, gap: int | None, waiting: bool) -> None:
        meta = s.meta(r)
        if waiting:
            if r in s.dupflag and r in s.dups:
                s.dups.remove(r)
            elif r in s.waiting.get(meta[1], ()):
                s.waiting[meta[1]].remove(r)
            else:
                s.capped[meta[1]].remove(r)
        self.seq.place(s.cands[r], meta, mask, gap)
        if self.refs.on:
            self.refs.add(s.row(r))
        s.picks += 1

    # -- main loop -----------------------------------------------------------------
    def run(self, n: int) -> None:
        seq = self.seq
        queue = list(self.streams)  # round-robin turn order: a stream that picks goes last
        multi = len(queue) > 1
        while len(seq) < n and queue:
            forced = self._forced(queue, n - len(seq)) if multi else None
            eligible = forced or queue
            chosen: _Stream | None = None
            for s in eligible:
                r = self.fast(s)
                if r is not None:
                    self.place(s, r, 0, None, waiting=False)
                    chosen = s
                    break
            if chosen is None:
                best: tuple[_Option, int] | None = None
                for turn, s in enumerate(eligible):
                    opt = self.slow(s)
                    if opt is not None and (
                        best is None
                        or (opt.mask, opt.excess, turn, opt.rank)
                        < (best[0].mask, best[0].excess, best[1], best[0].rank)
                    ):
                        best = (opt, turn)
                queue = [s for s in queue if not s.dead]
                if best is None:
                    if forced:
                        # the seeds that had to pick cannot: stop waiting for them
                        for s in forced:
                            s.picks = max(s.picks, 1)
                        continue
                    break
                opt, turn = best
                chosen = eligible[turn]
                self.place(chosen, opt.rank, opt.mask, opt.gap, waiting=True)
            if multi and chosen in queue:
                queue.remove(chosen)
                queue.append(chosen)

    def _forced(self, queue: list[_Stream], remaining: int) -> list[_Stream] | None:
        """Streams that must pick now so every seed is represented, or None."""
        unpicked = [s for s in queue if s.picks == 0]
        if not unpicked or len(unpicked) < remaining:
            return None
        placed = {t.item_id for t in self.seq.tracks}
        unrepresented = []
        for s in unpicked:
            if s.id_set().isdisjoint(placed):
                unrepresented.append(s)
            else:
                s.picks = 1
        if unrepresented and len(unrepresented) >= remaining:
            return unrepresented
        return None


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError("n must be >= 1")


# --------------------------------------------------------------------------- public API


def dedupe(
    candidates: Sequence[Candidate],
    rules: MixRules = DEFAULT_RULES,
    *,
    keep: Sequence[Candidate] = (),
    limit: int | None = None,
) -> list[Candidate]:
    """Drop duplicates from *candidates*, keeping the first occurrence (give them best first).

    Removes ids in ``rules.exclude_ids``, repeated ids, repeated normalised title +
    artist, and tracks closer than ``rules.duplicate_distance`` to a kept one. Tracks in
    *keep* (e.g. the seed) count as already kept but are not returned. Stops after
    *limit* tracks. Artist/album rules are not applied; use :func:`song_mix` for those.
    """
    seq = _Seq(MixRules(0, rules.duplicate_distance, 0, False), fixed=0)
    seq.ids.update(rules.exclude_ids)
    refs = _Refs(rules.duplicate_distance, len(keep) + min(len(candidates), limit or len(candidates)))
    for c in keep:
        seq.block(c)
        refs.add(_unit(c.embedding))
    builder = _Builder(seq, refs, [_Stream(list(candidates), 0)], relax=False)
    builder.run(len(candidates) if limit is None else limit)
    return list(seq.tracks)


def song_mix(
    seed: Candidate,
    candidates: Sequence[Candidate],
    n: int,
    rules: MixRules = DEFAULT_RULES,
    *,
    relax: bool = True,
) -> MixResult:
    """An *n*-track mix (seed included, first) from the seed's nearest neighbours.

    *candidates* are ranked by ``distance`` (stable, so ties keep their order); the seed's
    own id among them is ignored. With ``relax=False`` soft rules are never broken and
    the mix may be shorter than *n*.
    """
    _check_n(n)
    seq = _Seq(rules, fixed=1)
    seq.ids.update(rules.exclude_ids)
    seq.place(seed, _meta(seed), 0)
    refs = _Refs(rules.duplicate_distance, n + 1)
    refs.add(_unit(seed.embedding))
    stream = _Stream(sorted(candidates, key=_by_distance), 0)
    _Builder(seq, refs, [stream], relax).run(n)
    return seq.result()


def multi_seed_mix(
    seeds: Sequence[Candidate],
    candidates_by_seed: Mapping[str, Sequence[Candidate]],
    n: int,
    rules: MixRules = DEFAULT_RULES,
    *,
    relax: bool = True,
) -> MixResult:
    """An *n*-track mix around several seeds (an album's tracks, a sample of an artist,
    a playlist, a genre's centre tracks).

    ``candidates_by_seed[seed.item_id]`` is that seed's neighbour list. Seeds themselves
    (and other versions of them: same title + artist) never appear. Merging is
    round-robin by rank: each position goes to the seed that has waited longest (seeds
    start in the given order), which takes its best-ranked candidate that fits; a seed
    whose candidates do not fit yet yields its turn and keeps its place at the head of
    the queue. A track in several seeds' lists is placed once. When the positions left
    are no more than the seeds not yet represented, only those seeds may pick (breaking
    soft rules if they must), so with ``n >= len(seeds)`` every seed that has a usable
    candidate is represented.
    """
    _check_n(n)
    seq = _Seq(rules, fixed=0)
    seq.ids.update(rules.exclude_ids)
    refs = _Refs(rules.duplicate_distance, len(seeds) + n)
    streams: list[_Stream] = []
    seen_seeds: set[str] = set()
    for seed in seeds:
        seq.block(seed)
        refs.add(_unit(seed.embedding))
    for seed in seeds:
        if seed.item_id in seen_seeds:
            continue
        seen_seeds.add(seed.item_id)
        cands = candidates_by_seed.get(seed.item_id)
        if cands:
            streams.append(_Stream(sorted(cands, key=_by_distance), len(streams), n // len(seeds) + 1))
    _Builder(seq, refs, streams, relax).run(n)
    return seq.result()


def path_points(start: Vector, end: Vector, n_steps: int) -> Vector:
    """*n_steps* unit vectors from ``start`` to ``end`` (both included), equally spaced in
    angle along the great circle between them (spherical linear interpolation).

    Slerp rather than lerp: cosine distance only sees directions, i.e. points on the unit
    sphere, and slerp moves the same angle (the same cosine distance) per step. A straight
    line between the unit vectors, re-normalised, crowds the points near both ends when
    the songs are far apart and passes near the origin (direction undefined) when they
    are nearly opposite. Opposite endpoints get a deterministic great circle.
    """
    if n_steps < 2:
        raise ValueError("n_steps must be >= 2")
    a = np.asarray(start, dtype=np.float64).ravel()
    b = np.asarray(end, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError("start and end embeddings differ in length")
    a = a / max(float(np.linalg.norm(a)), 1e-300)
    b = b / max(float(np.linalg.norm(b)), 1e-300)
    t = np.linspace(0.0, 1.0, n_steps)[:, None]
    # p(t) = cos(t*omega) a + sin(t*omega) u, with u the unit tangent at a towards b
    # (the textbook slerp formula divides by sin(omega) and falls apart near 180 degrees)
    u = b - np.dot(a, b) * a
    u -= np.dot(u, a) * a
    u_norm = float(np.linalg.norm(u))
    omega = math.atan2(u_norm, float(np.dot(a, b)))
    if omega < 1e-9:
        points = np.repeat(a[None, :], n_steps, axis=0)
    else:
        if u_norm < 1e-9:
            # opposite ends: every great circle through both is a geodesic; take the one
            # through the axis least aligned with a, so the choice is deterministic
            axis = np.zeros_like(a)
            axis[int(np.argmin(np.abs(a)))] = 1.0
            u = axis - np.dot(axis, a) * a
            u_norm = float(np.linalg.norm(u))
        u = u / u_norm
        points = np.cos(t * omega) * a + np.sin(t * omega) * u
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    points = points / np.maximum(norms, 1e-12)
    points[0], points[-1] = a, b
    result: Vector = points.astype(np.float32)
    return result


def _path(
    start: Candidate,
    end: Candidate,
    n_steps: int,
    rules: MixRules,
    k: int,
    relax: bool,
) -> Generator[PathQuery, Sequence[Candidate], MixResult]:
    if n_steps < 2:
        raise ValueError("n_steps must be >= 2")
    if k < 1:
        raise ValueError("k must be >= 1")
    if start.item_id == end.item_id:
        raise ValueError("start and end are the same track")
    points = path_points(start.embedding, end.embedding, n_steps)
    seq = _Seq(rules, fixed=1)
    seq.place(start, _meta(start), 0)
    end_meta = _meta(end)
    seq.block(end, end_meta)
    _, end_artist, end_album = end_meta
    if end_artist is not None:
        seq.counts[end_artist] = seq.counts.get(end_artist, 0) + 1
    refs = _Refs(rules.duplicate_distance, n_steps + 1)
    refs.add(points[0])
    refs.add(points[-1])
    dead = set(rules.exclude_ids) | {start.item_id, end.item_id}
    for step in range(1, n_steps - 1):
        pos = len(seq)
        end_pos = pos + (n_steps - 1 - step)  # where the end track lands if no step fails
        want = k
        chosen: tuple[int, Candidate, _Meta, Vector] | None = None
        exhausted = False
        for _attempt in range(12):
            got = yield PathQuery(points[step], want, frozenset(dead))
            ranked = sorted(got, key=_by_distance)
            live: list[tuple[int, Candidate, _Meta]] = []
            for c in ranked:
                if c.item_id in seq.ids or c.item_id in dead:
                    dead.add(c.item_id)
                    continue
                meta = _meta(c)
                key, artist, album = meta
                if key is not None and key in seq.keys:
                    dead.add(c.item_id)
                    continue
                mask = seq.order_mask(artist, album)
                if seq.cap and artist is not None and seq.counts.get(artist, 0) >= seq.cap:
                    mask |= _CAP
                if artist is not None and seq.adj and artist == end_artist and end_pos == pos + 1:
                    mask |= _ADJ
                if seq.spacing and album is not None and album == end_album and end_pos - pos <= seq.spacing:
                    mask |= _SP
                live.append((mask, c, meta))
            if live:
                rows = _unit_rows([c.embedding for _, c, _ in live])
                near = refs.near_rows(rows) if refs.on else [False] * len(live)
                best = -1
                best_mask = 16
                for i, (mask, _c, _m) in enumerate(live):
                    full = mask | (_DUP if near[i] else 0)
                    if full < best_mask:
                        best, best_mask = i, full
                        if full == 0:
                            break
                if best >= 0 and (relax or best_mask == 0):
                    chosen = (best_mask, live[best][1], live[best][2], rows[best])
                break
            if len(got) < want:
                exhausted = True
                break
            want = min(want * 2, 4096)
        if chosen is not None:
            mask, c, meta, row = chosen
            seq.place(c, meta, mask)
            refs.add(row)
            dead.add(c.item_id)
        elif exhausted:
            break
    seq.place(end, end_meta, seq.order_mask(end_artist, end_album), counted=True)
    if seq.cap and any(count > seq.cap for count in seq.counts.values()):
        seq.violations |= _CAP
    if refs.near(points[0], 1):
        seq.violations |= _DUP  # the two ends themselves are near-identical
    return seq.result()


def song_path(
    start: Candidate,
    end: Candidate,
    n_steps: int,
    pool_query: PoolQuery,
    rules: MixRules = DEFAULT_RULES,
    *,
    k: int = 25,
    relax: bool = True,
) -> MixResult:
    """A path of *n_steps* tracks (both ends included) from *start* to *end*.

    Step *i* asks ``pool_query(vector, k, excluded_ids)`` for the tracks nearest to the
    *i*-th point of :func:`path_points` (excluding everything already used, the
    ``exclude_ids`` and both ends) and takes the best one that fits the rules (least
    severe relaxation first, then nearest). If every returned track breaks a
    never-relaxed rule the step asks again with those excluded and a larger *k*; a step
    is dropped only when the pool has nothing left, so the path has *n_steps* tracks
    whenever the pool allows. Artist/album rules treat *end* as the last track. With
    ``relax=False`` a step whose *k* nearest tracks all break a soft rule is dropped.
    The ends are always used, even if excluded; raises ``ValueError`` when they are the
    same track or ``n_steps < 2``.
    """
    gen = _path(start, end, n_steps, rules, k, relax)
    try:
        query = next(gen)
        while True:
            query = gen.send(pool_query(query.vector, query.k, query.excluded))
    except StopIteration as done:
        result: MixResult = done.value
        return result


async def song_path_async(
    start: Candidate,
    end: Candidate,
    n_steps: int,
    pool_query: AsyncPoolQuery,
    rules: MixRules = DEFAULT_RULES,
    *,
    k: int = 25,
    relax: bool = True,
) -> MixResult:
    """:func:`song_path` with an ``async`` pool query (e.g. asyncpg)."""
    gen = _path(start, end, n_steps, rules, k, relax)
    try:
        query = next(gen)
        while True:
            query = gen.send(await pool_query(query.vector, query.k, query.excluded))
    except StopIteration as done:
        result: MixResult = done.value
        return result
