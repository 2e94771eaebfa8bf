"""Analysis benchmark: our pipeline against the seed's (AudioMuse-AI's), on real music.

    python bench/analysis.py                         # small corpus (29 min of music), 3 runs
    python bench/analysis.py --corpus large          # + blobwars-data and singularity-music
    python bench/analysis.py --seed-python /tmp/convert-venv/bin/python   # reuse a TensorFlow env

What it does (everything it downloads or makes lives in ~/.cache/audiomuse-bench, see --cache):

1. Corpus: freely licensed game soundtracks from Debian packages (bench/analysis_corpus.py); only
   files of a minute or more are used.
2. Ours, per track: ``sidecar.ml.pipeline.analyze_path`` (decode -> mel -> MSD + MTT MusiCNN on ONNX
   Runtime -> tempo, key, energy, moods) then ``sidecar.db.analysis.store_result`` into a fresh
   database of an embedded PostgreSQL 18 + pgvector, after inserting the track as the library sync
   does. Stage times come from the result's ``features["timings"]``; "other" is the rest of
   ``analyze_path`` (silence check, energy, derived features), "store" the transaction.
3. The seed's pipeline, in the same run, track by track interleaved with ours: bench/seed_pipeline.py
   (``librosa.load`` + TensorFlow MusiCNN on the original MSD checkpoint, every patch +
   ``librosa.beat.beat_track`` + chroma key) in the seed's environment (TensorFlow, made once from
   models/requirements-convert.txt unless --seed-python names one), as one subprocess.
   Model loads and a warm-up analysis happen once per process and are reported apart.
4. Embedding fidelity: the cosine between our all-patches float32 embedding and the seed's, and
   our embedding with each ``--max-patches`` setting; the time at each setting.
5. Memory: a fresh process (bench/analysis_rss.py) loads the models as a worker does and analyses a
   60-minute file made from the corpus; its RSS after loading and its peak.

Every analysis is repeated ``--runs`` times; figures are medians over runs (per track), then over
tracks. "Per 4-minute track" is seconds per minute of audio over the whole corpus, times 4.
Speed-ups are seed time / our time of the same track in the same run. The machine is shared: read the
load averages printed with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from analysis_corpus import CORPORA, Track, load_corpus, make_long_file, make_warmup_clip  # noqa: E402
from analysis_seed import SeedWorker, ensure_seed_python  # noqa: E402

from sidecar.config import Settings  # noqa: E402
from sidecar.db import analysis as analysis_db  # noqa: E402
from sidecar.db import open_database  # noqa: E402
from sidecar.db import tracks as library  # noqa: E402
from sidecar.embedded.postgres import EmbeddedPostgres  # noqa: E402
from sidecar.ml.pipeline import AnalysisParams, analyze_path, models  # noqa: E402
from sidecar.providers.base import Track as LibraryTrack  # noqa: E402

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "audiomuse-bench"
BENCH_DATABASE = "bench_analysis"
DEFAULT_SWEEP = (4, 8, 12, 16, 24, 32)
MIN_COSINE = 0.99

# Targets of issue 3 on the 2-core machine
TARGET_S_PER_4MIN = 1.0
TARGET_SPEEDUP = 6.0
TARGET_PEAK_RSS_MB = 600.0

STAGES = ("decode_s", "mel_s", "model_s", "tempo_s", "key_s", "other_s", "store_s")
STAGE_LABELS = {
    "decode_s": "decode",
    "mel_s": "mel",
    "model_s": "model",
    "tempo_s": "tempo",
    "key_s": "key",
    "other_s": "other",
    "store_s": "store",
    "total": "total",
}


# ============================================================================ measurements


@dataclass
class Run:
    """One analysis of one track."""

    stages: dict[str, float]  # seconds per stage (keys of STAGES; the seed has no other/store)
    total_s: float
    patches: int
    embedding: np.ndarray  # the track's 200-d MSD embedding

    def seconds(self, stage: str) -> float:
        return self.total_s if stage == "total" else self.stages.get(stage, 0.0)


@dataclass
class TrackResult:
    """Every run of one track: ours by max_patches setting, and the seed's."""

    track: Track
    ours: dict[int, list[Run]] = field(default_factory=dict)
    seed: list[Run] = field(default_factory=list)

    def runs(self, setting: int | None) -> list[Run]:
        """Our runs with max_patches ``setting``, or the seed's when ``setting`` is None."""
        return self.seed if setting is None else self.ours[setting]


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64)))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float(a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)))


