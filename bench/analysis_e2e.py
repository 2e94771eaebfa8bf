"""End-to-end analysis benchmark: the real ``audiomuse analyze`` on the corpus of bench/analysis.py.

    python bench/analysis_e2e.py                   # large corpus, WORKER_MAX_JOBS 1 and 2, 2 runs each
    python bench/analysis_e2e.py --corpus small --worker-max-jobs 2 --runs 1
    python bench/analysis_e2e.py --worker-max-jobs 1 2 --ort-threads 2 1   # every pair, interleaved

Music folder: the corpus (bench/analysis_corpus.py, cached in ~/.cache/audiomuse-bench) as symlinks in a
temporary folder, each package's tracks in folders of ``--album-size`` (one album per folder; tagged
files are grouped by their album tag, as the local provider does).  Each run starts ``python -m sidecar
analyze`` as a new user would: fresh AUDIOMUSE_DATA_DIR (embedded PostgreSQL initialised, Valkey
started), LOCAL_MUSIC_DIR = that folder, WORKER_MAX_JOBS = the value measured, nothing else from this
shell's settings.  ``--ort-threads N`` forces N intra-op threads on the child's ONNX Runtime sessions
(0: the sidecar's choice).  Configurations alternate; each run waits (``--wait-quiet``) until the
machine's other processes use < 0.3 cores, and is repeated (``--retries``) if they used more.

* analysis s: ``started_at`` -> ``finished_at`` of the ``main_analysis`` task, read from the run's
  database afterwards (listing, album jobs, the 1-s completion poll); "startup" (initdb, servers,
  migrations, models) is apart: the time to the first progress line.
* CPU cores busy: user + sys CPU of our process tree (this process is a child subreaper, so the
  postmaster pg_ctl detaches stays in it) / analysis s, from /proc sampled every 0.5 s; 2.0 = both
  cores of a 2-core machine.  "others' cores": the rest of the machine in the same span.
* Stages: seconds per track in ``analyze_path``'s stages (``features.timings``); "in flight" = their
  sum / analysis s (2 when two album jobs are always analysing).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis_corpus import CORPORA, Track, load_corpus  # noqa: E402

from sidecar.config import Settings  # noqa: E402
from sidecar.embedded.postgres import EmbeddedPostgres  # noqa: E402

DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "audiomuse-bench"
#: README, Benchmarks > Analysis (bench/analysis.py, large corpus, ANALYSIS_MAX_PATCHES=12)
PIPELINE_S_PER_4MIN, PIPELINE_S_PER_4MIN_TRACK = 0.76, 0.78
PROGRESS_LINE = re.compile(r"\] \d+/\d+ tracks")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36
SAMPLE_S = 0.5
#: a run during which the machine's other processes kept more than this many cores busy is repeated
QUIET_CORES = 0.3
#: stages of sidecar.ml.pipeline.analyze_path, timed per track in track_analysis.features
STAGES = ("decode_s", "mel_s", "model_s", "tempo_s", "key_s")
#: the child's code when --ort-threads is set: every ONNX Runtime session gets that many threads
FORCE_THREADS = (
    "import sys, sidecar.ml.musicnn as m; make = m._make_session; "
    "m._make_session = lambda path, threads: make(path, {n}); "
    "from sidecar.cli import main; sys.exit(main(['analyze']))"
)


def make_music_folder(tracks: list[Track], dest: Path, album_size: int) -> None:
    """Symlinks ``dest/<package>-<n>/<file>``, ``album_size`` per folder; each file read once (page cache)."""
    by_package: dict[str, list[Track]] = {}
    for t in tracks:
        by_package.setdefault(t.package, []).append(t)
    for package, items in by_package.items():
        for i in range(0, len(items), album_size):
            folder = dest / f"{package}-{i // album_size + 1}"
            folder.mkdir(parents=True)
            for t in items[i : i + album_size]:
                (folder / t.path.name).symlink_to(t.path)
                t.path.read_bytes()


# ============================================================================ CPU
def tree_cpu_s(root: int) -> float:
    """User + sys CPU seconds of ``root``'s live descendants, each with its reaped children."""
    parent, cpu = {}, {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            parent[int(entry.name)] = int(fields[1])
            cpu[int(entry.name)] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, list(children.get(root, []))
    while stack:
        pid = stack.pop()
        total += cpu[pid]
        stack += children.get(pid, [])
    return total / CLK_TCK


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine (every process, every core) since boot."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


class CpuSampler(threading.Thread):
    """(wall clock, CPU s of our process tree, CPU s of the machine) every SAMPLE_S s until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append((time.time(), tree_cpu_s(os.getpid()), machine_cpu_s()))
            self.done.wait(SAMPLE_S)

    def between(self, start: float, end: float) -> tuple[float, float]:
        """(ours, the others') CPU seconds between two wall clock times (linear between samples)."""
        ours0, all0 = self._at(start)
        ours1, all1 = self._at(end)
        return ours1 - ours0, (all1 - all0) - (ours1 - ours0)

    def _at(self, t: float) -> tuple[float, float]:
        (t0, a0, m0) = ([s for s in self.samples if s[0] <= t] or self.samples[:1])[-1]
        (t1, a1, m1) = ([s for s in self.samples if s[0] >= t] or self.samples[-1:])[0]
        w = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        return a0 + (a1 - a0) * w, m0 + (m1 - m0) * w


def reap_orphans(timeout_s: float = 10.0) -> None:
    """Reap the descendants handed to us as subreaper (PostgreSQL's postmaster) once they exit."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.1)
        except ChildProcessError:
            return


def wait_until_quiet(limit_s: float, window_s: float = 15.0) -> None:
    """Wait (at most ``limit_s``) until the machine's other processes use under QUIET_CORES."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        c0 = machine_cpu_s()
        time.sleep(window_s)
        if (machine_cpu_s() - c0) / window_s < QUIET_CORES:
            return


# ============================================================================ one run
@dataclass
class Run:
    config: tuple[int, int]  # WORKER_MAX_JOBS, ONNX Runtime threads (0: the sidecar's own)
    startup_s: float
    command_s: float
    db: dict[str, float]  # from read_database
    cpu_s: float  # our process tree, during the analysis
    others_cpu_s: float  # every other process of the machine, same span
    load: float  # 1-min load average at the start

    @property
    def analysis_s(self) -> float:
        return self.db["t1"] - self.db["t0"]

    def cores(self) -> float:
        return self.cpu_s / self.analysis_s

    def others(self) -> float:
        return self.others_cpu_s / self.analysis_s

    def in_stages(self) -> float:
        return sum(self.db[st] for st in STAGES)


async def read_database(data_dir: Path) -> dict[str, float]:
    """Task times (epoch s), counts and stage sums from the run's database (its server started again)."""
    pg = EmbeddedPostgres(data_dir)
    conn = await asyncpg.connect(await asyncio.to_thread(pg.start))
    try:
        row = await conn.fetchrow(
            """SELECT extract(epoch FROM m.started_at)::float8 AS t0,
                      extract(epoch FROM m.finished_at)::float8 AS t1,
                      (m.details->>'albums_total')::float8 AS albums,
                      extract(epoch FROM a.t0)::float8 AS a0, extract(epoch FROM a.t1)::float8 AS a1,
                      (SELECT count(*) FROM tracks WHERE analysis_status = 'analyzed')::float8 AS analysed,
                      (SELECT count(*) FROM tracks WHERE analysis_status = 'failed')::float8 AS failed
                 FROM tasks m, (SELECT min(started_at) AS t0, max(finished_at) AS t1 FROM tasks
                                 WHERE task_type = 'album_analysis') a
                WHERE m.task_type = 'main_analysis' AND m.finished_at IS NOT NULL"""
        )
        sums = ", ".join(f"sum((features->'timings'->>'{st}')::float8) AS {st}" for st in STAGES)
        stages = await conn.fetchrow(f"SELECT {sums} FROM track_analysis")
    finally:
        await conn.close()
        await asyncio.to_thread(pg.stop)
    if row is None:
        raise RuntimeError("no finished main_analysis task in the run's database")
    return {k: float("nan") if v is None else float(v) for k, v in {**dict(row), **dict(stages)}.items()}


def run_once(music: Path, work: Path, jobs: int, ort_threads: int) -> Run:
    """One ``analyze`` of the whole folder, with a fresh data folder."""
    data_dir = Path(tempfile.mkdtemp(prefix="data-", dir=work))
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(AUDIOMUSE_DATA_DIR=str(data_dir), LOCAL_MUSIC_DIR=str(music), WORKER_MAX_JOBS=str(jobs))
    env.update(MEDIASERVER_TYPE="local", LOG_LEVEL="WARNING")
    cmd = ["-c", FORCE_THREADS.format(n=ort_threads)] if ort_threads else ["-m", "sidecar", "analyze"]
    first_progress: list[float] = []
    tail: list[str] = []
    load, sampler = os.getloadavg()[0], CpuSampler()
    sampler.start()
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, *cmd], cwd=ROOT, env=env, text=True, stdout=-1, stderr=-1)

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if not first_progress and PROGRESS_LINE.search(line):
                first_progress.append(time.monotonic())
            tail[:] = [*tail[-20:], line.rstrip()]

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    assert proc.stdout is not None
    try:
        out = proc.stdout.read()
        proc.wait()
    except BaseException:  # Ctrl-C, SIGTERM: the command cancels its run and stops its servers
        proc.send_signal(signal.SIGINT)
        proc.wait()
        raise
    command_s = time.monotonic() - t0
    reader.join()
    sampler.done.set()
    sampler.join()
    reap_orphans()
    if proc.returncode != 0:
        raise RuntimeError(f"analyze exited with {proc.returncode}:\n{out}\n" + "\n".join(tail))
    db = asyncio.run(read_database(data_dir))
    reap_orphans()
    shutil.rmtree(data_dir, ignore_errors=True)
    startup_s = first_progress[0] - t0 if first_progress else float("nan")
    return Run((jobs, ort_threads), startup_s, command_s, db, *sampler.between(db["t0"], db["t1"]), load)


