"""Metrics of bench/quality.py: pure functions over a labelled library (no I/O, no timings).

A :class:`Library` is what the benchmark reads back from the service's database: every analysed
track with its label (the Debian package it came from: one soundtrack), album id, normalised
artist ("" = none, the mix engine's notion) and its 200-d embedding.  Answers are lists of item ids.

* precision@k: share of the first k answers from the seed's label (k in the denominator: a
  short answer counts its missing places as misses); a mix's *label share* is the share of the
  mix, seed left out, from the seed's label;
* ceiling@k: the best precision@k the library allows (``min(k, label size - 1) / k``);
* distance ratio: mean cosine distance to the seed of what was returned, over the mean distance
  of the same number of true nearest tracks (exact search): 1.0 = the nearest there are;
* back-to-back repeats: consecutive pairs of the same album, or of the same (known) artist;
* mean step: mean cosine distance between consecutive tracks (how a mix flows);
* leave-one-out precision@k of a similarity space: every track in turn is the query, the rest
  ranked by cosine similarity in that space.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Library:
    ids: list[str]
    labels: list[str]
    albums: list[str | None]
    artists: list[str]
    vectors: np.ndarray  # [n, d], any length; unit rows are made here
    unit: np.ndarray = field(init=False, repr=False)
    index: dict[str, int] = field(init=False, repr=False)
    label_sizes: Counter[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        vectors = np.asarray(self.vectors, dtype=np.float64)
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        object.__setattr__(self, "unit", vectors / norms)
        object.__setattr__(self, "index", {item_id: i for i, item_id in enumerate(self.ids)})
        object.__setattr__(self, "label_sizes", Counter(self.labels))

    def label(self, item_id: str) -> str:
        return self.labels[self.index[item_id]]

    def distances(self, seed_id: str) -> np.ndarray:
        """Cosine distance of every track to the seed."""
        result: np.ndarray = 1.0 - self.unit @ self.unit[self.index[seed_id]]
        return result

    def distance(self, a: str, b: str) -> float:
        return float(1.0 - self.unit[self.index[a]] @ self.unit[self.index[b]])

    def nearest(self, seed_id: str, k: int) -> list[str]:
        """The k tracks nearest to the seed (itself left out), exact cosine search: the seed
        project's method (plain kNN over the embedding, no rules)."""
        d = self.distances(seed_id)
        order = np.argsort(d, kind="stable")
        seed = self.index[seed_id]
        return [self.ids[int(j)] for j in order if int(j) != seed][:k]

    def scorable(self, seed_id: str) -> bool:
        """Can the seed's answers score at all (another track shares its label)?"""
        return self.label_sizes[self.label(seed_id)] >= 2


def precision_at(lib: Library, seed_id: str, answer: Sequence[str], k: int) -> float:
    label = lib.label(seed_id)
    return sum(1 for item_id in answer[:k] if lib.label(item_id) == label) / k


def label_share(lib: Library, seed_id: str, mix: Sequence[str]) -> float:
    """Share of a mix (the seed left out) from the seed's label; 0 for an empty mix."""
    rest = [item_id for item_id in mix if item_id != seed_id]
    if not rest:
        return 0.0
    label = lib.label(seed_id)
    return sum(1 for item_id in rest if lib.label(item_id) == label) / len(rest)


def ceiling_at(lib: Library, seed_id: str, k: int) -> float:
    return min(k, lib.label_sizes[lib.label(seed_id)] - 1) / k


def distance_ratio(lib: Library, seed_id: str, answer: Sequence[str]) -> float:
    """Mean distance of the answer (seed left out) to the seed over that of as many true nearest."""
    rest = [item_id for item_id in answer if item_id != seed_id]
    if not rest:
        return float("nan")
    d = lib.distances(seed_id)
    got = float(np.mean([d[lib.index[item_id]] for item_id in rest]))
    best = float(np.mean([d[lib.index[item_id]] for item_id in lib.nearest(seed_id, len(rest))]))
    return got / best if best > 0 else (1.0 if got <= 0 else float("inf"))


def back_to_back(lib: Library, order: Sequence[str]) -> tuple[int, int]:
    """(same album, same known artist) on consecutive positions."""
    albums = artists = 0
    for a, b in zip(order, order[1:], strict=False):
        i, j = lib.index[a], lib.index[b]
        if lib.albums[i] is not None and lib.albums[i] == lib.albums[j]:
            albums += 1
        if lib.artists[i] and lib.artists[i] == lib.artists[j]:
            artists += 1
    return albums, artists


