"""Track-level features from the 16 kHz mono signal and the two MusiCNN taggers' scores.

All functions are pure and deterministic (no global state besides cached constant tables). One
module per feature; each module's docstring documents its method:

==============  ====================================================================================
``energy``      silence (peak dBFS) and energy (mean frame RMS, as AudioMuse-AI), its normalisation
``tempo``       tempo from a spectral-flux onset envelope's autocorrelation, folded into a BPM range
``key``         key and scale: mean chroma correlated with the Krumhansl-Kessler profiles
``moods``       the taggers' labels, the top moods, and the six other features (a documented
                mapping of the tag scores plus tempo and energy)
==============  ====================================================================================

This package re-exports every public name, so ``from sidecar.ml import features`` and
``features.estimate_tempo(...)`` keep working.
"""

from __future__ import annotations

from sidecar.ml.constants import SAMPLE_RATE
from sidecar.ml.features.energy import (
    ENERGY_MAX,
    ENERGY_MIN,
    SILENCE_DBFS,
    energy,
    is_silent,
    normalize_energy,
    peak_dbfs,
)
from sidecar.ml.features.key import KEYS, KeyEstimate, chroma_profile, estimate_key, key_from_chroma
from sidecar.ml.features.moods import (
    FEATURE_BIAS,
    FEATURE_GAIN,
    FEATURE_WEIGHTS,
    MSD_LABELS,
    MTT_LABELS,
    OTHER_FEATURES,
    TAG_FLOOR,
    other_features,
    tag_strength,
    top_moods,
)
from sidecar.ml.features.tempo import (
    TEMPO_MAX,
    TEMPO_MIN,
    estimate_tempo,
    fold_tempo,
    onset_envelope,
    tempo_from_onset_envelope,
)

__all__ = [
    "ENERGY_MAX",
    "ENERGY_MIN",
    "FEATURE_BIAS",
    "FEATURE_GAIN",
    "FEATURE_WEIGHTS",
    "KEYS",
    "MSD_LABELS",
    "MTT_LABELS",
    "OTHER_FEATURES",
    "SAMPLE_RATE",
    "SILENCE_DBFS",
    "TAG_FLOOR",
    "TEMPO_MAX",
    "TEMPO_MIN",
    "KeyEstimate",
    "chroma_profile",
    "energy",
    "estimate_key",
    "estimate_tempo",
    "fold_tempo",
    "is_silent",
    "key_from_chroma",
    "normalize_energy",
    "onset_envelope",
    "other_features",
    "peak_dbfs",
    "tag_strength",
    "tempo_from_onset_envelope",
    "top_moods",
]
