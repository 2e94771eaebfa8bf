"""Shared by the benchmarks: percentiles of latency samples."""

from __future__ import annotations

import numpy as np


def pct(values: list[float], q: float) -> float:
    """The q-th percentile of ``values`` (NaN when there are none)."""
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")
