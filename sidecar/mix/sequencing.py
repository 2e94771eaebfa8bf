"""Ordering a chosen set into a mix: the same album or artist never back to back, and a flow.

The set is fixed before this runs (:mod:`sidecar.mix.selection`); here only the order is
decided, so spacing rules never cost a near track its place.  Rules (:class:`MixRules`):

* ``no_artist_in_a_row``: never the same (known) artist on consecutive positions;
* ``album_spacing`` = s: at least s other tracks between two tracks of the same album.

Flow: after the fixed lead (a song mix's seed), each next track is the one with the lowest
``distance to the previous track + distance to its seed`` among those the rules allow: each
step is near the last, and the mix starts with what is nearest to the seed and moves out.

The order is searched depth first, cheapest step first, so the first descent is that greedy
flow; a step is only allowed when the rest can still be placed by the necessary counting
conditions (an artist holding half of what is left, rounded up, must come now; an album needs
``(m - 1) * (s + 1) + 1`` positions for its m tracks, after the ones it is still blocked for),
and when a dead end is met anyway the search backtracks, trying one track per (artist, album)
class (tracks of a class are interchangeable for the rules), within a budget of steps.

When no order keeps album spacing s, it is relaxed gradually: first each album gets the
largest spacing its own count allows in the mix (an album with half the set can at best
alternate), then every album's spacing is lowered one step at a time down to 1 (never back to
back), and only then to 0.  Where an album can keep the full spacing it is still preferred.
When even that fails (an artist holds more than half the set, which needs the cap relaxed or
off; or the budget ran out), a greedy order breaks the fewest rules: artist repeats last, then
back-to-back albums, taking from the largest group while it may.  With ``relax=False`` the
order stops at the first track that cannot be placed without breaking a rule.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from sidecar.mix.model import ADJ, SP, Candidate, Meta, MixRules, Vector

NEVER = -(1 << 30)  # "last placed at" of an album not placed yet
_FREE = (-1, -1)  # no artist or album must come next


def ordering_violations(metas: Sequence[Meta], rules: MixRules) -> int:
    """ADJ / SP bits of the rules an order breaks."""
    mask = 0
    if rules.no_artist_in_a_row:
        for a, b in pairwise(metas):
            if a.artist is not None and a.artist == b.artist:
                mask = ADJ
                break
    spacing = rules.album_spacing
    if spacing:
        last: dict[Hashable, int] = {}
        for i, m in enumerate(metas):
            if m.album is not None:
                if i - last.get(m.album, -spacing - 1) <= spacing:
                    mask |= SP
                    break
                last[m.album] = i
    return mask


class _Ranking:
    """For each track t (and, as row n, for "no track yet"), every track by the cost of coming
    after it, cheapest first.  Only the first ``HEAD`` of each row are sorted up front (a step
    rarely looks further); a row's tail is sorted the first time a step walks past its head."""

    HEAD = 32

    def __init__(self, costs: npt.NDArray[np.float32]) -> None:
        self.costs = costs
        n = costs.shape[1]
        self.complete = n <= self.HEAD
        if self.complete:
            self.head: list[list[int]] = np.argsort(costs, axis=1, kind="stable").tolist()
        else:
            part = np.argpartition(costs, self.HEAD - 1, axis=1)[:, : self.HEAD]
            order = np.argsort(np.take_along_axis(costs, part, axis=1), axis=1, kind="stable")
            self.head = np.take_along_axis(part, order, axis=1).tolist()
        self.tails: dict[int, list[int]] = {}

    def tail(self, row: int) -> list[int]:
        """The rest of the row, after its head."""
        if self.complete:
            return []
        found = self.tails.get(row)
        if found is None:
            head = set(self.head[row])
            found = self.tails[row] = [
                t for t in np.argsort(self.costs[row], kind="stable").tolist() if t not in head
            ]
        return found


