"""One home for the analysis's defaults and its sample rate (issue #11)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

from sidecar.config import Settings
from sidecar.ml import audio, constants, features, mel
from sidecar.ml.pipeline import AnalysisParams

ML = Path(__file__).resolve().parent.parent / "sidecar" / "ml"

#: AnalysisParams field -> the Settings field it comes from
SETTING_OF = {
    "model_dir": "model_dir",
    "top_n_moods": "top_n_moods",
    "energy_min": "energy_min",
    "energy_max": "energy_max",
    "tempo_min": "tempo_min_bpm",
    "tempo_max": "tempo_max_bpm",
    "max_patches": "analysis_max_patches",
}


def test_analysis_params_defaults_are_the_settings_defaults() -> None:
    params = AnalysisParams()
    assert {f.name for f in dataclasses.fields(AnalysisParams)} == set(SETTING_OF) | {"threads"}
    for field, setting in SETTING_OF.items():
        assert getattr(params, field) == Settings.model_fields[setting].default, field
    assert params.max_patches == 12 and params.threads is None
    assert AnalysisParams.from_settings(Settings()) == params


def test_from_settings_takes_every_value(make_settings: Any, tmp_path: Path) -> None:
    s = make_settings(
        {
            "MODEL_DIR": str(tmp_path),
            "TOP_N_MOODS": "7",
            "ENERGY_MIN": "0.02",
            "ENERGY_MAX": "0.2",
            "TEMPO_MIN_BPM": "50",
            "TEMPO_MAX_BPM": "180",
            "ANALYSIS_MAX_PATCHES": "0",
        }
    )
    p = AnalysisParams.from_settings(s)
    assert p == AnalysisParams(
        model_dir=tmp_path,
        top_n_moods=7,
        energy_min=0.02,
        energy_max=0.2,
        tempo_min=50.0,
        tempo_max=180.0,
        max_patches=0,
    )
    # a run's own choice of moods wins; None or 0 leave the setting
    assert AnalysisParams.from_settings(s, 3).top_n_moods == 3
    assert AnalysisParams.from_settings(s, None).top_n_moods == 7
    assert AnalysisParams.from_settings(s, 0).top_n_moods == 7


def test_feature_defaults_are_the_settings_defaults() -> None:
    fields = Settings.model_fields
    assert (features.ENERGY_MIN, features.ENERGY_MAX) == (
        fields["energy_min"].default,
        fields["energy_max"].default,
    )
    assert (features.TEMPO_MIN, features.TEMPO_MAX) == (
        fields["tempo_min_bpm"].default,
        fields["tempo_max_bpm"].default,
    )


def test_one_sample_rate() -> None:
    assert constants.SAMPLE_RATE == 16000
    assert audio.SAMPLE_RATE is mel.SAMPLE_RATE is features.SAMPLE_RATE is constants.SAMPLE_RATE
    # no module of sidecar/ml but constants.py assigns a sample rate or the defaults it holds
    owned = set(constants.__all__)
    for path in sorted(ML.rglob("*.py")):
        if path.name == "constants.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            for t in targets:
                if isinstance(t, ast.Name):
                    assert t.id not in owned, f"{path.relative_to(ML)} assigns {t.id}"