class OurPipeline:
    """Our analysis of a file, then its storage, as an album job does it (timed apart)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._stored = 0

    async def run(self, track: Track, max_patches: int) -> Run:
        # a new track row every time, so that each store is a first analysis (an insert)
        self._stored += 1
        item_id = f"bench-{self._stored}"
        await library.upsert_tracks(
            self.pool,
            "local",
            [
                LibraryTrack(
                    item_id=item_id,
                    title=track.path.name,
                    album=track.package,
                    duration_s=track.seconds,
                    file_path=str(track.path),
                )
            ],
        )
        t0 = time.perf_counter()
        result = analyze_path(track.path, AnalysisParams(max_patches=max_patches))
        analysis_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        await analysis_db.store_result(self.pool, item_id, result)
        store_s = time.perf_counter() - t0
        stages = dict(result.features["timings"])
        stages["other_s"] = max(0.0, analysis_s - sum(stages.values()))
        stages["store_s"] = store_s
        return Run(stages, analysis_s + store_s, result.features["patches"], result.embedding)


def seed_run(answer: dict[str, Any]) -> Run:
    return Run(
        answer["timings"],
        answer["total_s"],
        answer["patches"],
        np.asarray(answer["embedding"], dtype=np.float32),
    )


async def measure(
    corpus: list[Track], settings: list[int], runs: int, ours: OurPipeline, seed: SeedWorker | None
) -> list[TrackResult]:
    """``runs`` passes over the corpus; in each, every track goes through the seed's pipeline and then
    ours at each setting, so that the two are compared under the same machine load."""
    results = [TrackResult(t) for t in corpus]
    for r in range(runs):
        for i, res in enumerate(results, 1):
            progress(f"run {r + 1}/{runs}, track {i}/{len(results)}: {res.track.name}")
            if seed is not None:
                res.seed.append(seed_run(seed.analyze(res.track.path)))
            for k in settings:
                res.ours.setdefault(k, []).append(await ours.run(res.track, k))
    return results


def rss_probe(path: Path, max_patches: int, warmup: Path, runs: int) -> dict[str, float]:
    """bench/analysis_rss.py ``runs`` times: median time, largest peak and RSS after model load."""
    probes = []
    for r in range(runs):
        progress(f"memory, max_patches={max_patches}, run {r + 1}/{runs}")
        out = subprocess.run(
            [
                sys.executable,
                str(BENCH / "analysis_rss.py"),
                str(path),
                "--max-patches",
                str(max_patches),
                "--warmup",
                str(warmup),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        probes.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "rss_models_mb": max(p["rss_models_mb"] for p in probes),
        "rss_warm_mb": max(p["rss_warm_mb"] for p in probes),
        "peak_rss_mb": max(p["peak_rss_mb"] for p in probes),
        "analysis_s": median([p["analysis_s"] for p in probes]),
        "source_minutes": probes[0]["source_seconds"] / 60,
        "minutes_analysed": probes[0]["seconds_analysed"] / 60,
        "patches": probes[0]["patches"],
    }


def save_raw(results: list[TrackResult], path: Path) -> None:
    """Every run's figures (without the embeddings), for a closer look."""

    def runs(rs: list[Run]) -> list[dict[str, Any]]:
        return [{"total_s": r.total_s, "patches": r.patches, **r.stages} for r in rs]

    path.write_text(
        json.dumps(
            [
                {
                    "track": res.track.name,
                    "seconds": res.track.seconds,
                    "seed": runs(res.seed),
                    "ours": {str(k): runs(rs) for k, rs in res.ours.items()},
                }
                for res in results
            ],
            indent=1,
        )
    )


def progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# ============================================================================ database


async def bench_database(pg: EmbeddedPostgres) -> asyncpg.Pool:
    """A fresh, migrated database on the embedded server."""
    admin = await asyncpg.connect(pg.dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
    finally:
        await admin.close()
    pool, _ = await open_database(pg.dsn().rsplit("/", 1)[0] + f"/{BENCH_DATABASE}", max_size=2)
    return pool


# ============================================================================ summaries


@dataclass
class Stats:
    """Seconds of one pipeline (or setting) per stage: median per track, and per 4-minute track."""

    per_track: dict[str, float]
    per_4min: dict[str, float]


def stage_stats(results: list[TrackResult], setting: int | None) -> Stats:
    """Of our pipeline with max_patches ``setting``, or of the seed's when ``setting`` is None."""
    minutes = sum(r.track.minutes for r in results)
    per_track, per_4min = {}, {}
    for stage in (*STAGES, "total"):
        medians = [median([run.seconds(stage) for run in res.runs(setting)]) for res in results]
        per_track[stage] = median(medians)
        per_4min[stage] = sum(medians) / minutes * 4
    return Stats(per_track, per_4min)


def at_four_minutes(results: list[TrackResult], setting: int | None) -> float:
    """End-to-end seconds of a 4-minute track: the least-squares line through the per-track medians
    against track length, evaluated at 4 min (our time is mostly per track -- a fixed number of
    patches --, the seed's grows with length, so a corpus of short loops says little about a
    4-minute song).  The corpus rate when all tracks have the same length."""
    minutes = np.array([res.track.minutes for res in results])
    seconds = np.array([median([run.total_s for run in res.runs(setting)]) for res in results])
    if len(results) < 2 or np.ptp(minutes) < 0.5:
        return float(seconds.sum() / minutes.sum() * 4)
    slope, intercept = np.polyfit(minutes, seconds, 1)
    return float(intercept + slope * 4.0)


def speedups(results: list[TrackResult], setting: int) -> list[float]:
    """Per track: median over runs of seed time / our time in the same run."""
    return [
        median([s.total_s / o.total_s for s, o in zip(res.seed, res.ours[setting], strict=True)])
        for res in results
    ]


def cosines_to_all(results: list[TrackResult], setting: int) -> list[float]:
    return [cosine(res.ours[setting][0].embedding, res.ours[0][0].embedding) for res in results]


def recommend(results: list[TrackResult], sweep: list[int]) -> int | None:
    """The smallest setting whose worst track stays within MIN_COSINE of the all-patches embedding."""
    for k in sorted(k for k in sweep if k > 0):
        if min(cosines_to_all(results, k)) >= MIN_COSINE:
            return k
    return None


# ============================================================================ report


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table with aligned columns (readable as plain text too)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *[line(r) for r in cells[1:]]])


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def x(value: float) -> str:
    return f"{value:.1f}x"