# ============================================================================ report
def med_range(values: list[float], fmt: str) -> str:
    text = fmt.format(statistics.median(values))
    return text if len(values) == 1 else f"{text} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def table(title: str, columns: dict[str, tuple[str, Callable[[Run], float]]], runs: list[Run]) -> None:
    """Markdown table, one row per configuration: median (range) over its runs of each column."""
    print(f"\n{title}\n| WORKER_MAX_JOBS | ONNX Runtime threads | runs | " + " | ".join(columns) + " |")
    print("|---|---|---|" + "---|" * len(columns))
    for jobs, threads in sorted({r.config for r in runs}):
        rs = [r for r in runs if r.config == (jobs, threads)]
        cells = [med_range([f(r) for r in rs], fmt) for fmt, f in columns.values()]
        print(f"| {jobs} | {threads or 'default'} | {len(rs)} | " + " | ".join(cells) + " |")


def report(runs: list[Run], n: int, minutes: float) -> None:
    def per_track(stage: str) -> tuple[str, Callable[[Run], float]]:
        return "{:.2f}", lambda r: r.db[stage] / n

    title = f"{n} tracks, {minutes:.1f} min of music: median (range) over runs"
    table(
        title,
        {
            "analysis s": ("{:.1f}", lambda r: r.analysis_s),
            "s per track": ("{:.2f}", lambda r: r.analysis_s / n),
            "s per 4 min of music": ("{:.2f}", lambda r: r.analysis_s / minutes * 4),
            "CPU cores busy": ("{:.2f}", Run.cores),
            "others' cores": ("{:.2f}", Run.others),
            "startup s": ("{:.1f}", lambda r: r.startup_s),
        },
        runs,
    )
    print(
        f"pipeline (README's bench/analysis.py figure, one track at a time): {PIPELINE_S_PER_4MIN} s per 4 min"
    )
    print(
        f"of music, {PIPELINE_S_PER_4MIN_TRACK} s per 4-minute track; run it in the same session to compare"
    )
    title = "seconds per track in analyze_path's stages (wall: longer when the tracks in flight share cores)"
    stages = {st[:-2]: per_track(st) for st in STAGES}
    in_flight = ("{:.2f}", lambda r: r.in_stages() / r.analysis_s)
    table(title, {"total": ("{:.2f}", lambda r: r.in_stages() / n), **stages, "in flight": in_flight}, runs)
    loads = [r.load for r in runs]
    print(f"load average (1 min) at the start of the runs: {min(loads):.2f}-{max(loads):.2f}")


