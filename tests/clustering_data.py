"""Synthetic analysed tracks for the clustering tests and benchmark (a helper module: no tests here):
styles with their own top moods, tempo, energy, other features, artists and embeddings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from sidecar.clustering.data import MOOD_LABELS, OTHER_FEATURE_LABELS
from sidecar.similarity import refit

#: three characteristic tags per style (stratified genres first)
STYLE_TAGS = [
    ("rock", "classic rock", "guitar"),
    ("electronic", "dance", "House"),
    ("jazz", "instrumental", "chill"),
    ("pop", "catchy", "female vocalists"),
    ("metal", "heavy metal", "hard rock"),
    ("folk", "acoustic", "Mellow"),
    ("ambient", "chillout", "beautiful"),
    ("Hip-Hop", "rnb", "party"),
]


def synthetic_rows(
    n: int, styles: int = 6, seed: int = 0, artists_per_style: int = 12, dim: int = 200
) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(styles, 16))
    projection = rng.normal(size=(16, dim)) / 4.0
    rows = []
    for i in range(n):
        s = i % styles
        tags = {lbl: float(rng.uniform(0.0, 0.08)) for lbl in MOOD_LABELS}
        for j, lbl in enumerate(STYLE_TAGS[s % len(STYLE_TAGS)]):
            tags[lbl] = float(np.clip(0.7 - 0.15 * j + rng.normal(0, 0.05), 0.1, 1))
        other = {
            f: float(np.clip(((s + k) % 6) / 6 + rng.normal(0, 0.05), 0, 1))
            for k, f in enumerate(OTHER_FEATURE_LABELS)
        }
        emb = (centres[s] + 0.3 * rng.normal(size=16)) @ projection
        rows.append(
            {
                "item_id": f"t{i:05d}",
                "title": f"Song {i}",
                "artist": f"Artist {s}-{i % artists_per_style}",
                "tempo": float(60 + 20 * s + rng.normal(0, 4)),
                "energy_normalized": float((s + 0.5) / styles),
                "tags": tags,
                **other,
                "embedding": emb.astype(np.float32),
                "style": s,
            }
        )
    return rows


def make_files(music: Path, n: int) -> list[str]:
    """``n`` empty .mp3 files (enough for the local provider to list and write playlists)."""
    for i in range(n):
        path = music / f"Album {i // 20}" / f"Song {i:05d}.mp3"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return [str(i) for i in range(n)]


async def insert_rows(db: asyncpg.Pool, rows: list[dict[str, Any]], provider: str = "local") -> None:
    """The rows as analysed tracks: tracks, track_analysis and embeddings."""
    await db.executemany(
        """INSERT INTO tracks (item_id, provider, title, artist, album, analysis_status, model_version)
           VALUES ($1, $2, $3, $4, $5, 'analyzed', 'test-v1')""",
        [(r["item_id"], provider, r["title"], r["artist"], f"Album {r['style']}") for r in rows],
    )
    await db.executemany(
        f"""INSERT INTO track_analysis (item_id, tempo, energy_normalized, tags, moods, {", ".join(OTHER_FEATURE_LABELS)},
                model_version) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10, $11, 'test-v1')""",
        [
            (
                r["item_id"],
                r["tempo"],
                r["energy_normalized"],
                json.dumps(r["tags"]),
                sorted(r["tags"], key=lambda k: -r["tags"][k])[:5],
                *(r[f] for f in OTHER_FEATURE_LABELS),
            )
            for r in rows
        ],
    )
    await db.executemany(
        "INSERT INTO embeddings (item_id, embedding, model_version) VALUES ($1, $2, 'test-v1')",
        [(r["item_id"], r["embedding"]) for r in rows],
    )
    # analysed tracks, placed in the similarity space as a worker would place them (so a worker
    # started by the test finds nothing to refit)
    await refit.keep_fitted(db, refit.AT_REST)
