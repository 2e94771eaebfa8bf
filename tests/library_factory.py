"""Synthetic analysed libraries for similarity tests and benchmarks.

Real music is clustered: embeddings are drawn around a few centres in a low-dimensional
latent space and projected to 200-d (plus a little noise), not i.i.d. noise.  Each cluster
("style") has its own artists, each artist a few albums.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import asyncpg
import numpy as np

from sidecar.similarity.space import SPACE_DIM

DIM = 200


@dataclass(frozen=True)
class FakeTrack:
    item_id: str
    title: str
    artist: str
    album: str
    album_id: str
    genre: str
    track_number: int
    style: int


def item_id(n: int) -> str:
    return hashlib.md5(f"track-{n}".encode()).hexdigest()


def make_embeddings(
    n: int, *, styles: int = 12, latent: int = 16, seed: int = 0, spread: float = 0.35
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors [n, 200] float32, style of each row)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(styles, latent))
    projection = rng.normal(size=(latent, DIM)) / np.sqrt(latent)
    style = rng.integers(0, styles, size=n)
    points = centres[style] + spread * rng.normal(size=(n, latent))
    vectors = points @ projection + 0.05 * rng.normal(size=(n, DIM))
    return vectors.astype(np.float32), style


GENRES = [
    "Rock",
    "Electronic",
    "Jazz",
    "Classical",
    "Pop",
    "Metal",
    "Ambient",
    "Folk",
    "Hip-Hop",
    "Soul",
    "Punk",
    "House",
]


def make_tracks(
    n: int,
    styles: np.ndarray,
    *,
    artists_per_style: int = 6,
    tracks_per_album: int = 10,
    tracks_per_artist: int | None = None,
) -> list[FakeTrack]:
    """Titles, artists, albums and genres for ``n`` tracks of the given styles.

    By default each style has ``artists_per_style`` artists (small test libraries); with
    ``tracks_per_artist`` an artist gets that many tracks of one style, like a real library
    (about 30: three albums of ten).
    """
    tracks: list[FakeTrack] = []
    counters: dict[tuple[int, int], int] = {}
    style_counts: dict[int, int] = {}
    for i in range(n):
        s = int(styles[i])
        if tracks_per_artist:
            a = style_counts.get(s, 0) // tracks_per_artist
            style_counts[s] = style_counts.get(s, 0) + 1
        else:
            a = (i // 7) % artists_per_style
        k = counters.get((s, a), 0)
        counters[(s, a)] = k + 1
        album_no = k // tracks_per_album
        artist = f"Artist {s}-{a}"
        album = f"Album {s}-{a}-{album_no}"
        tracks.append(
            FakeTrack(
                item_id(i),
                f"Song {i}",
                artist,
                album,
                hashlib.md5(album.encode()).hexdigest(),
                GENRES[s % len(GENRES)],
                k % tracks_per_album + 1,
                s,
            )
        )
    return tracks


def as_space(vector: np.ndarray) -> np.ndarray:
    """A synthetic embedding placed in the similarity space as it is (zero-padded to its 404
    dimensions: cosine distances unchanged).  Tests of the rules (mixes, bridges, search) keep
    their designed geometry; the space's own recipe is tested in tests/test_similarity_space.py."""
    return np.concatenate(
        [np.asarray(vector, dtype=np.float32), np.zeros(SPACE_DIM - len(vector), np.float32)]
    )


async def insert_library(
    db: asyncpg.Pool | asyncpg.Connection,
    tracks: list[FakeTrack],
    vectors: np.ndarray,
    provider: str = "local",
) -> None:
    """Insert tracks as analysed, with their embeddings (COPY, fast enough for 1M rows)."""
    rows = [
        (
            t.item_id,
            provider,
            t.title,
            t.artist,
            t.album,
            t.artist,
            t.album_id,
            t.track_number,
            200.0,
            2000 + t.style,
            [t.genre],
            "analyzed",
            "test-v1",
        )
        for t in tracks
    ]
    conn_ctx = db.acquire() if isinstance(db, asyncpg.Pool) else None
    conn = await conn_ctx.__aenter__() if conn_ctx else db
    try:
        await conn.copy_records_to_table(
            "tracks",
            records=rows,
            columns=[
                "item_id",
                "provider",
                "title",
                "artist",
                "album",
                "album_artist",
                "album_id",
                "track_number",
                "duration_s",
                "year",
                "genres",
                "analysis_status",
                "model_version",
            ],
        )
        await conn.copy_records_to_table(
            "embeddings",
            records=[(t.item_id, v, as_space(v), "test-v1") for t, v in zip(tracks, vectors, strict=True)],
            columns=["item_id", "embedding", "space", "model_version"],
        )
    finally:
        if conn_ctx:
            await conn_ctx.__aexit__(None, None, None)
