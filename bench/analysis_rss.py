"""Memory of a worker analysing one (long) file, measured in a fresh process; run by bench/analysis.py:

    python bench/analysis_rss.py FILE --max-patches 16 --warmup CLIP.wav

It imports what a worker imports (the analysis jobs), loads both models as the worker does, analyses
the warm-up clip once (first-call imports and caches), then ``FILE``, and prints one JSON line: the
resident set size after loading the models and after the warm-up (``VmRSS``), the peak over the
process' life (``getrusage(RUSAGE_SELF).ru_maxrss``) and the analysis time of ``FILE``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    """Current resident set size (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--max-patches", type=int, required=True)
    ap.add_argument("--warmup", type=Path, required=True)
    args = ap.parse_args()

    import sidecar.jobs.analysis  # noqa: F401  (the worker's code, for a realistic footprint)
    from sidecar.ml.pipeline import AnalysisParams, analyze_path, models

    params = AnalysisParams(max_patches=args.max_patches)
    models(params)
    loaded_mb = rss_mb()
    analyze_path(args.warmup, params)
    warm_mb = rss_mb()
    t0 = time.perf_counter()
    result = analyze_path(args.file, params)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "rss_models_mb": loaded_mb,
                "rss_warm_mb": warm_mb,
                "peak_rss_mb": peak_rss_mb(),
                "analysis_s": seconds,
                "seconds_analysed": result.features["seconds_analysed"],
                "source_seconds": result.features["source_seconds"],
                "patches": result.features["patches"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