@dataclass
class Report:
    args: argparse.Namespace
    corpus: list[Track]
    results: list[TrackResult]
    setting: int
    sweep: list[int]
    our_load_s: float
    our_warmup_s: float
    seed: SeedWorker | None
    memory: dict[int, dict[str, float]]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def has_seed(self) -> bool:
        return self.seed is not None

    def header(self) -> str:
        minutes = sum(t.minutes for t in self.corpus)
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        before, after = ("/".join(f"{v:.1f}" for v in load) for load in (self.load_before, self.load_after))
        one_time = f"ours: models {self.our_load_s:.2f} s + warm-up {self.our_warmup_s:.2f} s"
        if self.seed is not None:
            one_time += (
                f"; seed: TensorFlow + checkpoint {self.seed.load_s:.2f} s + warm-up "
                f"{self.seed.warmup_s:.2f} s (librosa/numba compilation)"
            )
        return "\n".join(
            [
                f"Corpus {self.args.corpus} ({', '.join(CORPORA[self.args.corpus])}): {len(self.corpus)} tracks "
                f">= 60 s, {minutes:.1f} min of music (median track {median([t.minutes for t in self.corpus]):.1f} "
                "min).",
                f"Machine: {cpu}, {os.cpu_count()} cores; load average (1/5/15 min) {before} at start, {after} at end.",
                f"{self.args.runs} runs; medians over runs, then over tracks. ANALYSIS_MAX_PATCHES={self.setting} "
                "for the end-to-end, stage, speed-up and memory figures.",
                f"One-time per process, not in the per-track times: {one_time}.",
            ]
        )

    def per_track_table(self) -> str:
        rows = []
        ratio = speedups(self.results, self.setting) if self.has_seed else []
        for i, res in enumerate(self.results):
            ours = median([r.total_s for r in res.ours[self.setting]])
            row: list[object] = [
                res.track.name,
                f"{res.track.minutes:.1f}",
                res.ours[0][0].patches,
                f"{ours:.2f}",
            ]
            if self.has_seed:
                seed = median([r.total_s for r in res.seed])
                row += [f"{seed:.2f}", f"{1 / ratio[i]:.3f}", x(ratio[i])]
            rows.append(row)
        headers = ["track", "min", "patches (all)", "ours s"]
        if self.has_seed:
            headers += ["seed s", "ours/seed", "speed-up"]
        return md_table(headers, rows)

    def stage_table(self) -> str:
        ours = stage_stats(self.results, self.setting)
        seed = stage_stats(self.results, None) if self.has_seed else None
        rows = []
        for stage in (*STAGES, "total"):
            row: list[object] = [
                STAGE_LABELS[stage],
                f"{ours.per_track[stage]:.3f}",
                f"{ours.per_4min[stage]:.3f}",
            ]
            if seed is not None:
                has = stage not in ("other_s", "store_s")
                row += [
                    f"{seed.per_track[stage]:.3f}" if has else "-",
                    f"{seed.per_4min[stage]:.3f}" if has else "-",
                    x(seed.per_4min[stage] / ours.per_4min[stage]) if has and ours.per_4min[stage] else "-",
                ]
            rows.append(row)
        headers = ["stage", "ours s/track", "ours s/4-min track"]
        if seed is not None:
            headers += ["seed s/track", "seed s/4-min track", "seed/ours"]
        return md_table(headers, rows)

    def fidelity_table(self) -> str:
        rows: list[list[object]] = []
        if self.has_seed:
            cos = [cosine(res.seed[0].embedding, res.ours[0][0].embedding) for res in self.results]
            seed = stage_stats(self.results, None)
            rows.append(
                [
                    "seed (TensorFlow, all)",
                    median([res.seed[0].patches for res in self.results]),
                    "-",
                    f"{min(cos):.5f}",
                    f"{median(cos):.5f}",
                    f"{seed.per_track['total']:.2f}",
                    f"{seed.per_4min['total']:.2f}",
                ]
            )
        for k in [0, *sorted(k for k in self.sweep if k > 0)]:
            cos = cosines_to_all(self.results, k)
            stats = stage_stats(self.results, k)
            cut = sum(res.ours[0][0].patches > k > 0 for res in self.results)
            rows.append(
                [
                    f"{k}" if k else "0 (all)",
                    median([res.ours[k][0].patches for res in self.results]),
                    f"{cut}/{len(self.results)}",
                    f"{min(cos):.5f}",
                    f"{median(cos):.5f}",
                    f"{stats.per_track['total']:.2f}",
                    f"{stats.per_4min['total']:.2f}",
                ]
            )
        return md_table(
            [
                "max_patches",
                "patches/track",
                "tracks cut",
                "min cos",
                "median cos",
                "s/track",
                "s/4-min track",
            ],
            rows,
        )

    def memory_table(self) -> str:
        rows = [
            [
                f"{k}" if k else "0 (all)",
                f"{m['source_minutes']:.0f} min, {m['minutes_analysed']:.0f} "
                f"min analysed, {m['patches']} patches",
                f"{m['rss_models_mb']:.0f} MB",
                f"{m['rss_warm_mb']:.0f} MB",
                f"{m['peak_rss_mb']:.0f} MB",
                f"{m['analysis_s']:.2f} s",
            ]
            for k, m in self.memory.items()
        ]
        return md_table(
            [
                "max_patches",
                "file",
                "RSS after model load",
                "after a 10-s warm-up",
                "peak RSS",
                "analysis time",
            ],
            rows,
        )

    def targets(self) -> list[tuple[str, str, bool | None]]:
        four = at_four_minutes(self.results, self.setting)
        rate = stage_stats(self.results, self.setting).per_4min["total"]
        rows: list[tuple[str, str, bool | None]] = [
            (
                f"<= {TARGET_S_PER_4MIN:.1f} s per 4-minute track, end to end",
                f"{four:.2f} s (fit at 4 min; {rate:.2f} s per 4 min of music over the corpus)",
                four <= TARGET_S_PER_4MIN,
            )
        ]
        if self.has_seed:
            ratio = median(speedups(self.results, self.setting))
            seed_four = at_four_minutes(self.results, None)
            seed_rate = stage_stats(self.results, None).per_4min["total"]
            rows.append(
                (
                    f">= {TARGET_SPEEDUP:.0f}x the seed pipeline (4-minute track)",
                    f"{x(seed_four / four)} ({seed_four:.2f} s / {four:.2f} s; median per track "
                    f"{x(ratio)}, whole corpus {x(seed_rate / rate)})",
                    seed_four / four >= TARGET_SPEEDUP,
                )
            )
        else:
            rows.append((f">= {TARGET_SPEEDUP:.0f}x the seed pipeline", "not measured (--skip-seed)", None))
        peak = self.memory[self.setting]["peak_rss_mb"]
        rows.append(
            (
                f"peak RSS <= {TARGET_PEAK_RSS_MB:.0f} MB (60-minute file)",
                f"{peak:.0f} MB",
                peak <= TARGET_PEAK_RSS_MB,
            )
        )
        return rows

    def targets_table(self) -> str:
        return md_table(
            ["target", "measured", ""],
            [(t, m, "-" if ok is None else met(ok)) for t, m, ok in self.targets()],
        )

    def recommendation(self) -> str:
        k = recommend(self.results, self.sweep)
        if k is None:
            return (
                f"No max_patches setting keeps every track within cosine {MIN_COSINE} of the all-patches "
                "embedding: use ANALYSIS_MAX_PATCHES=0 (all)."
            )
        cos = cosines_to_all(self.results, k)
        return (
            f"Recommended ANALYSIS_MAX_PATCHES={k}: the smallest setting whose worst track stays within "
            f"cosine {MIN_COSINE} of the all-patches embedding (min {min(cos):.5f}, median "
            f"{median(cos):.5f} over {len(cos)} tracks)."
        )

    def command(self) -> str:
        return shlex.join(["python", "bench/analysis.py", *sys.argv[1:]])

    def text(self) -> str:
        parts = [
            self.header(),
            "",
            f"Per track, end to end (max_patches={self.setting}):",
            self.per_track_table(),
            "",
            "Per stage:",
            self.stage_table(),
            "",
            "Embedding fidelity (cosine to our all-patches float32 embedding) and time per setting:",
            self.fidelity_table(),
            "",
            "Worker memory, 60-minute file (fresh process):",
            self.memory_table(),
            "",
            "Targets:",
            self.targets_table(),
            "",
            self.recommendation(),
        ]
        return "\n".join(parts)

    def readme_block(self) -> str:
        return "\n".join(
            [
                "### Analysis (`bench/analysis.py`)",
                "",
                f"`{self.command()}` ({time.strftime('%Y-%m-%d')}).",
                "",
                self.header(),
                "",
                self.targets_table(),
                "",
                "Per stage, in seconds:",
                "",
                self.stage_table(),
                "",
                "Embedding fidelity and time per `ANALYSIS_MAX_PATCHES`:",
                "",
                self.fidelity_table(),
                "",
                "Memory of a worker analysing a 60-minute file:",
                "",
                self.memory_table(),
                "",
                self.recommendation(),
            ]
        )


