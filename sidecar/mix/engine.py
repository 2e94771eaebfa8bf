"""The mix engine: pure functions that turn nearest-neighbour candidates into a mix.

Nothing here touches the database or the network. The caller (the pgvector search)
produces :class:`Candidate` lists ranked by cosine distance; the engine chooses and orders
tracks under :class:`MixRules` and returns a :class:`MixResult`. This module is the engine's
front: it re-exports the public names of the modules that do the work.

Rules
-----
Never relaxed (a mix is shorter rather than break these):

* the seed comes first in a song mix and never appears again; seeds of a multi-seed mix
  never appear at all;
* no item id twice; no two tracks with the same normalised title + primary artist
  (:func:`sidecar.mix.normalize.track_key`, e.g. the same song on an album and on a
  compilation, or its remaster);
* no id from ``MixRules.exclude_ids`` (the client's ``previous`` list).

Soft, relaxed in this order only when they would leave the mix short or cannot be kept
(:data:`RELAXATION_ORDER`):

1. ``album_spacing`` – at least ``MixRules.album_spacing`` other tracks between two
   tracks of the same album (ordering);
2. ``artist_in_a_row`` – never the same (primary) artist twice in a row (ordering);
3. ``max_songs_per_artist`` – at most ``MixRules.max_songs_per_artist`` tracks per
   artist, the seed included (which tracks);
4. ``duplicate_distance`` – no two tracks (seeds included) closer than
   ``MixRules.duplicate_distance`` in cosine distance (near-identical audio; which tracks).

An artist that is empty or a placeholder (``[unknown]``, ``Various Artists``: see
:func:`sidecar.mix.normalize.normalize_artist`) is no artist: never capped or kept apart.

How a mix is built: first the set, then its order
--------------------------------------------------
* :mod:`sidecar.mix.selection` / :mod:`sidecar.mix.merge` choose the set: the nearest
  candidates (round-robin over the seeds of a multi-seed mix) that keep the rules about
  *which* tracks (never-relaxed rules, the artist cap, near-identical audio). A candidate
  is only ever left out for one of those rules, never for album spacing or an artist in a
  row, so no excluded candidate is nearer than an included one unless such a rule excluded it.
* :mod:`sidecar.mix.sequencing` orders the set: the seed first, albums and artists apart,
  each step near the last; spacing is relaxed gradually, and only when no order keeps it.
* :func:`similar_tracks` is the set alone, ordered by distance (no album rule).
* :mod:`sidecar.mix.paths` builds song paths step by step.
"""

from __future__ import annotations

from sidecar.mix.mixes import dedupe, multi_seed_mix, similar_tracks, song_mix
from sidecar.mix.model import (
    ALBUM_SPACING,
    ARTIST_CAP,
    ARTIST_IN_A_ROW,
    DEFAULT_RULES,
    DUPLICATE_DISTANCE,
    RELAXATION_ORDER,
    AsyncPoolQuery,
    Candidate,
    MixResult,
    MixRules,
    PathQuery,
    PoolQuery,
)
from sidecar.mix.paths import path_points, song_path, song_path_async
from sidecar.mix.vectors import cosine_distance, total_distance

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
    "similar_tracks",
    "song_mix",
    "song_path",
    "song_path_async",
    "total_distance",
]
