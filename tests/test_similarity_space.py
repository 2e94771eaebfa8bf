"""The similarity space (sidecar/similarity/space.py, migration 0007, sidecar/db/space.py):
vectors built by the database agree with an independent numpy statement of the recipe (the
one bench/quality_spaces.py measured), tracks are placed as they are stored, the statistics
follow the library, and a refit racing with stores neither deadlocks nor leaves a stale vector."""

from __future__ import annotations

import asyncio
import math

import asyncpg
import numpy as np
import pytest

from sidecar.db import analysis as analysis_db
from sidecar.db import space as space_db
from sidecar.ml.result import TrackAnalysis
from sidecar.similarity import refit
from sidecar.similarity.store import nearest

KEYS = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
SPELLED = {"C#": "Db", "D#": "Eb", "F#": "Gb", "G#": "Ab", "A#": "Bb"}


def _track(rng: np.random.Generator, i: int, with_mtt: bool = True) -> TrackAnalysis:
    key = KEYS[i % 12] if i % 7 else None
    if key in SPELLED and i % 2:
        key = SPELLED[key]  # flats as some taggers write them
    return TrackAnalysis(
        model_version="v",
        embedding=(rng.normal(size=200) * rng.uniform(0.2, 3, size=200) + 1.5).astype(np.float32),
        mtt_embedding=(rng.normal(size=200) * 0.3 - 0.7).astype(np.float32) if with_mtt else None,  # type: ignore[arg-type]
        tags={},
        mtt_tags={},
        moods=[],
        tempo=None if i % 11 == 0 else float(rng.uniform(60, 180)),
        key=key,
        scale="minor" if i % 3 == 0 else "major",
        energy=0.1,
        energy_normalized=float(rng.uniform(0, 1)),
        other_features={},
    )


def _oracle(tracks: list[TrackAnalysis], fit_on: int | None = None) -> np.ndarray:
    """The recipe, stated independently: each block standardised over the library (population
    standard deviation; the library = the first ``fit_on`` tracks) and scaled to total variance
    1; tempo/energy standardised x 0.2; the key on the circle of fifths x 0.2 / sqrt(2); no MTT
    embedding -> zeros, the MTT statistics from the tracks that have one."""
    n = len(tracks) if fit_on is None else fit_on

    def block(x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        ref = x[:n] if rows is None else x[:n][rows[:n]]
        return (x - ref.mean(axis=0)) / ref.std(axis=0) / math.sqrt(x.shape[1])

    msd = np.array([t.embedding for t in tracks], dtype=np.float64)
    has = np.array([t.mtt_embedding is not None for t in tracks])
    mtt = np.array([t.mtt_embedding if t.mtt_embedding is not None else np.zeros(200) for t in tracks])
    mtt_block = np.where(has[:, None], block(mtt.astype(np.float64), has), 0.0)
    tempo = np.log2([t.tempo or 120.0 for t in tracks])
    energy = np.array([t.energy_normalized for t in tracks])
    key = np.zeros((len(tracks), 2))
    for i, t in enumerate(tracks):
        if t.key:
            name = {v: k for k, v in SPELLED.items()}.get(t.key, t.key)
            fifths = ((KEYS.index(name) + (3 if t.scale == "minor" else 0)) * 7) % 12
            key[i] = np.cos(2 * np.pi * fifths / 12), np.sin(2 * np.pi * fifths / 12)
    light = np.column_stack(
        [
            0.2 * (tempo - tempo[:n].mean()) / tempo[:n].std(),
            0.2 * (energy - energy[:n].mean()) / energy[:n].std(),
            key * 0.2 / math.sqrt(2),
        ]
    )
    return np.hstack([block(msd), mtt_block, light])


async def _store(db: asyncpg.Pool, tracks: list[TrackAnalysis], prefix: str = "t") -> list[str]:
    ids = [f"{prefix}{i:03d}" for i in range(len(tracks))]
    await db.executemany(
        "INSERT INTO tracks (item_id, provider, title, artist) VALUES ($1, 'local', $1, $1)",
        [(i,) for i in ids],
    )
    for item_id, t in zip(ids, tracks, strict=True):
        await analysis_db.store_result(db, item_id, t)
    return ids


async def _vectors(db: asyncpg.Pool, ids: list[str]) -> np.ndarray:
    rows = {r["item_id"]: r["space"] for r in await db.fetch("SELECT item_id, space FROM embeddings")}
    return np.array([rows[i] for i in ids])


async def test_vectors_follow_the_recipe_and_search_ranks_by_them(db: asyncpg.Pool) -> None:
    rng = np.random.default_rng(7)
    tracks = [_track(rng, i, with_mtt=i % 5 != 0) for i in range(60)]
    ids = await _store(db, tracks)
    # no statistics yet: stored, but not searchable until the first fit
    assert await db.fetchval("SELECT count(*) FROM similarity_vectors") == 0
    assert await refit.keep_fitted(db, refit.AT_REST) == "similarity space fitted on 60 analysed tracks"
    got = await _vectors(db, ids)
    want = _oracle(tracks)
    assert got.shape == (60, 404)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)

    unit = want / np.linalg.norm(want, axis=1, keepdims=True)
    for q in (0, 17, 42):
        exact = [ids[j] for j in np.argsort(1 - unit @ unit[q]) if j != q][:8]
        found = [c.item_id for c in await nearest(db, got[q], 8, exclude=[ids[q]])]
        assert found == exact
    assert await refit.keep_fitted(db, refit.AT_REST) is None  # nothing moved: nothing to do


