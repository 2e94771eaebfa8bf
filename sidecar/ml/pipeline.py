"""The analysis of one audio file: decode → mel → MusiCNN (MSD + MTT) → tempo, key, energy,
moods, other features.  CPU-bound and synchronous: jobs run it in a thread.

Parameters are the seed's (see sidecar/ml/mel.py); the log is taken in float32.  One log-mel
is shared by both taggers.  Audio longer than
FULL_SECONDS is analysed from evenly spaced excerpts (sidecar/ml/audio.py), so memory stays
bounded for any length.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sidecar.backup.fingerprint import file_fingerprint
from sidecar.ml import audio as _audio
from sidecar.ml import constants as _constants
from sidecar.ml import features as _features
from sidecar.ml import mel as _mel
from sidecar.ml.musicnn import MusicnnModel
from sidecar.ml.result import TrackAnalysis

if TYPE_CHECKING:
    from sidecar.config import Settings

#: bump when the pipeline (not the model) changes in a way that changes stored results
PIPELINE_REVISION = 1


class AnalysisFailed(Exception):
    """The file cannot be analysed; ``reason`` is stored with the track."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AnalysisParams:
    """The tunable parameters of one analysis.

    The service builds them from its settings with :meth:`from_settings`. The field defaults hold
    no literals of their own: they are the defaults of the matching :class:`~sidecar.config.Settings`
    fields (read once by :mod:`sidecar.ml.constants`; ``config.py`` is the only home of defaults), so
    ``AnalysisParams()`` analyses exactly as a service with default settings does.
    """

    model_dir: Path | None = _constants.MODEL_DIR  # MODEL_DIR
    top_n_moods: int = _constants.TOP_N_MOODS  # TOP_N_MOODS
    energy_min: float = _constants.ENERGY_MIN  # ENERGY_MIN
    energy_max: float = _constants.ENERGY_MAX  # ENERGY_MAX
    tempo_min: float = _constants.TEMPO_MIN  # TEMPO_MIN_BPM
    tempo_max: float = _constants.TEMPO_MAX  # TEMPO_MAX_BPM
    #: onnxruntime intra-op threads (None: onnxruntime's default); not a setting
    threads: int | None = None
    #: at most this many evenly spaced 3-s patches go through the models (0 = all); the
    #: embedding fidelity of the subset is measured by bench/analysis.py (ANALYSIS_MAX_PATCHES)
    max_patches: int = _constants.MAX_PATCHES

    @classmethod
    def from_settings(cls, settings: Settings, top_n_moods: int | None = None) -> AnalysisParams:
        """The parameters a service with ``settings`` analyses with; ``top_n_moods`` (a run's own
        choice) replaces ``TOP_N_MOODS`` unless it is None or 0."""
        return cls(
            model_dir=settings.model_dir,
            top_n_moods=top_n_moods or settings.top_n_moods,
            energy_min=settings.energy_min,
            energy_max=settings.energy_max,
            tempo_min=settings.tempo_min_bpm,
            tempo_max=settings.tempo_max_bpm,
            max_patches=settings.analysis_max_patches,
        )


def models(params: AnalysisParams) -> tuple[MusicnnModel, MusicnnModel]:
    """The two taggers, loaded once per process."""
    return (
        MusicnnModel.load(params.model_dir, "msd", params.threads),
        MusicnnModel.load(params.model_dir, "mtt", params.threads),
    )


def model_version(params: AnalysisParams) -> str:
    msd, mtt = models(params)
    return f"musicnn-{msd.version}+{mtt.version}/p{PIPELINE_REVISION}"


def _patches(decoded: _audio.DecodedAudio) -> np.ndarray:
    """Model patches, cut within each decoded span (never across two excerpts)."""
    logmels = [_mel.log_mel(piece) for piece in decoded.pieces()]
    logmels = [m for m in logmels if m.shape[0]]
    if not logmels:
        raise AnalysisFailed("too_short: no complete STFT frame")
    return np.concatenate([_mel.patches(m) for m in logmels])


def select_patches(patches: np.ndarray, limit: int) -> np.ndarray:
    """``limit`` patches evenly spaced over the track (all of them when ``limit`` is 0 or more
    than there are): patch i of n is taken from the middle of the i-th of n equal slices."""
    n = patches.shape[0]
    if limit <= 0 or n <= limit:
        return patches
    picks = ((np.arange(limit) + 0.5) * n / limit).astype(int)
    return np.asarray(patches[picks])


def analyze_path(path: Path, params: AnalysisParams) -> TrackAnalysis:
    """Analyse one file.  Raises :class:`AnalysisFailed` with a storable reason."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        decoded = _audio.load_for_analysis(path)
    except _audio.AudioDecodeError as exc:
        raise AnalysisFailed(str(exc)) from None
    y = decoded.samples
    timings["decode_s"] = time.perf_counter() - t0
    if _features.is_silent(y):
        raise AnalysisFailed(f"silent: peak {_features.peak_dbfs(y):.0f} dBFS over {decoded.seconds:.0f} s")

    t0 = time.perf_counter()
    patches = _patches(decoded)
    timings["mel_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    msd, mtt = models(params)
    chosen = select_patches(patches, params.max_patches)
    msd_tags, msd_emb = msd.predict_patches(chosen)
    mtt_tags, mtt_emb = mtt.predict_patches(chosen)
    timings["model_s"] = time.perf_counter() - t0
    embedding = msd_emb.mean(axis=0, dtype=np.float64).astype(np.float32)
    mtt_embedding = mtt_emb.mean(axis=0, dtype=np.float64).astype(np.float32)
    if not (np.all(np.isfinite(embedding)) and np.all(np.isfinite(mtt_embedding))):
        raise AnalysisFailed("model produced non-finite values")
    tags = {label: float(v) for label, v in zip(msd.labels, msd_tags.mean(axis=0), strict=True)}
    mtt_scores = {label: float(v) for label, v in zip(mtt.labels, mtt_tags.mean(axis=0), strict=True)}

    t0 = time.perf_counter()
    tempo = _features.estimate_tempo(y, tempo_min=params.tempo_min, tempo_max=params.tempo_max)
    timings["tempo_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    key = _features.estimate_key(y)
    timings["key_s"] = time.perf_counter() - t0
    energy = _features.energy(y)
    energy_norm = _features.normalize_energy(energy, params.energy_min, params.energy_max)
    other = _features.other_features(tags, mtt_scores, tempo=tempo or 0.0, energy_normalized=energy_norm)
    return TrackAnalysis(
        model_version=model_version(params),
        embedding=embedding,
        mtt_embedding=mtt_embedding,
        tags=tags,
        mtt_tags=mtt_scores,
        moods=_features.top_moods(tags, params.top_n_moods),
        tempo=float(tempo) if tempo else None,
        key=key.key,
        scale=key.scale,
        energy=float(energy),
        energy_normalized=float(energy_norm),
        other_features=other,
        features={
            "key_confidence": round(key.confidence, 4),
            "seconds_analysed": round(decoded.seconds, 2),
            "complete": decoded.complete,
            "damaged": decoded.damaged,
            "patches": int(chosen.shape[0]),
            "source_seconds": decoded.info.duration,
            "timings": {k: round(v, 4) for k, v in timings.items()},
            # finds the file again in a backup whatever its id (sidecar/backup/)
            **_fingerprint(path),
        },
    )


def _fingerprint(path: Path) -> dict[str, str]:
    try:
        return {"content_fingerprint": file_fingerprint(path)}
    except OSError:
        return {}