class _Orderer:
    """Search state over positions; artists and albums as small ints (-1 = none).

    ``ranked[t]``: every track by the cost of following t (distance to t + distance to its
    seed), cheapest first; ``ranked[-1]`` (index n) by the distance to the seed alone, for a
    first track.  A node looks for its next step along that list, so the greedy descent costs
    little more than the few tracks it skips."""

    def __init__(
        self,
        artists: list[int],
        albums: list[int],
        ranked: _Ranking,
        fixed: int,
        adj: bool,
        spacing: int,
        budget: int,
    ) -> None:
        self.artists, self.albums, self.ranked = artists, albums, ranked
        self.n, self.fixed, self.adj, self.spacing, self.budget = len(artists), fixed, adj, spacing, budget
        self.n_artists = max(artists, default=-1) + 1
        self.n_albums = max(albums, default=-1) + 1
        self.classes = [(a, b) for a, b in zip(artists, albums, strict=True)]
        self.sp_top = spacing

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        n, fixed = self.n, self.fixed
        self.order = list(range(fixed))
        self.left = [False] * fixed + [True] * (n - fixed)
        self.art_left = [0] * self.n_artists
        self.alb_left = [0] * self.n_albums
        for t in range(fixed, n):
            if self.artists[t] >= 0:
                self.art_left[self.artists[t]] += 1
            if self.albums[t] >= 0:
                self.alb_left[self.albums[t]] += 1
        # how many artists / albums have c tracks left, and the largest c (kept as tracks come and go)
        self.art_hist = [0] * (n + 2)
        for c in self.art_left:
            self.art_hist[c] += 1
        self.art_top = max(self.art_left, default=0)
        self.alb_hist = [0] * (n + 2)
        for c in self.alb_left:
            self.alb_hist[c] += 1
        self.alb_top = max(self.alb_left, default=0)
        self.alb_last = [NEVER] * self.n_albums
        for pos in range(fixed):
            if self.albums[pos] >= 0:
                self.alb_last[self.albums[pos]] = pos

    def _place(self, t: int) -> int:
        """Append t; returns what undo needs (the album's previous last position)."""
        pos = len(self.order)
        self.order.append(t)
        self.left[t] = False
        a, b = self.artists[t], self.albums[t]
        if a >= 0:
            c = self.art_left[a]
            self.art_left[a] = c - 1
            self.art_hist[c] -= 1
            self.art_hist[c - 1] += 1
            if c == self.art_top and not self.art_hist[c]:
                self.art_top = c - 1
        prev = NEVER
        if b >= 0:
            c = self.alb_left[b]
            self.alb_left[b] = c - 1
            self.alb_hist[c] -= 1
            self.alb_hist[c - 1] += 1
            if c == self.alb_top and not self.alb_hist[c]:
                self.alb_top = c - 1
            prev = self.alb_last[b]
            self.alb_last[b] = pos
        return prev

    def _undo(self, prev: int) -> None:
        t = self.order.pop()
        self.left[t] = True
        a, b = self.artists[t], self.albums[t]
        if a >= 0:
            c = self.art_left[a]
            self.art_left[a] = c + 1
            self.art_hist[c] -= 1
            self.art_hist[c + 1] += 1
            self.art_top = max(self.art_top, c + 1)
        if b >= 0:
            c = self.alb_left[b]
            self.alb_left[b] = c + 1
            self.alb_hist[c] -= 1
            self.alb_hist[c + 1] += 1
            self.alb_top = max(self.alb_top, c + 1)
            self.alb_last[b] = prev

    # ------------------------------------------------------------------ one node
    def _limits(self, sp: list[int]) -> tuple[int, int] | None:
        """(artist that must come next or -1, album that must come next or -1), or None when the
        counting conditions say the tracks left cannot all be placed from here."""
        R, pos = self.n - len(self.order), len(self.order)
        if 2 * self.art_top < R and (self.alb_top - 1) * (self.sp_top + 1) + self.sp_top + 2 <= R:
            return _FREE  # no artist near half of what is left, no album near its limit
        forced_artist = urgent_album = -1
        if self.adj and self.n_artists:
            top = self.art_top
            last = self.order[-1] if self.order else -1
            la = self.artists[last] if last >= 0 else -1
            if top > (R + 1) // 2 or (la >= 0 and self.art_left[la] > R // 2):
                return None
            if R % 2 and top >= 2 and top == (R + 1) // 2:
                forced_artist = self.art_left.index(top)
        if self.n_albums:
            top, sp_top = self.alb_top, self.sp_top
            if (top - 1) * (sp_top + 1) + sp_top + 2 > R:  # some album may be tight: look closer
                alb_last = self.alb_last
                for b, m in enumerate(self.alb_left):
                    if not m:
                        continue
                    s = sp[b]
                    need = (m - 1) * (s + 1) + 1
                    wait = s - (pos - 1 - alb_last[b])
                    if wait > 0:
                        if wait + need > R:
                            return None
                    elif need > R:
                        return None
                    elif need == R:  # another track first would leave it short
                        if urgent_album >= 0:
                            return None  # two albums that must both come next
                        urgent_album = b
        return forced_artist, urgent_album

    def _next(self, sp: list[int], limits: tuple[int, int], tried: set[tuple[int, int]]) -> int:
        """The best track that may come next and whose (artist, album) class was not tried yet
        (spacing ``sp``, preferring the rule's own spacing, then cost), or -1."""
        forced_artist, urgent_album = limits
        pos = len(self.order)
        last = self.order[-1] if self.order else -1
        la = self.artists[last] if last >= 0 and self.adj else -1
        left, artists, albums, alb_last, conf = (
            self.left,
            self.artists,
            self.albums,
            self.alb_last,
            self.spacing,
        )
        fallback = -1
        row = last if last >= 0 else self.n
        for part in (self.ranked.head[row], None):
            for t in part if part is not None else self.ranked.tail(row):
                if not left[t]:
                    continue
                a = artists[t]
                if a == la and a >= 0:
                    continue
                b = albums[t]
                if b >= 0 and pos - alb_last[b] <= sp[b]:
                    continue
                if (forced_artist >= 0 and a != forced_artist) or (urgent_album >= 0 and b != urgent_album):
                    continue
                if tried and self.classes[t] in tried:
                    continue
                if b >= 0 and pos - alb_last[b] <= conf:  # keeps this level's spacing, not the rule's
                    if fallback < 0:
                        fallback = t
                    continue
                return t
        return fallback

    # ------------------------------------------------------------------ searches
    def search(self, sp: list[int]) -> list[int] | None:
        """An order keeping artist adjacency and album spacing ``sp`` (per album), or None when
        there is none or the budget of steps ran out first."""
        self._reset()
        self.sp_top = max(sp, default=0)
        if len(self.order) == self.n:
            return list(self.order)
        nodes = 0
        # one frame per position: its limits (None: dead end), the classes tried there, undo info
        stack: list[tuple[tuple[int, int] | None, set[tuple[int, int]], int]] = [
            (self._limits(sp), set(), NEVER)
        ]
        while stack:
            limits, tried, prev = stack[-1]
            t = self._next(sp, limits, tried) if limits is not None else -1
            if t < 0:
                stack.pop()
                if stack:
                    self._undo(prev)
                continue
            tried.add(self.classes[t])
            nodes += 1
            if nodes > self.budget:
                return None
            undo = self._place(t)
            if len(self.order) == self.n:
                return list(self.order)
            stack.append((self._limits(sp), set(), undo))
        return None

    def greedy(self, strict: bool) -> list[int]:
        """One pass, no search. ``strict``: only steps that break nothing, stop when none is left;
        else the step breaking the fewest rules (artist, then back to back, then spacing), from
        the largest group left while it may, then the cheapest."""
        self._reset()
        conf = self.spacing
        artists, albums = self.artists, self.albums
        while len(self.order) < self.n:
            pos = len(self.order)
            last = self.order[-1] if self.order else -1
            la = artists[last] if last >= 0 else -1
            lb = albums[last] if last >= 0 else -1
            best: tuple[int, int, int, int, int] | None = None
            row = last if last >= 0 else self.n
            ranked = self.ranked.head[row] + self.ranked.tail(row)
            for rank, t in enumerate(ranked):
                if not self.left[t]:
                    continue
                a, b = artists[t], albums[t]
                adj = 1 if self.adj and la >= 0 and a == la else 0
                b2b = 1 if b >= 0 and b == lb else 0
                spv = 1 if b >= 0 and pos - self.alb_last[b] <= conf else 0
                if strict and (adj or spv):
                    continue
                group = (
                    0 if strict else max(self.art_left[a] if a >= 0 else 0, self.alb_left[b] if b >= 0 else 0)
                )
                key = (adj, b2b, spv, -group, rank)
                if best is None or key < best:
                    best = key
                if strict:
                    break
            if best is None:
                break
            self._place(ranked[best[-1]])
        return list(self.order)