async def test_a_track_stored_after_the_fit_is_placed_at_once_with_the_statistics_in_force(
    db: asyncpg.Pool,
) -> None:
    rng = np.random.default_rng(8)
    first = [_track(rng, i) for i in range(30)]
    await _store(db, first)
    await refit.keep_fitted(db, refit.AT_REST)
    late = _track(rng, 99)
    [late_id] = await _store(db, [late], prefix="late")
    # built by store_result in its own transaction, with the statistics of the first 30
    both = first + [late]
    got = await _vectors(db, [late_id])
    np.testing.assert_allclose(got, _oracle(both, fit_on=len(first))[-1:], rtol=2e-4, atol=2e-4)
    # 31 vs 30: within the tolerance during a run, not at rest -> refit on all 31
    assert await refit.keep_fitted(db, refit.DURING_RUN) is None
    assert await refit.keep_fitted(db, refit.AT_REST) == "similarity space fitted on 31 analysed tracks"
    np.testing.assert_allclose(await _vectors(db, [late_id]), _oracle(both)[-1:], rtol=2e-4, atol=2e-4)


async def test_tracks_analysed_before_the_mtt_embedding_are_analysed_again(db: asyncpg.Pool) -> None:
    rng = np.random.default_rng(9)
    ids = await _store(db, [_track(rng, i) for i in range(3)])
    await db.execute("UPDATE tracks SET analysis_status = 'analyzed', model_version = 'v'")
    assert await analysis_db.tracks_to_analyse(db, ids, "v") == []
    await db.execute("UPDATE embeddings SET mtt_embedding = NULL WHERE item_id = $1", ids[1])
    assert await analysis_db.tracks_to_analyse(db, ids, "v") == [ids[1]]


async def test_a_refit_racing_with_stores_neither_deadlocks_nor_leaves_stale_vectors(
    db: asyncpg.Pool,
) -> None:
    rng = np.random.default_rng(10)
    await _store(db, [_track(rng, i) for i in range(40)])
    await refit.keep_fitted(db, refit.AT_REST)
    more = [_track(rng, 100 + i) for i in range(40)]
    await db.executemany(
        "INSERT INTO tracks (item_id, provider, title) VALUES ($1, 'local', $1)",
        [(f"m{i}",) for i in range(40)],
    )
    always = space_db.maintain  # force refits while the stores go on

    async def refits() -> None:
        for _ in range(6):
            await always(db, lambda _state: True)
            await asyncio.sleep(0)

    stores = [analysis_db.store_result(db, f"m{i}", t) for i, t in enumerate(more)]
    await asyncio.wait_for(asyncio.gather(refits(), *stores), timeout=120)
    await refit.keep_fitted(db, refit.AT_REST)  # whatever the last refit saw, catch up
    stale = await db.fetchval(
        """SELECT count(*) FROM embeddings e JOIN track_analysis a USING (item_id), similarity_space s
           WHERE e.space IS NULL
              OR e.space <> am_space(e.embedding, e.mtt_embedding, a.tempo, a.energy_normalized,
                                     a.key, a.scale, s)"""
    )
    assert stale == 0
    assert await db.fetchval("SELECT tracks FROM similarity_space") == 80


@pytest.mark.parametrize(
    ("fitted_on", "now", "tolerance", "expected"),
    [
        (None, (5, 5), 0.25, True),
        ((100, 100), (125, 125), 0.25, False),
        ((100, 100), (126, 126), 0.25, True),
        ((100, 100), (74, 74), 0.25, True),
        ((100, 100), (102, 102), 0.02, False),
        ((100, 100), (103, 103), 0.02, True),
        # a library analysed before the MTT embedding was stored, being analysed again
        ((100, 0), (100, 0), 0.02, False),
        ((100, 0), (100, 1), 0.02, True),
        ((100, 60), (100, 61), 0.02, False),
        ((100, 60), (100, 100), 0.25, True),
    ],
)
def test_when_the_statistics_are_fitted_again(
    fitted_on: tuple[int, int] | None, now: tuple[int, int], tolerance: float, expected: bool
) -> None:
    state = space_db.SpaceState(
        tracks=now[0],
        mtt_tracks=now[1],
        fitted_on=fitted_on[0] if fitted_on else None,
        mtt_fitted_on=fitted_on[1] if fitted_on else None,
        unplaced=False,
    )
    assert refit.needs_refit(state, tolerance) is expected


async def test_a_library_analysed_before_the_mtt_embedding_gets_it_as_it_is_analysed_again(
    db: asyncpg.Pool,
) -> None:
    """After the upgrade the space is fitted with no MTT embedding at all (that half zero); as the
    next run analyses the tracks again, the end of the run refits with the MTT half."""
    rng = np.random.default_rng(11)
    tracks = [_track(rng, i) for i in range(20)]
    ids = await _store(db, tracks)
    await db.execute("UPDATE embeddings SET mtt_embedding = NULL, space = NULL")
    await db.execute("DELETE FROM similarity_space")
    assert await refit.keep_fitted(db, refit.AT_REST) == "similarity space fitted on 20 analysed tracks"
    assert not (await _vectors(db, ids))[:, 200:400].any()
    for item_id, t in zip(ids, tracks, strict=True):  # the run analyses them again
        await analysis_db.store_result(db, item_id, t)
    assert await refit.keep_fitted(db, refit.AT_REST) == "similarity space fitted on 20 analysed tracks"
    np.testing.assert_allclose(await _vectors(db, ids), _oracle(tracks), rtol=2e-4, atol=2e-4)
