"""One seed choice for every multi-seed mix: at most 25 seeds spread over the album (or
playlist), whatever the entry point (/api/mix, the Subsonic bridge's getSimilarSongs and the
Jellyfin bridge's Instant Mix all go through MixService.multi_mix)."""

from __future__ import annotations

from typing import Any

import asyncpg
import numpy as np
import pytest
from library_factory import insert_library, make_embeddings, make_tracks

from sidecar.config import load_settings
from sidecar.similarity import store
from sidecar.similarity.service import MAX_SEEDS, MixKind, MixService


async def test_a_long_album_is_seeded_from_start_to_end(
    db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    vectors, _ = make_embeddings(40, seed=3)
    tracks = make_tracks(40, np.zeros(40, dtype=int), artists_per_style=1, tracks_per_album=40)
    assert len({t.album_id for t in tracks}) == 1
    await insert_library(db, tracks, vectors)
    number = {t.item_id: t.track_number for t in tracks}
    seen: list[list[int]] = []
    real = store.nearest_many

    async def spy(conn: Any, seeds: Any, k: int, *args: Any, **kwargs: Any) -> Any:
        seen.append(sorted(number[s.item_id] for s in seeds))
        return await real(conn, seeds, k, *args, **kwargs)

    monkeypatch.setattr(store, "nearest_many", spy)
    service = MixService(db, load_settings({}))
    result = await service.mix(MixKind.ALBUM, tracks[0].album_id, 10)
    assert result.tracks and seen
    numbers = seen[0]
    assert len(numbers) == MAX_SEEDS and numbers[0] == 1 and numbers[-1] >= 38, numbers  # not tracks 1-25
    assert numbers == sorted(set(numbers))
    assert store.spread_evenly(list(range(40)), 25) == [int(i * 40 / 25) for i in range(25)]
    assert store.spread_evenly(list(range(10)), 25) == list(range(10))