def print_run(i: int, r: Run, n: int, minutes: float) -> None:
    d = r.db
    print(
        f"run {i} WORKER_MAX_JOBS={r.config[0]} ort threads {r.config[1] or 'default'}: {d['analysed']:.0f} "
        f"analysed, {d['failed']:.0f} failed, {d['albums']:.0f} albums; analysis {r.analysis_s:.1f} s "
        f"(album jobs {d['a1'] - d['a0']:.1f} s), {r.analysis_s / n:.2f} s/track, "
        f"{r.analysis_s / minutes * 4:.2f} s/4 min, {r.cores():.2f} cores busy (others {r.others():.2f}); "
        f"startup {r.startup_s:.1f} s, command {r.command_s:.1f} s; load {r.load:.2f}\n"
        f"  in analyze_path {r.in_stages() / n:.2f} s/track ("
        + ", ".join(f"{st[:-2]} {d[st] / n:.2f}" for st in STAGES)
        + f"), tracks in flight {r.in_stages() / r.analysis_s:.2f}",
        flush=True,
    )
    if d["analysed"] + d["failed"] != n:
        print(f"  warning: {d['analysed'] + d['failed']:.0f} of {n} tracks done", flush=True)


def measure(
    args: argparse.Namespace, work: Path, tracks: list[Track], minutes: float, runs: list[Run]
) -> None:
    """The runs, configurations interleaved; appended to ``runs`` as they end."""
    for i in range(args.runs):
        for jobs in args.worker_max_jobs:
            for threads in args.ort_threads:
                for _attempt in range(1 + args.retries):
                    wait_until_quiet(args.wait_quiet)
                    r = run_once(work / "music", work, jobs, threads)
                    print_run(i + 1, r, len(tracks), minutes)
                    if r.others() < QUIET_CORES:
                        break
                    print("  other processes were busy: repeating the run", flush=True)
                runs.append(r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="large")
    ap.add_argument("--worker-max-jobs", type=int, nargs="+", default=[1, 2], metavar="N")
    ap.add_argument("--ort-threads", type=int, nargs="+", default=[0], metavar="N", help="default: 0")
    ap.add_argument("--runs", type=int, default=2, help="runs per configuration (default 2)")
    ap.add_argument("--album-size", type=int, default=4, help="tracks per folder (default 4)")
    ap.add_argument("--wait-quiet", type=float, default=300, metavar="S", help="default: 300")
    ap.add_argument("--retries", type=int, default=2, help="default: 2 (then the last run counts)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill cleans up and reports, as Ctrl-C

    tracks = load_corpus(args.corpus, args.cache / "music")
    minutes = sum(t.minutes for t in tracks)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    work = Path(tempfile.mkdtemp(prefix="audiomuse-e2e-"))
    try:
        make_music_folder(tracks, work / "music", args.album_size)
        print(
            f"corpus {args.corpus}: {len(tracks)} tracks, {minutes:.1f} min; {os.cpu_count()} CPUs",
            flush=True,
        )
        runs: list[Run] = []
        interrupted = False
        try:
            measure(args, work, tracks, minutes, runs)
        except KeyboardInterrupt:
            interrupted = True
        if runs:
            report(runs, len(tracks), minutes)
        if interrupted:
            sys.exit("interrupted (Ctrl-C or SIGTERM): the runs done so far are above")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
