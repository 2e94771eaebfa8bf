"""What the analysis of one track produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrackAnalysis:
    model_version: str
    embedding: np.ndarray  # 200-d float32: mean of MSD-MusiCNN's model/dense/BiasAdd over patches
    mtt_embedding: np.ndarray  # 200-d float32: the same of the MagnaTagATune model
    tags: dict[str, float]  # the 50 MSD tag scores
    mtt_tags: dict[str, float]  # the 50 MagnaTagATune tag scores
    moods: list[str]  # TOP_N_MOODS best MSD tags
    tempo: float | None
    key: str | None
    scale: str | None
    energy: float
    energy_normalized: float
    other_features: dict[str, float]  # danceable, aggressive, happy, party, relaxed, sad in [0, 1]
    features: dict[str, Any] = field(default_factory=dict)  # extra: key confidence, excerpt use, timings
