"""Recommendation quality on real, labelled music, through the running service's HTTP API.

    python bench/quality.py                      # small corpus (3 packages, CI-sized, a few minutes)
    python bench/quality.py --corpus large       # 7 packages, 7 labels
    python bench/quality.py --work /tmp/q --keep # keep the music folder and the analysed database
    python bench/quality.py --spaces             # also the "beat the seed" similarity spaces (offline)

What it does:

1. Corpus: freely licensed game soundtracks from Debian packages (bench/analysis_corpus.py fetches
   them into ~/.cache/audiomuse-bench), one folder per package, laid out as a music library
   (``music/<package>/<file>``, symlinks; tags as the package ships them). A track's *label* is its
   package: one soundtrack, one composer or band, one style.
2. ``python -m sidecar analyze`` analyses the folder like a new user would (a fresh
   AUDIOMUSE_DATA_DIR: embedded PostgreSQL and Valkey, every setting at its default), then
   ``python -m sidecar web`` serves it.
3. Every analysed track is a seed: ``GET /api/similar_tracks?n=10`` with
   ``eliminate_duplicates=false`` ("raw") and with the defaults, ``GET /api/mix?n=10`` and ``n=50``.
   The seed project's method (plain cosine kNN over the stored 200-d embedding, no rules) is
   computed in the same run from the same database.
4. Figures (bench/quality_metrics.py): precision@5 and @10 of the similar lists, the share of a
   mix from the seed's label, mean distance to the seed against the true nearest, back-to-back
   album / artist repeats, mean step between consecutive tracks; per label.  Distances are those
   of the answer's own space: the service's similarity space (migration 0007) for its answers,
   the stored MSD embedding for the seed's method (so 1.00 = the nearest there are in that
   space; steps are not comparable across the two).  Seeds whose label has
   no other track (funnyboat: one song) count in distances and repeats, not in precision.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

from analysis_corpus import Track, fetch_package, package_tracks  # noqa: E402
from quality_metrics import AnswerFigures, Library, fmt  # noqa: E402

from sidecar.config import Settings  # noqa: E402
from sidecar.embedded.postgres import EmbeddedPostgres, free_port  # noqa: E402
from sidecar.mix.normalize import normalize_artist  # noqa: E402

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "audiomuse-bench"
#: labels = packages; small: CI-sized (13 tracks), large: at least 5 labels of 8+ tracks
CORPORA: dict[str, tuple[str, ...]] = {
    "small": ("zaz-data", "neverball-common", "funnyboat"),
    "large": (
        "zaz-data",
        "neverball-common",
        "funnyboat",
        "blobwars-data",
        "singularity-music",
        "colobot-common-sounds",
        "marsshooter-data",
    ),
}
#: shorter than this is a sound effect, not music (neverball's 26-s and 47-s jingles are music)
MIN_SECONDS = 20.0
LISTENING = re.compile(r"listening on (http://\S+)")
ANSWERS = (
    # key, title, request (path, params) or None for the seed's method, is_mix
    ("seed_similar", "similar n=10: seed method (cosine kNN, no rules)", None, False),
    (
        "raw",
        "similar_tracks n=10, eliminate_duplicates=false",
        ("/api/similar_tracks", {"n": "10", "eliminate_duplicates": "false"}),
        False,
    ),
    ("default", "similar_tracks n=10, defaults", ("/api/similar_tracks", {"n": "10"}), False),
    ("seed_mix10", "mix n=10: seed method (seed + 9 nearest)", None, True),
    ("mix10", "/api/mix n=10", ("/api/mix", {"n": "10"}), True),
    ("seed_mix50", "mix n=50: seed method (seed + 49 nearest)", None, True),
    ("mix50", "/api/mix n=50", ("/api/mix", {"n": "50"}), True),
)


# ============================================================================ corpus and music folder
def corpus_tracks(name: str, cache: Path, min_seconds: float) -> list[Track]:
    tracks: list[Track] = []
    for package in CORPORA[name]:
        tracks += package_tracks(package, fetch_package(package, cache / "music"), min_seconds)
    return tracks


def make_music_folder(tracks: list[Track], music: Path) -> None:
    """``music/<package>/<file name>`` symlinks (made once: the item ids are paths, keep them stable)."""
    if music.exists():
        return
    tmp = music.with_name(music.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for t in tracks:
        folder = tmp / t.package
        folder.mkdir(parents=True, exist_ok=True)
        name, n = t.path.name, 1
        while (folder / name).exists() or (folder / name).is_symlink():
            n += 1
            name = f"{t.path.stem}-{n}{t.path.suffix}"
        (folder / name).symlink_to(t.path)
    tmp.rename(music)


# ============================================================================ the service
def child_env(data_dir: Path, music: Path, extra: dict[str, str]) -> dict[str, str]:
    """This shell's environment without any sidecar setting, then the run's own."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(
        AUDIOMUSE_DATA_DIR=str(data_dir),
        LOCAL_MUSIC_DIR=str(music),
        MEDIASERVER_TYPE="local",
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def analyse(env: dict[str, str]) -> str:
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "sidecar", "analyze"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if res.returncode != 0:
        raise RuntimeError(f"analyze exited {res.returncode}:\n{res.stdout}\n{res.stderr[-3000:]}")
    return f"{res.stdout.strip().splitlines()[0]} ({time.monotonic() - t0:.0f} s)"


