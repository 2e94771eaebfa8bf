"""How far apart two encodings of the same recording are in the similarity space, against how far
the nearest *other* track is: what ``DUPLICATE_DISTANCE_THRESHOLD_COSINE`` (near-identical audio
is the same song) must separate.  Measured in the similarity space (sidecar/similarity/space.py)
and in the seed's space (cosine over the MSD embedding) side by side.

Runs on a library bench/quality.py analysed and kept (``--work DIR``): some of its tracks are
encoded again (MP3 128 kbit/s and Opus 64 kbit/s, with PyAV), analysed by the service's own
pipeline, and placed with the library's statistics by the database's own ``am_space``.

    .venv/bin/python bench/quality.py --corpus large --work /tmp/q
    .venv/bin/python bench/space_duplicates.py --work /tmp/q
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sidecar.db import create_pool  # noqa: E402
from sidecar.embedded.postgres import EmbeddedPostgres  # noqa: E402
from sidecar.ml import pipeline  # noqa: E402

ENCODINGS = {"mp3 128k": ("mp3", "libmp3lame", 128_000), "opus 64k": ("ogg", "libopus", 64_000)}


def encode(src: Path, dst: Path, codec: str, bit_rate: int) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream(codec, rate=48000 if codec == "libopus" else 44100)
        stream.bit_rate = bit_rate  # type: ignore[attr-defined]
        resampler = av.AudioResampler(
            format="s16" if codec == "libmp3lame" else "flt", layout="stereo", rate=stream.rate
        )  # type: ignore[attr-defined]
        for frame in inp.decode(audio=0):
            frame.pts = None
            for f in resampler.resample(frame):
                for packet in stream.encode(f):  # type: ignore[attr-defined]
                    out.mux(packet)
        for packet in stream.encode(None):  # type: ignore[attr-defined]
            out.mux(packet)


def cosine_distances(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return 1 - x @ (q / np.linalg.norm(q))


async def measure(dsn: str, tracks: int) -> dict[str, Any]:
    db = await create_pool(dsn, min_size=1, max_size=2)
    try:
        rows = await db.fetch(
            """SELECT t.item_id, t.file_path, e.embedding, e.space FROM tracks t JOIN embeddings e USING (item_id)
               WHERE e.space IS NOT NULL ORDER BY t.item_id"""
        )
        ids = [r["item_id"] for r in rows]
        msd = np.array([r["embedding"] for r in rows], dtype=np.float64)
        space = np.array([r["space"] for r in rows], dtype=np.float64)
        params = pipeline.AnalysisParams()
        out: dict[str, Any] = {"self": {}, "nearest_other": {}}
        for name, x in (("space", space), ("seed", msd)):
            nn = []
            for i in range(len(x)):
                d = cosine_distances(x, x[i])
                d[i] = np.inf
                nn.append(d.min())
            out["nearest_other"][name] = np.array(nn)
        picks = np.linspace(0, len(rows) - 1, min(tracks, len(rows))).astype(int)
        with tempfile.TemporaryDirectory() as tmp:
            for label, (ext, codec, rate) in ENCODINGS.items():
                got: dict[str, list[float]] = {"space": [], "seed": []}
                for i in picks:
                    dst = Path(tmp) / f"{ids[i]}.{ext}".replace("/", "_")
                    encode(Path(rows[i]["file_path"]), dst, codec, rate)
                    a = await asyncio.to_thread(pipeline.analyze_path, dst, params)
                    vec = await db.fetchval(
                        "SELECT am_space($1, $2, $3, $4, $5, $6, s) FROM similarity_space s",
                        a.embedding,
                        a.mtt_embedding,
                        a.tempo,
                        a.energy_normalized,
                        a.key,
                        a.scale,
                    )
                    got["space"].append(float(cosine_distances(space[i : i + 1], np.asarray(vec))[0]))
                    got["seed"].append(float(cosine_distances(msd[i : i + 1], a.embedding)[0]))
                    print(
                        f"\r  {label}: {len(got['seed'])}/{len(picks)}", end="", file=sys.stderr, flush=True
                    )
                print(file=sys.stderr)
                out["self"][label] = {k: np.array(v) for k, v in got.items()}
        return out
    finally:
        await db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="a folder bench/quality.py --work analysed")
    ap.add_argument("--tracks", type=int, default=12, help="how many tracks to encode again")
    args = ap.parse_args()
    dsn = EmbeddedPostgres(args.work / "data").start()
    found = asyncio.run(measure(dsn, args.tracks))
    print(
        "| space | same recording, re-encoded: median / max | nearest other track: min / 5th pct / median |"
    )
    print("|---|---|---|")
    for name in ("space", "seed"):
        nn = found["nearest_other"][name]
        same = " ; ".join(
            f"{label} {np.median(v[name]):.4f} / {v[name].max():.4f}" for label, v in found["self"].items()
        )
        print(f"| {name} | {same} | {nn.min():.4f} / {np.percentile(nn, 5):.4f} / {np.median(nn):.4f} |")


if __name__ == "__main__":
    main()
