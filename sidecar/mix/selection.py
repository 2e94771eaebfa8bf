"""Choosing which tracks a mix (or a similar list) holds: the nearest candidates that keep the
rules about the *set*, before anything is ordered.

Never relaxed: no item id twice, no song twice (same normalised title + artist,
:func:`sidecar.mix.normalize.track_key`), nothing from ``MixRules.exclude_ids``, never a seed
of a multi-seed mix.  Relaxed, in this order, only when the candidates cannot fill the answer
otherwise: the per-artist cap (``max_songs_per_artist``), then near-identical audio
(``duplicate_distance``).

A candidate list is scanned once, in the order given (rank order: nearest first); every
candidate that breaks no rule is taken, so the chosen set is the nearest one the rules allow.
Candidates over the cap or near-identical to a chosen track are put aside, grouped by artist,
as the last resort: when the list runs out, the least-breaking of them fills the gap (the cap
before near-identical audio, the artist the fewest tracks over the cap, then rank).  Album
spacing and "artist in a row" play no part here: they order the set
(:mod:`sidecar.mix.sequencing`), they never push a nearer track out for a farther one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from sidecar.mix.model import CAP, DUP, Candidate, Meta, MixRules, Vector, meta
from sidecar.mix.vectors import LazyRows, NearRefs


class Picker:
    """The set under construction: what it holds (in the order chosen) and what it may not take."""

    __slots__ = ("cap", "ids", "keys", "counts", "refs", "chosen", "chosen_ids", "rows", "violations")

    def __init__(self, rules: MixRules, capacity: int) -> None:
        self.cap = rules.max_songs_per_artist
        self.ids: set[str] = set(rules.exclude_ids)  # ids that may not be taken (taken, excluded, seeds)
        self.keys: set[tuple[str, str]] = set()  # songs that may not be taken
        self.counts: dict[str, int] = {}
        self.refs = NearRefs(rules.duplicate_distance, capacity)
        self.chosen: list[Candidate] = []
        self.chosen_ids: set[str] = set()
        self.rows: list[Vector] = []  # unit embeddings of the chosen tracks
        self.violations = 0  # CAP / DUP bits of the relaxed picks

    def __len__(self) -> int:
        return len(self.chosen)

    def block(self, c: Candidate, row: Vector | None = None) -> None:
        """Make *c* (and its song) untakeable without taking it; with *row*, nothing
        near-identical to it may be taken either (a seed of a multi-seed mix)."""
        self.ids.add(c.item_id)
        key = meta(c).key
        if key is not None:
            self.keys.add(key)
        if row is not None:
            self.refs.add(row)

    def dead(self, c: Candidate, m: Meta) -> bool:
        return c.item_id in self.ids or (m.key is not None and m.key in self.keys)

    def excess(self, artist: str | None) -> int:
        """0 under the cap, else how many tracks over it one more track of the artist would be."""
        if not self.cap or artist is None:
            return 0
        count = self.counts.get(artist, 0)
        return count - self.cap + 1 if count >= self.cap else 0

    def take(self, c: Candidate, m: Meta, row: Vector, mask: int = 0) -> None:
        self.chosen.append(c)
        self.chosen_ids.add(c.item_id)
        self.rows.append(row)
        self.ids.add(c.item_id)
        if m.key is not None:
            self.keys.add(m.key)
        if m.artist is not None:
            self.counts[m.artist] = self.counts.get(m.artist, 0) + 1
        self.refs.add(row)
        self.violations |= mask


class Option(NamedTuple):
    """A put-aside candidate that would break ``mask`` (CAP / DUP bits) if taken."""

    mask: int
    excess: int
    rank: int


class _ChunkTest:
    """Near-duplicate test of one chunk of a stream's candidates: each row's highest similarity to
    the references there were when it was made (one matrix product), raised by this stream's own
    picks from the chunk since (a row of the chunk's own similarity matrix each)."""

    __slots__ = ("m0", "best", "gram", "own")

    def __init__(self, m0: int, best: Vector, gram: Vector) -> None:
        self.m0, self.best, self.gram = m0, best, gram
        self.own = 0  # the stream's picks from this chunk since m0

    def add(self, offset: int) -> None:
        np.maximum(self.best, self.gram[offset], out=self.best)
        self.own += 1


class Stream:
    """One ranked candidate list (one per seed) being scanned, with what was put aside."""

    __slots__ = ("cands", "rows", "ptr", "aside", "dups", "dupflag", "seen", "picks", "ids", "tests", "hit")

    def __init__(self, cands: Sequence[Candidate], expected: int) -> None:
        self.cands = cands
        self.rows = LazyRows(cands, expected)
        self.ptr = 0  # next rank to scan
        self.aside: dict[str | None, list[int]] = {}  # artist -> ranks put aside (ascending)
        self.dups: list[int] = []  # ranks known to be near-identical to a chosen track or a seed
        self.dupflag: set[int] = set()
        self.seen: dict[int, int] = {}  # rank -> references already compared against
        self.picks = 0
        self.ids: set[str] | None = None
        self.tests: dict[int, _ChunkTest] = {}
        self.hit: tuple[int, Meta] | None = None  # the rank next_fit returned last, and its meta

    def id_set(self) -> set[str]:
        if self.ids is None:
            self.ids = {c.item_id for c in self.cands}
        return self.ids

    def exhausted(self) -> bool:
        """Scanned to the end with nothing put aside left."""
        return self.ptr >= len(self.cands) and not self.dups and not any(self.aside.values())

    def _is_dup(self, picker: Picker, r: int) -> bool:
        refs = picker.refs
        if not refs.on:
            return False
        if r in self.dupflag:
            return True
        start = self.seen.get(r, 0)
        if start < refs.m:
            if refs.near(self.rows[r], start):
                self.dupflag.add(r)
                return True
            self.seen[r] = refs.m
        return False

    def _near(self, picker: Picker, r: int) -> bool:
        """Is candidate r near-identical to a reference (scan order: see _ChunkTest)?"""
        refs = picker.refs
        shift = self.rows.shift
        chunk_no = r >> shift
        test = self.tests.get(chunk_no)
        if test is None or refs.m - test.m0 != test.own:  # new, or references from elsewhere since
            rows = self.rows.chunk(chunk_no)
            gram = test.gram if test is not None else rows @ rows.T
            test = self.tests[chunk_no] = _ChunkTest(refs.m, refs.best_rows(rows), gram)
        return bool(test.best[r & ((1 << shift) - 1)] > refs.lim)

    def next_fit(self, picker: Picker) -> int | None:
        """Rank of the next candidate that breaks no rule, scanning on; the candidates passed
        over for the cap or as near-duplicates are put aside."""
        cands, n, cap, counts = self.cands, len(self.cands), picker.cap, picker.counts
        while self.ptr < n:
            r = self.ptr
            self.ptr = r + 1
            c = cands[r]
            if c.item_id in picker.ids:
                continue
            m = meta(c)
            if m.key is not None and m.key in picker.keys:
                continue
            if cap and m.artist is not None and counts.get(m.artist, 0) >= cap:
                self.aside.setdefault(m.artist, []).append(r)
                continue
            if picker.refs.on and self._near(picker, r):
                self.dupflag.add(r)
                self.dups.append(r)
                continue
            self.hit = (r, m)
            return r
        return None

    def best_aside(self, picker: Picker) -> Option | None:
        """The least-breaking candidate put aside (cap before near-duplicate, then the artist
        the fewest tracks over the cap, then rank); dead ones are dropped on the way.  Artist
        groups are visited by their best possible option, so the search stops at the first
        group that cannot beat the best found."""
        best: Option | None = None
        bounds = []
        for artist, group in self.aside.items():
            if group:
                excess = picker.excess(artist)
                bounds.append((CAP if excess else 0, excess, group[0], artist))
        bounds.sort(key=lambda bound: bound[:3])
        for capbit, excess, first, artist in bounds:
            if best is not None and (capbit, excess, first) >= best:
                break
            group = self.aside[artist]
            i = 0
            while i < len(group):
                r = group[i]
                c = self.cands[r]
                if picker.dead(c, meta(c)):
                    del group[i]
                elif self._is_dup(picker, r):
                    del group[i]
                    self.dups.append(r)
                else:
                    option = Option(capbit, excess, r)
                    if best is None or option < best:
                        best = option
                    break
            if not group:
                del self.aside[artist]
        if self.dups and best is None:  # last resort: near-identical to a chosen track or a seed
            live = []
            for r in sorted(self.dups):
                c = self.cands[r]
                m = meta(c)
                if picker.dead(c, m):
                    continue
                live.append(r)
                excess = picker.excess(m.artist)
                option = Option(DUP | (CAP if excess else 0), excess, r)
                if best is None or option < best:
                    best = option
            self.dups = live
        return best

    def take(self, picker: Picker, r: int, mask: int = 0) -> None:
        c = self.cands[r]
        hit = self.hit
        m = hit[1] if hit is not None and hit[0] == r else meta(c)
        picker.take(c, m, self.rows[r], mask)
        self.picks += 1
        test = self.tests.get(r >> self.rows.shift)
        if test is not None and picker.refs.on and picker.refs.m - test.m0 == test.own + 1:
            test.add(r & ((1 << self.rows.shift) - 1))  # the chunk's test stays current
        if mask:
            if r in self.dupflag and r in self.dups:
                self.dups.remove(r)
            else:
                group = self.aside.get(meta(c).artist)
                if group is not None and r in group:
                    group.remove(r)


def choose_nearest(picker: Picker, stream: Stream, want: int, relax: bool) -> None:
    """Take up to *want* more tracks from one ranked list: every candidate that fits, nearest
    first; then, with *relax*, the least-breaking put-aside ones while the set is short."""
    taken = 0
    while taken < want:
        r = stream.next_fit(picker)
        if r is None:
            break
        stream.take(picker, r)
        taken += 1
    while relax and taken < want:
        option = stream.best_aside(picker)
        if option is None:
            break
        stream.take(picker, option.rank, option.mask)
        taken += 1
