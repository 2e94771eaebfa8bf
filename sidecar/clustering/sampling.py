"""Stratified sampling by genre (research A.3), without upstream's bugs: tracks whose genre is
not one of the stratified ones form a bucket of their own and are sampled like the others."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np


def buckets(genres: Sequence[str]) -> dict[str, list[int]]:
    """Row indices by genre, genres in first-seen order."""
    out: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(genres):
        out[g].append(i)
    return dict(out)


def target_per_genre(sizes: Sequence[int], min_per_genre: int, percentile: float) -> int:
    """``max(min_per_genre, floor(percentile of the bucket sizes))``."""
    present = [s for s in sizes if s > 0]
    if not present:
        return min_per_genre
    return max(min_per_genre, math.floor(float(np.percentile(present, min(100.0, max(0.0, percentile))))))


def fresh_sample(by_genre: dict[str, list[int]], target: int, rng: np.random.Generator) -> list[int]:
    """Up to ``target`` random tracks of every genre (all of a smaller one), shuffled."""
    chosen: list[int] = []
    for members in by_genre.values():
        if len(members) <= target:
            chosen.extend(members)
        else:
            chosen.extend(int(i) for i in rng.choice(members, size=target, replace=False))
    rng.shuffle(chosen)
    return chosen


def perturb(
    previous: Sequence[int],
    by_genre: dict[str, list[int]],
    target: int,
    change: float,
    rng: np.random.Generator,
) -> list[int]:
    """Keep a random ``1 - change`` of ``previous``, then top every genre back up to ``target``
    (or all its tracks) from tracks not kept; shuffled.  ``change`` 0 keeps ``previous``."""
    if change <= 0 or not previous:
        kept = list(previous)
    else:
        keep = int(len(previous) * (1.0 - change))
        kept = [int(i) for i in rng.choice(np.asarray(previous), size=keep, replace=False)] if keep else []
    have = set(kept)
    genre_of = {i: g for g, members in by_genre.items() for i in members}
    counts: dict[str, int] = defaultdict(int)
    for i in kept:
        counts[genre_of[i]] += 1
    out = list(kept)
    for g, members in by_genre.items():
        need = min(target, len(members)) - counts[g]
        if need <= 0:
            continue
        free = [i for i in members if i not in have]
        if free:
            out.extend(int(i) for i in rng.choice(free, size=min(need, len(free)), replace=False))
    rng.shuffle(out)
    return out
