"""Tempo, key, energy, silence, moods and the six derived features."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.ml import features as F
from sidecar.ml.constants import SAMPLE_RATE
from sidecar.ml.features import key as K

SR = SAMPLE_RATE
NOTES = F.KEYS


# --------------------------------------------------------------------------- signals


def click_track(bpm: float, seconds: float = 30.0, amplitude: float = 0.5, noise: float = 0.0) -> np.ndarray:
    """A 10 ms decaying 1 kHz click on every beat."""
    n = int(seconds * SR)
    y = np.zeros(n, dtype=np.float32)
    length = int(0.01 * SR)
    k = np.arange(length)
    burst = (np.sin(2 * np.pi * 1000 * k / SR) * np.exp(-k / (0.002 * SR))).astype(np.float32)
    t = 0.1
    while t * SR + length < n:
        i = int(round(t * SR))
        y[i : i + length] += burst
        t += 60.0 / bpm
    if noise:
        y += np.random.default_rng(0).standard_normal(n).astype(np.float32) * noise
    return y * amplitude


def drum_pattern(bpm: float, seconds: float = 30.0, hat: float = 0.6) -> np.ndarray:
    """Kick on beats 1 and 3, snare on 2 and 4, hi-hat on every eighth note."""
    rng = np.random.default_rng(1)
    n = int(seconds * SR)
    y = np.zeros(n, dtype=np.float32)
    length = int(0.15 * SR)
    t = np.arange(length) / SR
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 20)
    snare = rng.standard_normal(length) * np.exp(-t * 25) * 0.7 + 0.3 * np.sin(2 * np.pi * 200 * t) * np.exp(
        -t * 30
    )
    hat_len = int(0.05 * SR)
    hh = np.diff(rng.standard_normal(hat_len + 1)) * np.exp(-np.arange(hat_len) / SR * 80) * 0.5
    period = 60.0 / bpm
    beat, pos = 0, 0.05
    while (pos + period) * SR + length < n:
        i = int(pos * SR)
        y[i : i + length] += snare if beat % 2 else kick
        for half in (0.0, 0.5):
            j = int((pos + half * period) * SR)
            y[j : j + hat_len] += hh * hat
        beat += 1
        pos += period
    return y * 0.3


def tones(midis: list[int], seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    y = np.zeros_like(t)
    for m in midis:
        f = 440.0 * 2 ** ((m - 69) / 12)
        for h in range(1, 5):
            if f * h < SR / 2:
                y += np.sin(2 * np.pi * f * h * t) / h
    env = np.minimum(1.0, np.minimum(t / 0.02, (seconds - t) / 0.05))
    return y * env


MAJOR_CHORDS = [
    (0, 4, 7),
    (5, 9, 12),
    (7, 11, 14),
    (0, 4, 7),
    (9, 12, 16),
    (5, 9, 12),
    (7, 11, 14),
    (0, 4, 7),
]
MINOR_CHORDS = [
    (0, 3, 7),
    (5, 8, 12),
    (7, 11, 14),
    (0, 3, 7),
    (8, 12, 15),
    (5, 8, 12),
    (7, 11, 14),
    (0, 3, 7),
]


def progression(tonic: int, scale: str) -> np.ndarray:
    """I-IV-V-I-vi-IV-V-I (major) or i-iv-V-i-VI-iv-V-i (harmonic minor), with a bass note."""
    chords = MAJOR_CHORDS if scale == "major" else MINOR_CHORDS
    base = 60 + tonic
    y = np.concatenate([tones([base + c for c in ch] + [base + ch[0] - 12], 1.0) for ch in chords])
    return (y / np.abs(y).max() * 0.5).astype(np.float32)


def scale_run(tonic: int, scale: str) -> np.ndarray:
    steps = [0, 2, 4, 5, 7, 9, 11, 12] if scale == "major" else [0, 2, 3, 5, 7, 8, 11, 12]
    base = 60 + tonic
    y = np.concatenate([tones([base + s, base - 12], 0.4) for s in steps + steps[::-1] + [0, 0]])
    return (y / np.abs(y).max() * 0.5).astype(np.float32)


# --------------------------------------------------------------------------- tempo


@pytest.mark.parametrize("bpm", [70, 90, 120, 128, 150, 174])
def test_tempo_of_click_tracks_within_two_percent(bpm: int) -> None:
    assert F.estimate_tempo(click_track(bpm)) == pytest.approx(bpm, rel=0.02)


@pytest.mark.parametrize("bpm", [70, 90, 120, 128, 150, 174])
def test_tempo_of_drum_patterns_with_eighth_note_hats(bpm: int) -> None:
    assert F.estimate_tempo(drum_pattern(bpm)) == pytest.approx(bpm, rel=0.02)


@pytest.mark.parametrize("bpm", [90, 174])
def test_tempo_is_level_and_noise_robust(bpm: int) -> None:
    assert F.estimate_tempo(click_track(bpm, amplitude=0.005)) == pytest.approx(bpm, rel=0.02)
    assert F.estimate_tempo(click_track(bpm, noise=0.05)) == pytest.approx(bpm, rel=0.02)


def test_tempo_folds_into_the_requested_range() -> None:
    assert F.estimate_tempo(click_track(174), tempo_min=40, tempo_max=100) == pytest.approx(87, rel=0.02)
    assert F.estimate_tempo(click_track(70), tempo_min=100, tempo_max=200) == pytest.approx(140, rel=0.02)
    assert F.estimate_tempo(click_track(150), tempo_min=40, tempo_max=140) == pytest.approx(75, rel=0.02)


@given(
    tempo=st.floats(1.0, 2000.0),
    low=st.floats(20.0, 120.0),
    width=st.floats(1.01, 4.0),
)
def test_fold_tempo_lands_in_range_by_octaves(tempo: float, low: float, width: float) -> None:
    high = low * width
    out = F.fold_tempo(tempo, low, high)
    assert low <= out <= high
    if width >= 2.0:  # a full octave fits: only x2 / /2 steps were taken
        ratio = math.log2(out / tempo)
        assert ratio == pytest.approx(round(ratio), abs=1e-9)


def test_tempo_without_pulse_is_zero() -> None:
    assert F.estimate_tempo(np.zeros(SR * 10, dtype=np.float32)) == 0.0
    assert F.estimate_tempo(np.zeros(100, dtype=np.float32)) == 0.0
    with pytest.raises(ValueError):
        F.estimate_tempo(click_track(120), tempo_min=100, tempo_max=90)


# --------------------------------------------------------------------------- key


@pytest.mark.parametrize("scale", ["major", "minor"])
@pytest.mark.parametrize("tonic", range(12))
def test_key_of_chord_progressions(tonic: int, scale: str) -> None:
    est = F.estimate_key(progression(tonic, scale))
    assert (est.key, est.scale) == (NOTES[tonic], scale)
    assert 0.5 < est.confidence <= 1.0


@pytest.mark.parametrize(
    ("tonic", "scale"), [(0, "major"), (7, "major"), (10, "major"), (9, "minor"), (4, "minor"), (1, "minor")]
)
def test_key_of_scales(tonic: int, scale: str) -> None:
    est = F.estimate_key(scale_run(tonic, scale))
    assert (est.key, est.scale) == (NOTES[tonic], scale)


def test_key_of_silence_has_no_confidence() -> None:
    est = F.estimate_key(np.zeros(SR * 5, dtype=np.float32))
    assert est.confidence == 0.0
    assert F.estimate_key(np.zeros(10, dtype=np.float32)).confidence == 0.0


def test_key_from_chroma_profiles() -> None:
    # the C major profile itself correlates perfectly with C major
    assert F.key_from_chroma(K._KK_MAJOR) == F.KeyEstimate("C", "major", pytest.approx(1.0))
    assert F.key_from_chroma(np.roll(K._KK_MINOR, 9)) == F.KeyEstimate("A", "minor", pytest.approx(1.0))


# --------------------------------------------------------------------------- energy and silence


@pytest.mark.parametrize("n", [1, 100, 511, 512, 513, 2048, 5000, 3 * SR + 17])
def test_energy_is_audiomuse_mean_rms(n: int) -> None:
    import librosa

    y = (np.random.default_rng(n).standard_normal(n) * 0.2).astype(np.float32)
    assert F.energy(y) == pytest.approx(float(np.mean(librosa.feature.rms(y=y))), rel=1e-5)


def test_energy_of_a_sine_and_its_normalisation() -> None:
    t = np.arange(SR * 5) / SR
    e = F.energy((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    assert e == pytest.approx(0.2 / math.sqrt(2), rel=0.01)  # minus the zero-padded edge frames
    assert F.energy(np.zeros(0, dtype=np.float32)) == 0.0
    assert F.normalize_energy(0.08) == pytest.approx(0.5)
    assert F.normalize_energy(0.0) == 0.0 and F.normalize_energy(1.0) == 1.0
    assert F.normalize_energy(0.3, energy_min=0.1, energy_max=0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        F.normalize_energy(0.1, energy_min=0.2, energy_max=0.2)


def test_silence() -> None:
    rng = np.random.default_rng(0)
    assert F.is_silent(np.zeros(SR, dtype=np.float32))
    assert F.is_silent(np.zeros(0, dtype=np.float32))
    assert F.is_silent((rng.uniform(-1, 1, SR) * 10 ** (-70 / 20)).astype(np.float32))
    assert not F.is_silent((rng.uniform(-1, 1, SR) * 10 ** (-50 / 20)).astype(np.float32))
    assert F.peak_dbfs(np.array([0.5, -1.0], dtype=np.float32)) == pytest.approx(0.0)
    assert F.peak_dbfs(np.zeros(3)) == -math.inf
    assert not F.is_silent(np.full(10, 0.01), threshold_dbfs=-60) and F.is_silent(
        np.full(10, 0.01), threshold_dbfs=-30
    )


# --------------------------------------------------------------------------- moods


def test_top_moods() -> None:
    scores = {"rock": 0.2, "pop": 0.9, "jazz": 0.5, "metal": 0.5, "sad": 0.1}
    assert F.top_moods(scores, 3) == ["pop", "jazz", "metal"]  # ties keep the mapping's order
    assert F.top_moods(scores, 10) == ["pop", "jazz", "metal", "rock", "sad"]
    assert F.top_moods(scores, 0) == [] and F.top_moods({}, 5) == []


def test_label_lists_match_the_models() -> None:
    labels = json.loads((Path(__file__).parent.parent / "models" / "labels.json").read_text())
    assert tuple(labels["msd"]) == F.MSD_LABELS
    assert tuple(labels["mtt"]) == F.MTT_LABELS


# --------------------------------------------------------------------------- other features


def test_weight_table_names_only_real_tags() -> None:
    known = {f"msd:{x}" for x in F.MSD_LABELS} | {f"mtt:{x}" for x in F.MTT_LABELS}
    known |= {"tempo:dance", "tempo:fast", "energy"}
    assert set(F.FEATURE_WEIGHTS) == set(F.OTHER_FEATURES) == set(F.FEATURE_BIAS)
    for feature, weights in F.FEATURE_WEIGHTS.items():
        assert set(weights) <= known, (feature, set(weights) - known)
        assert all(w != 0 for w in weights.values())


msd_scores = st.lists(st.floats(0.0, 1.0), min_size=50, max_size=50).map(
    lambda v: dict(zip(F.MSD_LABELS, v, strict=True))
)
mtt_scores = st.lists(st.floats(0.0, 1.0), min_size=50, max_size=50).map(
    lambda v: dict(zip(F.MTT_LABELS, v, strict=True))
)
tempos = st.one_of(st.just(0.0), st.floats(40.0, 200.0))
energies = st.floats(0.0, 1.0)


@settings(deadline=None)
@given(msd=msd_scores, mtt=st.one_of(st.none(), mtt_scores), tempo=tempos, energy=energies)
def test_other_features_are_bounded_and_deterministic(msd, mtt, tempo, energy) -> None:
    out = F.other_features(msd, mtt, tempo=tempo, energy_normalized=energy)
    assert tuple(out) == F.OTHER_FEATURES
    assert all(0.0 <= v <= 1.0 for v in out.values())
    assert (
        F.other_features(dict(msd), None if mtt is None else dict(mtt), tempo=tempo, energy_normalized=energy)
        == out
    )


def _raise(scores: dict[str, float], tags: list[str], delta: float) -> dict[str, float]:
    return {k: (min(1.0, v + delta) if k in tags else v) for k, v in scores.items()}


@settings(deadline=None)
@given(msd=msd_scores, mtt=mtt_scores, tempo=tempos, energy=energies, delta=st.floats(0.01, 1.0))
def test_metal_raises_aggressive(msd, mtt, tempo, energy, delta) -> None:
    before = F.other_features(msd, mtt, tempo=tempo, energy_normalized=energy)
    after = F.other_features(
        _raise(msd, ["metal", "heavy metal", "hard rock"], delta),
        _raise(mtt, ["metal", "loud"], delta),
        tempo=tempo,
        energy_normalized=energy,
    )
    assert after["aggressive"] >= before["aggressive"]
    assert after["relaxed"] <= before["relaxed"]


@settings(deadline=None)
@given(msd=msd_scores, mtt=mtt_scores, tempo=tempos, energy=energies, delta=st.floats(0.01, 1.0))
def test_sad_and_slow_raise_sad_and_lower_party_and_happy(msd, mtt, tempo, energy, delta) -> None:
    before = F.other_features(msd, mtt, tempo=tempo, energy_normalized=energy)
    after = F.other_features(
        _raise(msd, ["sad"], delta), _raise(mtt, ["slow"], delta), tempo=tempo, energy_normalized=energy
    )
    assert after["sad"] >= before["sad"]
    assert after["party"] <= before["party"]
    assert after["happy"] <= before["happy"]


@settings(deadline=None)
@given(msd=msd_scores, mtt=mtt_scores, tempo=tempos, low=energies, high=energies)
def test_energy_raises_aggressive_and_lowers_relaxed(msd, mtt, tempo, low, high) -> None:
    low, high = min(low, high), max(low, high)
    a = F.other_features(msd, mtt, tempo=tempo, energy_normalized=low)
    b = F.other_features(msd, mtt, tempo=tempo, energy_normalized=high)
    assert b["aggressive"] >= a["aggressive"] and b["party"] >= a["party"]
    assert b["relaxed"] <= a["relaxed"]


@settings(deadline=None)
@given(
    msd=msd_scores, mtt=mtt_scores, energy=energies, club=st.floats(110.0, 135.0), other=st.floats(40.0, 90.0)
)
def test_club_tempo_raises_danceable(msd, mtt, energy, club, other) -> None:
    a = F.other_features(msd, mtt, tempo=other, energy_normalized=energy)
    b = F.other_features(msd, mtt, tempo=club, energy_normalized=energy)
    assert b["danceable"] > a["danceable"]


def test_monotonic_steps_are_strict_away_from_saturation() -> None:
    msd = {lab: 0.05 for lab in F.MSD_LABELS}
    mtt = {lab: 0.05 for lab in F.MTT_LABELS}
    base = F.other_features(msd, mtt, tempo=100, energy_normalized=0.5)
    metal = F.other_features({**msd, "metal": 0.3}, mtt, tempo=100, energy_normalized=0.5)
    sad = F.other_features({**msd, "sad": 0.1}, {**mtt, "slow": 0.3}, tempo=100, energy_normalized=0.5)
    assert metal["aggressive"] > base["aggressive"] + 0.05
    assert sad["sad"] > base["sad"] + 0.05
    assert sad["party"] < base["party"] and sad["happy"] < base["happy"]


def _profile(msd: dict[str, float], mtt: dict[str, float], tempo: float, energy: float) -> dict[str, float]:
    m = {lab: 0.03 for lab in F.MSD_LABELS} | msd
    t = {lab: 0.03 for lab in F.MTT_LABELS} | mtt
    return F.other_features(m, t, tempo=tempo, energy_normalized=energy)


def test_typical_profiles() -> None:
    metal = _profile(
        {"metal": 0.6, "heavy metal": 0.4, "hard rock": 0.3, "rock": 0.7},
        {"metal": 0.5, "loud": 0.5, "rock": 0.6, "fast": 0.3, "guitar": 0.5},
        tempo=160,
        energy=0.9,
    )
    assert metal["aggressive"] > 0.9 and metal["relaxed"] < 0.1 and metal["sad"] < 0.2
    ambient = _profile(
        {"ambient": 0.5, "chillout": 0.3, "electronic": 0.4, "Mellow": 0.2},
        {"ambient": 0.5, "quiet": 0.4, "soft": 0.4, "slow": 0.5, "new age": 0.2},
        tempo=70,
        energy=0.1,
    )
    assert ambient["relaxed"] > 0.9 and ambient["aggressive"] < 0.1 and ambient["party"] < 0.1
    house = _profile(
        {"dance": 0.5, "House": 0.3, "electronic": 0.7, "electro": 0.2},
        {"techno": 0.5, "dance": 0.4, "beat": 0.4, "electronic": 0.6},
        tempo=124,
        energy=0.8,
    )
    assert house["danceable"] > 0.9 and house["party"] > 0.9 and house["relaxed"] < 0.1
    ballad = _profile(
        {"sad": 0.15, "Mellow": 0.3, "beautiful": 0.3, "female vocalists": 0.5},
        {"slow": 0.6, "piano": 0.5, "soft": 0.4, "female": 0.5},
        tempo=70,
        energy=0.25,
    )
    assert ballad["sad"] > 0.8 and ballad["happy"] < 0.1 and ballad["party"] < 0.1
    neutral = _profile({}, {}, tempo=100, energy=0.5)
    assert all(0.1 < v < 0.35 for v in neutral.values())
