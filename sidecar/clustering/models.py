"""One clustering model on one sample: standardise, optional PCA, fit, centres.

Each model is fitted once per run (``n_init=1``) with the run's own seed: the evolutionary
search already tries thousands of starts, so upstream's ten restarts per run (``n_init=10``)
only multiplied the time.  Centres are in the clustered (post-PCA) space: k-means' centres,
GMM's means, the members' mean for DBSCAN and spectral (noise, label -1, has none).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import DBSCAN, KMeans, SpectralClustering
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from sidecar.clustering.params import available_memory_bytes, spectral_memory_bytes

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


class ClusteringRefused(ValueError):
    """A run that cannot be done on this machine (spectral clustering too large for its memory)."""


@dataclass(frozen=True)
class Fitted:
    """A fitted run: the clustered data, each row's label (-1 = noise) and each label's centre."""

    data: Floats  # [n, d] standardised (and projected) rows
    labels: Ints  # [n]
    centres: dict[int, Floats]


def standardise(x: NDArray[Any]) -> Floats:
    """Zero mean, unit variance per column; constant columns become 0 (as StandardScaler)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd < 1e-12] = 1.0
    out: Floats = (x - mean) / sd
    return out


def project(x: Floats, components: int, seed: int) -> Floats:
    if components <= 0 or components >= min(x.shape):
        return x
    out: Floats = PCA(n_components=components, random_state=seed).fit_transform(x)
    return out


def check_spectral(n: int, n_neighbors: int, n_clusters: int, budget: int | None = None) -> None:
    """Refuse a spectral run that would need more than half of the available memory."""
    need = spectral_memory_bytes(n, n_neighbors, n_clusters)
    have = (available_memory_bytes() // 2) if budget is None else budget
    if need > have:
        raise ClusteringRefused(
            f"spectral clustering of {n} tracks with {n_clusters} clusters needs about {need >> 20} MiB, more "
            f"than half of this machine's available memory ({have >> 20} MiB usable): use kmeans or gmm, or "
            f"fewer tracks per genre (min_songs_per_genre_for_stratification, "
            f"stratified_sampling_target_percentile)"
        )


def _member_centres(x: Floats, labels: Ints) -> dict[int, Floats]:
    return {int(c): x[labels == c].mean(axis=0) for c in np.unique(labels) if c >= 0}


def fit(
    x: NDArray[Any], run: dict[str, Any], *, gmm_covariance: str = "full", n_neighbors: int = 30
) -> Fitted:
    """Standardise ``x``, project it (``run['pca_components']``), fit ``run['method']``."""
    seed = int(run.get("random_state", 0))
    data = project(standardise(x), int(run.get("pca_components", 0)), seed)
    n = data.shape[0]
    method = run["method"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # "graph is not fully connected" and the like
        if method == "kmeans":
            km = KMeans(n_clusters=int(run["n_clusters"]), n_init=1, random_state=seed).fit(data)
            labels = km.labels_.astype(np.int64)
            centres = {i: km.cluster_centers_[i] for i in range(km.cluster_centers_.shape[0])}
        elif method == "gmm":
            gm = GaussianMixture(
                n_components=int(run["n_clusters"]),
                covariance_type=gmm_covariance,
                init_params="k-means++",
                n_init=1,
                reg_covar=1e-4,
                random_state=seed,
            ).fit(data)
            labels = gm.predict(data).astype(np.int64)
            centres = {i: gm.means_[i] for i in range(gm.means_.shape[0])}
        elif method == "dbscan":
            labels = DBSCAN(eps=float(run["eps"]), min_samples=int(run["min_samples"])).fit_predict(data)
            labels = labels.astype(np.int64)
            centres = _member_centres(data, labels)
        elif method == "spectral":
            k = int(run["n_clusters"])
            check_spectral(n, n_neighbors, k)
            sc = SpectralClustering(
                n_clusters=k,
                assign_labels="kmeans",
                affinity="nearest_neighbors",
                n_neighbors=min(n_neighbors, n - 1),
                random_state=seed,
                n_init=1,
            )
            labels = sc.fit_predict(data).astype(np.int64)
            centres = _member_centres(data, labels)
        else:
            raise ValueError(f"unknown clustering method {method!r}")
    return Fitted(data, labels, {c: v for c, v in centres.items() if np.any(labels == c)})


def limit_threads() -> Any:
    """One BLAS / OpenMP thread per job: the worker runs WORKER_MAX_JOBS batches side by side."""
    from threadpoolctl import threadpool_limits

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return threadpool_limits(limits=1)
