"""From a fitted run to playlists (research A.6, A.9), without upstream's bugs.

Per run: each cluster's members within MAX_DISTANCE (a share of the run's largest
track-to-centre distance) nearest first, at most MAX_SONGS_PER_ARTIST per artist, each song
once in the whole run (the mix engine's song identity: the same normalised title and artist on
another album is the same song), and only playlists of at least MIN_PLAYLIST_SIZE songs.
At the end: the TOP_N_PLAYLISTS most diverse, and lists longer than MAX_SONGS_PER_CLUSTER split
into numbered parts (upstream truncated first, so its split never happened).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sidecar.clustering.data import Library
from sidecar.clustering.models import Fitted

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class Candidate:
    """One cluster's playlist: library rows (best first), its centre in the clustered space and
    the mean score vector of all its members (its profile, for naming and scoring)."""

    cluster: int
    rows: list[int]
    centre: Floats
    profile: Floats


def distances(fitted: Fitted) -> Floats:
    """Each row's distance to its own centre, divided by the largest finite one; noise is inf."""
    d = np.full(fitted.labels.shape[0], np.inf)
    for c, centre in fitted.centres.items():
        mask = fitted.labels == c
        d[mask] = np.linalg.norm(fitted.data[mask] - centre, axis=1)
    finite = d[np.isfinite(d)]
    top = float(finite.max()) if finite.size else 0.0
    if top > 0:
        d[np.isfinite(d)] /= top
    return d


def candidates(
    lib: Library,
    sample: Sequence[int],
    fitted: Fitted,
    *,
    max_distance: float,
    max_per_artist: int,
    min_size: int,
) -> list[Candidate]:
    """The run's playlists; ``sample[i]`` is the library row of the fitted data's row ``i``."""
    dist = distances(fitted)
    rows = np.asarray(sample, dtype=np.int64)
    seen: set[tuple[str, str] | str] = set()
    out: list[Candidate] = []
    for c in sorted(fitted.centres):
        members = np.flatnonzero(fitted.labels == c)
        if members.size == 0:
            continue
        profile = lib.vectors[rows[members]].mean(axis=0)
        kept = members[dist[members] <= max_distance]
        kept = kept[np.argsort(dist[kept], kind="stable")]
        per_artist: Counter[str] = Counter()
        chosen: list[int] = []
        for row in rows[kept].tolist():
            artist = lib.artist_keys[row]
            if artist and per_artist[artist] >= max_per_artist:
                continue
            key = lib.song_keys[row]
            if key in seen or lib.ids[row] in seen:
                continue
            seen.add(key)
            seen.add(lib.ids[row])
            per_artist[artist] += 1
            chosen.append(row)
        if len(chosen) >= max(1, min_size):
            out.append(Candidate(int(c), chosen, fitted.centres[c], profile))
    return out


def select_diverse(cands: Sequence[Candidate], n: int) -> list[Candidate]:
    """The ``n`` most diverse playlists (all when ``n`` is 0 or not smaller than their number):
    first the largest, then each time the one maximising (distance of its centre to the
    nearest chosen centre) x log1p(size), each normalised by its maximum over the remaining."""
    if n <= 0 or len(cands) <= n:
        return list(cands)
    remaining = list(cands)
    first = max(remaining, key=lambda c: len(c.rows))
    chosen = [first]
    remaining.remove(first)
    while len(chosen) < n and remaining:
        centres = np.stack([c.centre for c in chosen])
        d = np.array([float(np.min(np.linalg.norm(centres - c.centre, axis=1))) for c in remaining])
        s = np.array([math.log1p(len(c.rows)) for c in remaining])
        d = d / d.max() if d.max() > 0 else np.ones_like(d)
        s = s / s.max() if s.max() > 0 else np.ones_like(s)
        pick = int(np.argmax(d * s))
        chosen.append(remaining.pop(pick))
    return chosen


def split(rows: Sequence[int], max_songs: int) -> list[list[int]]:
    """``rows`` in parts of at most ``max_songs`` (one part when 0), as even as possible."""
    if max_songs <= 0 or len(rows) <= max_songs:
        return [list(rows)]
    parts = math.ceil(len(rows) / max_songs)
    size = math.ceil(len(rows) / parts)
    return [list(rows[i : i + size]) for i in range(0, len(rows), size)]
