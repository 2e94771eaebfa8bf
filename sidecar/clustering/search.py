"""Parameter sampling (explore) and mutation of elites (exploit), research A.5.

A parameter set is a flat JSON-able dict: ``method``, ``pca_components`` (0 = no PCA),
``n_clusters`` (k-means, GMM, spectral) or ``eps`` + ``min_samples`` (DBSCAN), and
``random_state`` (the model's seed, so that a run can be repeated exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sidecar.clustering.params import ClusteringParams

Params = dict[str, Any]
SEED_MAX = 10_000


@dataclass(frozen=True)
class Space:
    """The ranges one run may draw from, bounded by its sample."""

    method: str
    k_range: tuple[int, int]
    pca_range: tuple[int, int]
    eps_range: tuple[float, float]
    min_samples_range: tuple[int, int]


def space(params: ClusteringParams, n_samples: int, n_features: int, k_range: tuple[int, int]) -> Space:
    """The search space of a sample of ``n_samples`` rows of ``n_features`` columns."""
    pca_hi = max(0, min(params.pca_components_max, n_features, n_samples - 1))
    pca_lo = min(params.pca_components_min, pca_hi)
    k_hi = max(2, min(k_range[1], n_samples - 1))
    k_lo = max(2, min(k_range[0], k_hi))
    return Space(
        params.cluster_algorithm,
        (k_lo, k_hi),
        (pca_lo, pca_hi),
        (params.dbscan_eps_min, params.dbscan_eps_max),
        (params.dbscan_min_samples_min, params.dbscan_min_samples_max),
    )


def _randint(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(rng.integers(lo, hi + 1)) if hi >= lo else lo


def explore(sp: Space, rng: np.random.Generator) -> Params:
    out: Params = {
        "method": sp.method,
        "pca_components": _randint(rng, *sp.pca_range),
        "random_state": _randint(rng, 0, SEED_MAX),
    }
    if sp.method == "dbscan":
        out["eps"] = round(float(rng.uniform(*sp.eps_range)), 3)
        out["min_samples"] = _randint(rng, *sp.min_samples_range)
    else:
        out["n_clusters"] = _randint(rng, *sp.k_range)
    return out


def _clip(value: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, value))


def mutate(elite: Params, sp: Space, int_delta: int, float_delta: float, rng: np.random.Generator) -> Params:
    """The elite with each parameter moved by at most ``int_delta`` / ``float_delta``, within
    the ranges (so an elite from a larger sample is brought back inside this one's)."""
    d = max(1, int_delta)

    def step(value: int, lo: int, hi: int) -> int:
        return int(_clip(int(value) + int(rng.integers(-d, d + 1)), lo, hi))

    out: Params = {
        "method": sp.method,
        "pca_components": step(int(elite.get("pca_components", 0)), *sp.pca_range),
        "random_state": step(int(elite.get("random_state", 0)), 0, SEED_MAX),
    }
    if sp.method == "dbscan":
        eps = float(elite.get("eps", sp.eps_range[0])) + float(rng.uniform(-float_delta, float_delta))
        out["eps"] = round(_clip(eps, *sp.eps_range), 3)
        out["min_samples"] = step(
            int(elite.get("min_samples", sp.min_samples_range[0])), *sp.min_samples_range
        )
    else:
        out["n_clusters"] = step(int(elite.get("n_clusters", sp.k_range[0])), *sp.k_range)
    return out


def choose(
    sp: Space,
    elites: Sequence[Params],
    exploit_probability: float,
    int_delta: int,
    float_delta: float,
    rng: np.random.Generator,
) -> tuple[Params, bool]:
    """Parameters for the next run and whether they came from an elite."""
    usable = [e for e in elites if e.get("method") == sp.method]
    if usable and rng.random() < exploit_probability:
        elite = usable[int(rng.integers(0, len(usable)))]
        return mutate(elite, sp, int_delta, float_delta, rng), True
    return explore(sp, rng), False


def exploitation_probability(params: ClusteringParams, start_run: int) -> float:
    """No exploitation during the first EXPLOITATION_START_FRACTION of the runs."""
    started = start_run >= params.clustering_runs * params.exploitation_start_fraction
    return params.exploitation_probability if started else 0.0
