"""The similarity space: where "similar songs", mixes and paths measure distance.

Each analysed track is one 404-d vector, searched by cosine distance:

* the MSD-MusiCNN embedding (200-d, the seed project's whole space) and the MagnaTagATune
  model's embedding (200-d), each dimension standardised over the library, each block scaled
  so that its total variance is 1 (the two models weigh alike);
* tempo (log2 BPM) and normalised energy, standardised, and the key on the circle of fifths
  (a minor key at its relative major), each weighted 0.2.

Measured on labelled real music (bench/quality.py --spaces, README): leave-one-out precision@5
0.64 against 0.57 for the seed's plain cosine over the MSD embedding, no label worse.

Standardising needs the library's mean and spread of every dimension.  The database keeps them
(table ``similarity_space``, fitted from the moments the database aggregates: see
sidecar/db/space.py) and builds every vector itself (SQL function ``am_space``, migration
0007), so a track's vector is always built with the statistics in force when it is stored.
This module turns the moments into the stored scales.  A track analysed before the MTT
embedding was stored sits at the library mean there (a zero block) until analysed again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EMBEDDING_DIM = 200
SPACE_DIM = 2 * EMBEDDING_DIM + 4
LIGHT_WEIGHT = 0.2  # tempo, energy and the key (as a whole), against 1 for each embedding block
REVISION = 1  # bump when the recipe changes: every stored vector is then rebuilt
_MIN_SD = 1e-9


@dataclass(frozen=True)
class Moments:
    """Means and means of squares over the analysed tracks, as the database aggregates them."""

    tracks: int
    msd_mean: np.ndarray
    msd_sq: np.ndarray
    mtt_tracks: int  # tracks with an MTT embedding
    mtt_mean: np.ndarray | None
    mtt_sq: np.ndarray | None
    tempo_mean: float  # of log2 BPM (120 when unknown)
    tempo_sq: float
    energy_mean: float  # of the normalised energy (0 when unknown)
    energy_sq: float


@dataclass(frozen=True)
class SpaceStats:
    """What ``am_space`` needs: per block, the mean to subtract and the scale to multiply by."""

    tracks: int
    mtt_tracks: int
    msd_mean: np.ndarray
    msd_scale: np.ndarray
    mtt_mean: np.ndarray
    mtt_scale: np.ndarray
    tempo_mean: float
    tempo_scale: float
    energy_mean: float
    energy_scale: float
    key_scale: float
    revision: int = REVISION


def _scale(mean: np.ndarray, sq: np.ndarray, weight: float) -> np.ndarray:
    """weight / sd per dimension; 0 for a constant dimension (it says nothing: standardised to 0)."""
    sd = np.sqrt(np.maximum(np.asarray(sq, np.float64) - np.asarray(mean, np.float64) ** 2, 0.0))
    ok = sd > _MIN_SD
    return np.where(ok, weight / np.where(ok, sd, 1.0), 0.0)


def stats_from_moments(m: Moments) -> SpaceStats:
    block = 1.0 / math.sqrt(EMBEDDING_DIM)
    if m.mtt_tracks and m.mtt_mean is not None and m.mtt_sq is not None:
        mtt_mean, mtt_scale = np.asarray(m.mtt_mean, np.float64), _scale(m.mtt_mean, m.mtt_sq, block)
    else:  # nothing to standardise with yet: the block stays zero
        mtt_mean, mtt_scale = np.zeros(EMBEDDING_DIM), np.zeros(EMBEDDING_DIM)
    light = _scale(np.array([m.tempo_mean, m.energy_mean]), np.array([m.tempo_sq, m.energy_sq]), LIGHT_WEIGHT)
    return SpaceStats(
        tracks=m.tracks,
        mtt_tracks=m.mtt_tracks,
        msd_mean=np.asarray(m.msd_mean, np.float64),
        msd_scale=_scale(m.msd_mean, m.msd_sq, block),
        mtt_mean=mtt_mean,
        mtt_scale=mtt_scale,
        tempo_mean=m.tempo_mean,
        tempo_scale=float(light[0]),
        energy_mean=m.energy_mean,
        energy_scale=float(light[1]),
        key_scale=LIGHT_WEIGHT / math.sqrt(2),
    )
