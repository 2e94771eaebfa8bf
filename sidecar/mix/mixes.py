"""The public mix functions: similar lists, song mixes, multi-seed mixes, de-duplication.

Each is two steps: choose the set (:mod:`sidecar.mix.selection`, :mod:`sidecar.mix.merge`:
the nearest candidates that keep the set rules), then, for a mix, order it
(:mod:`sidecar.mix.sequencing`: albums and artists apart, a flow from the seed).
``MixResult.relaxed`` names exactly the rules the returned list breaks, in relaxation order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sidecar.mix.merge import choose_round_robin
from sidecar.mix.model import DEFAULT_RULES, Candidate, MixResult, MixRules, check_n, meta, rule_names
from sidecar.mix.selection import Picker, Stream, choose_nearest
from sidecar.mix.sequencing import sequence
from sidecar.mix.vectors import unit


def _by_distance(c: Candidate) -> float:
    return c.distance


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
    want = len(candidates) if limit is None else limit
    picker = Picker(MixRules(0, rules.duplicate_distance, 0, False, rules.exclude_ids), len(keep) + want)
    for c in keep:
        picker.block(c, unit(c.embedding))
    choose_nearest(picker, Stream(candidates, want), want, relax=False)
    return list(picker.chosen)


def similar_tracks(
    seed: Candidate,
    candidates: Sequence[Candidate],
    n: int,
    rules: MixRules = DEFAULT_RULES,
    *,
    relax: bool = True,
) -> MixResult:
    """The *n* candidates nearest to *seed* (itself left out) that keep the set rules: no song
    twice, nothing from ``exclude_ids``, nothing near-identical to the seed or to a nearer
    answer, at most ``max_songs_per_artist`` per artist (the seed counts); ordered by
    distance. No album or ordering rule: the nearest tracks of the seed's own album come
    first when they are the nearest. With ``relax`` the cap, then the near-duplicate rule, give
    way when the candidates cannot fill the list otherwise (``relaxed`` says so)."""
    check_n(n)
    picker = Picker(rules, n + 1)
    picker.take(seed, meta(seed), unit(seed.embedding))
    choose_nearest(picker, Stream(sorted(candidates, key=_by_distance), n), n, relax)
    return MixResult(sorted(picker.chosen[1:], key=_by_distance), rule_names(picker.violations))


def song_mix(
    seed: Candidate,
    candidates: Sequence[Candidate],
    n: int,
    rules: MixRules = DEFAULT_RULES,
    *,
    relax: bool = True,
    relax_set: bool | None = None,
) -> MixResult:
    """An *n*-track mix (seed included, first) from the seed's nearest neighbours.

    The set is the seed and its ``n - 1`` nearest candidates that keep the set rules (as
    :func:`similar_tracks`); its order keeps albums ``album_spacing`` apart and never puts an
    artist twice in a row, and flows from the seed (:mod:`sidecar.mix.sequencing`).
    *candidates* are ranked by ``distance`` (stable, so ties keep their order); the seed's
    own id among them is ignored. With ``relax=False`` no rule is ever broken and the mix
    may be shorter than *n*. ``relax_set`` (default: as ``relax``) says whether the set rules
    (the cap, near-identical audio) may give way when the candidates run short: a caller that
    can fetch more candidates asks with ``relax_set=False`` first.
    """
    check_n(n)
    picker = Picker(rules, n + 1)
    picker.take(seed, meta(seed), unit(seed.embedding))
    fill = relax if relax_set is None else relax_set
    choose_nearest(picker, Stream(sorted(candidates, key=_by_distance), n), n - 1, fill)
    return _ordered(picker, 1, None, rules, relax)


def multi_seed_mix(
    seeds: Sequence[Candidate],
    candidates_by_seed: Mapping[str, Sequence[Candidate]],
    n: int,
    rules: MixRules = DEFAULT_RULES,
    *,
    relax: bool = True,
    relax_set: bool | None = None,
) -> MixResult:
    """An *n*-track mix around several seeds (an album's tracks, a sample of an artist,
    a playlist, a genre's centre tracks).

    ``candidates_by_seed[seed.item_id]`` is that seed's neighbour list (``distance`` to that
    seed). Seeds themselves (and other versions of them: same title + artist, or
    near-identical audio) never appear. The set is merged round-robin by rank
    (:mod:`sidecar.mix.merge`): with ``n >= len(seeds)`` every seed that has a usable
    candidate is represented. The order keeps albums and artists apart and flows, starting
    with the track nearest to its seed. ``relax`` and ``relax_set`` as in :func:`song_mix`.
    """
    check_n(n)
    picker = Picker(rules, len(seeds) + n)
    for seed in seeds:
        picker.block(seed, unit(seed.embedding))
    streams: list[Stream] = []
    seen: set[str] = set()
    for seed in seeds:
        if seed.item_id in seen:
            continue
        seen.add(seed.item_id)
        cands = candidates_by_seed.get(seed.item_id)
        if cands:
            streams.append(Stream(sorted(cands, key=_by_distance), n // len(seeds) + 1))
    choose_round_robin(picker, streams, n, relax if relax_set is None else relax_set)
    return _ordered(picker, 0, [c.distance for c in picker.chosen], rules, relax)


def _ordered(
    picker: Picker, fixed: int, anchor: list[float] | None, rules: MixRules, relax: bool
) -> MixResult:
    tracks = picker.chosen
    if not tracks:
        return MixResult([], rule_names(picker.violations))
    metas = [meta(c) for c in tracks]
    order, mask = sequence(tracks, metas, np.stack(picker.rows), fixed, anchor, rules, relax)
    return MixResult([tracks[i] for i in order], rule_names(mask | picker.violations))