class Web:
    """``python -m sidecar web`` as a child process; ``base`` is its address."""

    def __init__(self, env: dict[str, str]) -> None:
        env = {**env, "WEB_PORT": str(free_port()), "WEB_PROCESSES": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "web"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.tail: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 120
        self.base = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            found = LISTENING.search(line)
            if found:
                self.base = found.group(1)
                break
        if not self.base:
            self.stop()
            raise RuntimeError("web did not start:\n" + "\n".join(self.tail))
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.tail[:] = [*self.tail[-30:], line.rstrip()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ============================================================================ reading the library back
async def read_library(dsn: str, music: Path, label: str = "package") -> tuple[Library, dict[str, Any]]:
    """The analysed tracks (label = package folder, or album) and, for --spaces, their analysis rows."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT t.item_id, t.file_path, t.artist, t.album_id, e.embedding::text AS embedding,
                      e.space::text AS space,
                      a.tempo, a.key, a.scale, a.energy_normalized, a.tags::text AS tags,
                      a.mtt_tags::text AS mtt_tags, a.danceable, a.aggressive, a.happy, a.party, a.relaxed, a.sad
                 FROM tracks t JOIN embeddings e USING (item_id) LEFT JOIN track_analysis a USING (item_id)
                WHERE e.space IS NOT NULL
                ORDER BY t.file_path"""
        )
        failed = await conn.fetch(
            "SELECT file_path, failure_reason FROM tracks WHERE analysis_status <> 'analyzed'"
        )
    finally:
        await conn.close()
    root = str(music) + "/"
    labels = [
        str(r["file_path"]).removeprefix(root).split("/", 1)[0] if label == "package" else str(r["album_id"])
        for r in rows
    ]
    vectors = np.array([json.loads(r["embedding"]) for r in rows], dtype=np.float32)
    lib = Library(
        ids=[r["item_id"] for r in rows],
        labels=labels,
        albums=[r["album_id"] for r in rows],
        artists=[normalize_artist(r["artist"] or "") for r in rows],
        vectors=vectors,
    )
    # the service's answers are measured in its own similarity space (distance ratios, steps)
    service = dataclasses.replace(lib, vectors=np.array([json.loads(r["space"]) for r in rows], np.float32))
    extra = {"rows": [dict(r) for r in rows], "failed": [dict(r) for r in failed], "service": service}
    return lib, extra


# ============================================================================ asking the service
async def ask_all(base: str, lib: Library, service: Library) -> dict[str, AnswerFigures]:
    """Every answer for every seed: the seed's method from ``lib`` (the stored MSD embedding),
    the service's from its HTTP API, its distances measured in its own space (``service``)."""
    import aiohttp

    figures = {key: AnswerFigures() for key, *_ in ANSWERS}
    async with aiohttp.ClientSession() as http:
        for seed in lib.ids:
            for key, _title, request, is_mix in ANSWERS:
                relaxed: list[str] = []
                if request is None:
                    n = {"seed_similar": 10, "seed_mix10": 9, "seed_mix50": 49}[key]
                    answer = lib.nearest(seed, n)
                    if is_mix:
                        answer = [seed, *answer]
                else:
                    path, params = request
                    params = {**params, ("seed" if is_mix else "item_id"): seed}
                    async with http.get(base + path, params=params) as resp:
                        body = await resp.json()
                        if resp.status != 200:
                            raise RuntimeError(f"{path} {params}: {resp.status} {body}")
                    if is_mix:
                        answer = [item["item_id"] for item in body["items"]]
                        relaxed = body["relaxed"]
                    else:
                        answer = [item["item_id"] for item in body]
                space = lib if request is None else service
                figures[key].add(space, seed, answer, is_mix=is_mix, relaxed=relaxed)
    return figures


# ============================================================================ report
def report(lib: Library, figures: dict[str, AnswerFigures], loads: list[tuple[float, float, float]]) -> None:
    scorable = [s for s in lib.ids if lib.scorable(s)]
    print(
        f"\n{len(lib.ids)} analysed tracks, labels: "
        + ", ".join(f"{label} {n}" for label, n in sorted(lib.label_sizes.items()))
        + f"; precision over the {len(scorable)} seeds whose label has another track"
    )
    ceil5 = np.mean([min(5, lib.label_sizes[lib.label(s)] - 1) / 5 for s in scorable])
    ceil10 = np.mean([min(10, lib.label_sizes[lib.label(s)] - 1) / 10 for s in scorable])
    print(
        "| answer | P@5 | P@10 | label share (mix) | mean distance / true nearest | tracks | "
        "album back-to-back | artist back-to-back | mean step | relaxed (answers) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, title, _request, is_mix in ANSWERS:
        f = figures[key]
        r = f.row()
        relaxed = ", ".join(f"{name} {count}" for name, count in sorted(f.relaxed.items())) or "–"
        print(
            f"| {title} | {fmt(r['p5'])} | {fmt(r['p10'])} | {fmt(r['share'])} | {fmt(r['ratio'])} "
            f"| {fmt(r['length'], 1)} | {fmt(r['album_b2b'])} | {fmt(r['artist_b2b'])} | {fmt(r['step'], 3)} "
            f"| {relaxed if is_mix else '–'} |"
        )
    print(f"| ceiling (the library's labels) | {ceil5:.2f} | {ceil10:.2f} | | 1.00 | | | | | |")
    print("\nper label: P@5 of the similar lists, label share of the mixes")
    labels = sorted({lib.label(s) for s in scorable})
    print("| label | tracks | " + " | ".join(key for key, *_ in ANSWERS) + " |")
    print("|---|---|" + "---|" * len(ANSWERS))
    for label in labels:
        print(
            f"| {label} | {lib.label_sizes[label]} | "
            + " | ".join(
                fmt(float(np.mean(figures[key].by_label.get(label, [float("nan")])))) for key, *_ in ANSWERS
            )
            + " |"
        )
    print(
        "load average (1/5/15 min) during the run: "
        + "; ".join(" ".join(f"{x:.2f}" for x in load) for load in loads)
    )


def save_json(path: Path, lib: Library, figures: dict[str, AnswerFigures], extra: dict[str, Any]) -> None:
    out = {
        "labels": dict(lib.label_sizes),
        **extra,
        "answers": {
            key: {
                **figures[key].row(),
                "relaxed": dict(figures[key].relaxed),
                "by_label": {k: float(np.mean(v)) for k, v in figures[key].by_label.items()},
            }
            for key, *_ in ANSWERS
        },
    }
    path.write_text(json.dumps(out, indent=1, default=str))


# ============================================================================ main
def parse_sets(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set wants NAME=VALUE, got {item!r}")
        out[key] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="small")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the Debian packages are kept")
    ap.add_argument("--min-seconds", type=float, default=MIN_SECONDS)
    ap.add_argument(
        "--work",
        type=Path,
        default=None,
        help="folder for the music folder and the data folder (default: a temporary one, removed); "
        "an existing one is reused: its tracks are already analysed",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the service under test, e.g. MAX_SONGS_PER_ARTIST=0 (repeatable)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument(
        "--label",
        choices=("package", "album"),
        default="package",
        help="what counts as the same label: the Debian package (default) or the album the service sees",
    )
    ap.add_argument(
        "--spaces",
        action="store_true",
        help="also measure candidate similarity spaces (leave-one-out P@5, bench/quality_spaces.py)",
    )
    args = ap.parse_args()

    tracks = corpus_tracks(args.corpus, args.cache, args.min_seconds)
    work = args.work or Path(tempfile.mkdtemp(prefix="audiomuse-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    music, data_dir = work / "music", work / "data"
    loads = [os.getloadavg()]
    try:
        make_music_folder(tracks, music)
        env = child_env(data_dir, music, parse_sets(args.sets))
        print(
            f"corpus {args.corpus}: {len(tracks)} tracks of {args.min_seconds:.0f} s or more, "
            f"{sum(t.seconds for t in tracks) / 60:.0f} min, {len(CORPORA[args.corpus])} packages; "
            f"{os.cpu_count()} CPUs",
            flush=True,
        )
        print(f"analyse: {analyse(env)}", flush=True)
        loads.append(os.getloadavg())
        web = Web(env)
        try:
            dsn = EmbeddedPostgres(data_dir).start()  # attaches to the web process' server
            lib, extra = asyncio.run(read_library(dsn, music, args.label))
            for row in extra["failed"]:
                print(f"  not analysed: {row['file_path']}: {row['failure_reason']}", flush=True)
            t0 = time.monotonic()
            figures = asyncio.run(ask_all(web.base, lib, extra["service"]))
            print(f"asked {len(lib.ids)} seeds x 4 requests in {time.monotonic() - t0:.1f} s", flush=True)
            loads.append(os.getloadavg())
        finally:
            web.stop()
        report(lib, figures, loads)
        if args.spaces:
            from quality_spaces import report_spaces

            report_spaces(lib, extra["rows"], music)
        if args.json:
            save_json(
                args.json,
                lib,
                figures,
                {"corpus": args.corpus, "sets": args.sets, "loads": loads, "tracks": len(lib.ids)},
            )
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif args.work is None:
            print(f"kept {work}")


if __name__ == "__main__":
    main()