# ============================================================================ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=3, help="repetitions; medians are reported (default 3)")
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="small")
    ap.add_argument(
        "--max-patches",
        type=int,
        nargs="+",
        default=list(DEFAULT_SWEEP),
        metavar="N",
        help=f"settings compared with all patches (default {' '.join(map(str, DEFAULT_SWEEP))})",
    )
    default_setting = Settings.model_fields["analysis_max_patches"].default
    ap.add_argument(
        "--setting",
        type=int,
        default=default_setting,
        metavar="N",
        help="ANALYSIS_MAX_PATCHES of the end-to-end, stage, speed-up and memory figures "
        f"(default: the configured default, {default_setting})",
    )
    ap.add_argument(
        "--seed-python",
        type=Path,
        help="python of an existing environment with TensorFlow, librosa and musicnn 0.1.0 "
        "(default: made once in <cache>/seed-venv from models/requirements-convert.txt)",
    )
    ap.add_argument("--skip-seed", action="store_true", help="do not run the seed's pipeline")
    ap.add_argument(
        "--long-minutes", type=int, default=60, help="length of the memory test file (default 60)"
    )
    ap.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"cache folder (default {DEFAULT_CACHE})"
    )
    args = ap.parse_args(argv)
    if args.runs < 1 or min(args.max_patches) < 0 or args.setting < 0:
        ap.error("--runs must be positive and max_patches settings non-negative")
    return args