def _level_schedule(albums: list[int], n_albums: int, n: int, spacing: int) -> list[list[int]]:
    """Per-album spacings to try: the rule's; then what each album's count allows in n places;
    then lower, one at a time, but not below 1 (never back to back) until every album is at 1
    or less; then 0 everywhere (back to back allowed, artists still apart)."""
    if not spacing or not n_albums:
        return [[spacing] * n_albums]
    counts = [0] * n_albums
    for b in albums:
        if b >= 0:
            counts[b] += 1
    levels = [[spacing] * n_albums]
    current = [min(spacing, (n - m) // (m - 1)) if m >= 2 else spacing for m in counts]
    while True:
        if current != levels[-1]:
            levels.append(current)
        if max(current) <= 1:
            break
        current = [s - 1 if s > 1 else s for s in current]
    if any(levels[-1]):
        levels.append([0] * n_albums)
    return levels


def sequence(
    tracks: Sequence[Candidate],
    metas: Sequence[Meta],
    rows: Vector,
    fixed: int,
    anchor: Sequence[float] | None,
    rules: MixRules,
    relax: bool,
) -> tuple[list[int], int]:
    """The order of *tracks* (indices; the first *fixed* stay in front) and the ADJ / SP bits of
    the rules it breaks (see the module's doc). *rows* are their unit embeddings; *anchor* the
    distance of each track to its seed (None: to the first track, a song mix's seed)."""
    n = len(tracks)
    if n - fixed <= 1:  # one order only
        mask = ordering_violations(metas, rules)
        return (list(range(n)) if relax or not mask else list(range(fixed))), (mask if relax else 0)
    art_codes: dict[str, int] = {}
    alb_codes: dict[Hashable, int] = {}
    adj = rules.no_artist_in_a_row
    artists = [
        art_codes.setdefault(m.artist, len(art_codes)) if adj and m.artist is not None else -1 for m in metas
    ]
    spacing = rules.album_spacing
    albums = [
        alb_codes.setdefault(m.album, len(alb_codes)) if spacing and m.album is not None else -1
        for m in metas
    ]
    dist = 1.0 - np.clip(rows @ rows.T, -1.0, 1.0)
    anchors = np.asarray(anchor, dtype=np.float32) if anchor is not None else dist[0]
    # row t: the cost of following t; the extra last row: of coming first (the anchor alone)
    costs = np.vstack([dist + anchors[None, :], anchors[None, :]])
    budget = 64 + 8 * n
    orderer = _Orderer(artists, albums, _Ranking(costs), fixed, adj, spacing, budget)
    order: list[int] | None = None
    for sp in _level_schedule(albums, len(alb_codes), n, spacing):
        order = orderer.search(sp)
        if order is not None:
            break
    if order is None:
        order = orderer.greedy(strict=False)
    mask = ordering_violations([metas[i] for i in order], rules)
    if mask and not relax:
        order = orderer.greedy(strict=True)
        mask = ordering_violations([metas[i] for i in order], rules)
    return order, mask
