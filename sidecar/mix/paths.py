"""Song paths: from one track to another in equal steps over the embedding sphere.

A path is built step by step (its order *is* the path), so here the rules are checked per
position: each step takes, among the tracks nearest to its point, the one breaking the least
severe set of soft rules (none if possible), then the nearest.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Hashable, Sequence

import numpy as np

from sidecar.mix.model import (
    ADJ,
    CAP,
    DEFAULT_RULES,
    DUP,
    SP,
    AsyncPoolQuery,
    Candidate,
    Meta,
    MixResult,
    MixRules,
    PathQuery,
    PoolQuery,
    Vector,
    meta,
    rule_names,
)
from sidecar.mix.sequencing import ordering_violations
from sidecar.mix.vectors import NearRefs, unit_rows


class _PathState:
    """The path under construction and the bookkeeping every rule check needs."""

    __slots__ = ("tracks", "metas", "counts", "ids", "keys", "rules", "violations")

    def __init__(self, rules: MixRules) -> None:
        self.tracks: list[Candidate] = []
        self.metas: list[Meta] = []
        self.counts: dict[str, int] = {}
        self.ids: set[str] = set()
        self.keys: set[tuple[str, str]] = set()
        self.rules = rules
        self.violations = 0

    def __len__(self) -> int:
        return len(self.tracks)

    def order_mask(self, artist: str | None, album: Hashable | None) -> int:
        """Ordering rules broken by appending a track with this artist and album."""
        mask = 0
        if (
            self.rules.no_artist_in_a_row
            and artist is not None
            and self.metas
            and self.metas[-1].artist == artist
        ):
            mask = ADJ
        spacing = self.rules.album_spacing
        if spacing and album is not None and any(m.album == album for m in self.metas[-spacing:]):
            mask |= SP
        return mask

    def place(self, c: Candidate, m: Meta, mask: int, counted: bool = False) -> None:
        self.tracks.append(c)
        self.metas.append(m)
        self.block(c, m)
        if m.artist is not None and not counted:
            self.counts[m.artist] = self.counts.get(m.artist, 0) + 1
        self.violations |= mask

    def block(self, c: Candidate, m: Meta) -> None:
        self.ids.add(c.item_id)
        if m.key is not None:
            self.keys.add(m.key)

    def result(self) -> MixResult:
        mask = (self.violations & (CAP | DUP)) | ordering_violations(self.metas, self.rules)
        return MixResult(list(self.tracks), rule_names(mask))


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
    seq = _PathState(rules)
    seq.place(start, meta(start), 0)
    end_meta = meta(end)
    seq.block(end, end_meta)
    _, end_artist, end_album = end_meta
    if end_artist is not None:
        seq.counts[end_artist] = seq.counts.get(end_artist, 0) + 1
    cap, adj, spacing = rules.max_songs_per_artist, rules.no_artist_in_a_row, rules.album_spacing
    refs = NearRefs(rules.duplicate_distance, n_steps + 1)
    refs.add(points[0])
    refs.add(points[-1])
    dead = set(rules.exclude_ids) | {start.item_id, end.item_id}
    for step in range(1, n_steps - 1):
        pos = len(seq)
        end_pos = pos + (n_steps - 1 - step)  # where the end track lands if no step fails
        want = k
        chosen: tuple[int, Candidate, Meta, Vector] | None = None
        exhausted = False
        for _attempt in range(12):
            got = yield PathQuery(points[step], want, frozenset(dead))
            ranked = sorted(got, key=lambda c: c.distance)
            live: list[tuple[int, Candidate, Meta]] = []
            for c in ranked:
                if c.item_id in seq.ids or c.item_id in dead:
                    dead.add(c.item_id)
                    continue
                m = meta(c)
                if m.key is not None and m.key in seq.keys:
                    dead.add(c.item_id)
                    continue
                mask = seq.order_mask(m.artist, m.album)
                if cap and m.artist is not None and seq.counts.get(m.artist, 0) >= cap:
                    mask |= CAP
                if m.artist is not None and adj and m.artist == end_artist and end_pos == pos + 1:
                    mask |= ADJ
                if spacing and m.album is not None and m.album == end_album and end_pos - pos <= spacing:
                    mask |= SP
                live.append((mask, c, m))
            if live:
                rows = unit_rows([c.embedding for _, c, _ in live])
                near = refs.near_rows(rows) if refs.on else [False] * len(live)
                best = -1
                best_mask = 16
                for i, (mask, _c, _m) in enumerate(live):
                    full = mask | (DUP if near[i] else 0)
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
            mask, c, m, row = chosen
            seq.place(c, m, mask)
            refs.add(row)
            dead.add(c.item_id)
        elif exhausted:
            break
    seq.place(end, end_meta, seq.order_mask(end_artist, end_album), counted=True)
    if cap and any(count > cap for count in seq.counts.values()):
        seq.violations |= CAP
    if refs.near(points[0], 1):
        seq.violations |= DUP  # the two ends themselves are near-identical
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