async def run(args: argparse.Namespace) -> Report:
    load_before = os.getloadavg()
    cache: Path = args.cache
    print(f"corpus {args.corpus}: fetching into {cache / 'music'} when missing", file=sys.stderr)
    corpus = load_corpus(args.corpus, cache / "music")
    warmup = make_warmup_clip(cache / "warmup.wav")
    progress(f"{args.long_minutes}-minute file for the memory test")
    long_file = make_long_file(corpus, cache / "long", args.long_minutes)
    sweep = sorted(set(args.max_patches) | {0, args.setting})
    settings = [args.setting, *(k for k in sweep if k != args.setting)]

    t0 = time.perf_counter()
    models(AnalysisParams())
    our_load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    analyze_path(warmup, AnalysisParams())
    our_warmup_s = time.perf_counter() - t0

    seed: SeedWorker | None = None
    if not args.skip_seed:
        python = args.seed_python or ensure_seed_python(cache / "seed-venv")
        progress(f"starting the seed pipeline with {python}")
        seed = SeedWorker(python, warmup, cache / "seed-pipeline.log")

    pg = EmbeddedPostgres(cache / "analysis-db")
    progress("starting the embedded PostgreSQL")
    pg.start()
    try:
        pool = await bench_database(pg)
        try:
            results = await measure(corpus, settings, args.runs, OurPipeline(pool), seed)
        finally:
            await pool.close()
    finally:
        pg.stop()
        if seed is not None:
            seed.close()

    save_raw(results, cache / f"analysis-{args.corpus}.json")
    memory = {k: rss_probe(long_file, k, warmup, args.runs) for k in dict.fromkeys([args.setting, 0])}
    return Report(
        args,
        corpus,
        results,
        args.setting,
        sweep,
        our_load_s,
        our_warmup_s,
        seed,
        memory,
        load_before,
        os.getloadavg(),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(run(args))
    print(report.text())
    print("\n---- README block ----\n")
    print(report.readme_block())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