def mean_step(lib: Library, order: Sequence[str]) -> float:
    if len(order) < 2:
        return float("nan")
    return float(np.mean([lib.distance(a, b) for a, b in zip(order, order[1:], strict=False)]))


def mean(values: Iterable[float]) -> float:
    vals = [v for v in values if v == v]  # NaN left out
    return statistics.fmean(vals) if vals else float("nan")


@dataclass
class AnswerFigures:
    """Figures of one kind of answer (e.g. "similar_tracks n=10, default") over all seeds."""

    p5: list[float] = field(default_factory=list)
    p10: list[float] = field(default_factory=list)
    share: list[float] = field(default_factory=list)
    ratio: list[float] = field(default_factory=list)
    album_b2b: list[int] = field(default_factory=list)
    artist_b2b: list[int] = field(default_factory=list)
    step: list[float] = field(default_factory=list)
    length: list[int] = field(default_factory=list)
    relaxed: Counter[str] = field(default_factory=Counter)
    by_label: dict[str, list[float]] = field(default_factory=dict)  # label -> P@5 (or share) per seed

    def add(
        self, lib: Library, seed_id: str, answer: Sequence[str], *, is_mix: bool, relaxed: Sequence[str] = ()
    ) -> None:
        """Score one answer: a similar list (seed not in it) or a mix (seed first)."""
        self.relaxed.update(relaxed)
        self.length.append(len([a for a in answer if a != seed_id]))
        self.ratio.append(distance_ratio(lib, seed_id, answer))
        order = list(answer) if is_mix else [seed_id, *answer]
        albums, artists = back_to_back(lib, order)
        self.album_b2b.append(albums)
        self.artist_b2b.append(artists)
        self.step.append(mean_step(lib, order))
        if not lib.scorable(seed_id):
            return
        if is_mix:
            self.share.append(label_share(lib, seed_id, answer))
            self.by_label.setdefault(lib.label(seed_id), []).append(self.share[-1])
        else:
            self.p5.append(precision_at(lib, seed_id, answer, 5))
            self.p10.append(precision_at(lib, seed_id, answer, 10))
            self.by_label.setdefault(lib.label(seed_id), []).append(self.p5[-1])

    def row(self) -> dict[str, float]:
        return {
            "p5": mean(self.p5),
            "p10": mean(self.p10),
            "share": mean(self.share),
            "ratio": mean(self.ratio),
            "album_b2b": mean(self.album_b2b),
            "artist_b2b": mean(self.artist_b2b),
            "step": mean(self.step),
            "length": mean(self.length),
        }


def loo_queries(vectors: np.ndarray, labels: Sequence[str], k: int = 5) -> list[float | None]:
    """Leave-one-out precision@k of each track as the query (cosine over the rows of ``vectors``,
    the query itself left out); None for a track whose label has no other track."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    sizes = Counter(labels)
    out: list[float | None] = []
    for i, label in enumerate(labels):
        if sizes[label] < 2:
            out.append(None)
            continue
        top = np.argsort(-sims[i], kind="stable")[:k]
        out.append(sum(1 for j in top if labels[int(j)] == label) / k)
    return out


def loo_precision(vectors: np.ndarray, labels: Sequence[str], k: int = 5) -> tuple[float, dict[str, float]]:
    """Leave-one-out precision@k of a similarity space: the mean over the queries whose label has
    another track, and the mean per label."""
    per_label: dict[str, list[float]] = {}
    for label, p in zip(labels, loo_queries(vectors, labels, k), strict=True):
        if p is not None:
            per_label.setdefault(label, []).append(p)
    overall = mean(p for ps in per_label.values() for p in ps)
    return overall, {label: mean(ps) for label, ps in sorted(per_label.items())}


def paired_interval(
    a: Sequence[float | None], b: Sequence[float | None], runs: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% bootstrap interval (queries resampled) of mean(a - b) over the queries both score."""
    diffs = np.array([x - y for x, y in zip(a, b, strict=True) if x is not None and y is not None])
    if not len(diffs):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(runs, len(diffs)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def standardise(x: np.ndarray) -> np.ndarray:
    """Each column to zero mean and unit variance over the library (constant columns to 0)."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    result: np.ndarray = (x - x.mean(axis=0)) / np.where(sd > 1e-12, sd, 1.0)
    return result


def fmt(value: float, digits: int = 2) -> str:
    return "–" if value != value else f"{value:.{digits}f}"
