"""The analysis's sample rate and the defaults of its tunable parameters, each defined once.

:data:`SAMPLE_RATE` is what the models were trained on (16 kHz mono): decoding resamples to it, the
log-mel, tempo and key are computed at it. It is not a setting.

The tunable parameters (energy and tempo ranges, moods kept, patch budget, model folder) are
settings: their one literal default is the field default in :class:`sidecar.config.Settings` (the
only home of defaults). The names below read those defaults, so the feature functions'
keyword defaults and :class:`sidecar.ml.pipeline.AnalysisParams` analyse exactly as a service with
default settings does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from sidecar.config import Settings

__all__ = [
    "ENERGY_MAX",
    "ENERGY_MIN",
    "MAX_PATCHES",
    "MODEL_DIR",
    "SAMPLE_RATE",
    "TEMPO_MAX",
    "TEMPO_MIN",
    "TOP_N_MOODS",
]

SAMPLE_RATE: Final = 16000


def _default(field: str) -> Any:
    return Settings.model_fields[field].default


ENERGY_MIN: Final[float] = float(_default("energy_min"))  # ENERGY_MIN
ENERGY_MAX: Final[float] = float(_default("energy_max"))  # ENERGY_MAX
TEMPO_MIN: Final[float] = float(_default("tempo_min_bpm"))  # TEMPO_MIN_BPM
TEMPO_MAX: Final[float] = float(_default("tempo_max_bpm"))  # TEMPO_MAX_BPM
TOP_N_MOODS: Final[int] = int(_default("top_n_moods"))  # TOP_N_MOODS
MAX_PATCHES: Final[int] = int(_default("analysis_max_patches"))  # ANALYSIS_MAX_PATCHES
MODEL_DIR: Final[Path | None] = _default("model_dir")  # MODEL_DIR (None: the shipped models)
