"""The metrics of bench/quality.py on a small synthetic library whose answers are known by hand
(no music, no service, no timings)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from quality_metrics import (  # noqa: E402
    AnswerFigures,
    Library,
    back_to_back,
    ceiling_at,
    distance_ratio,
    label_share,
    loo_precision,
    mean_step,
    paired_interval,
    precision_at,
    standardise,
)
from quality_spaces import _key_circle, whiten  # noqa: E402


def angle(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg)), 0.0]


@pytest.fixture
def lib() -> Library:
    """Label "a": four tracks at 0-3 degrees (album A1 by Ann, plus one untagged); "b": three at
    40-42 degrees (album B1, artist Bo); "c": one track at 90 degrees."""
    ids = ["a0", "a1", "a2", "a3", "b0", "b1", "b2", "c0"]
    labels = ["a"] * 4 + ["b"] * 3 + ["c"]
    albums = ["A1", "A1", "A1", None, "B1", "B1", "B1", None]
    artists = ["ann", "ann", "ann", "", "bo", "bo", "bo", ""]
    degrees = [0, 1, 2, 3, 40, 41, 42, 90]
    return Library(ids, labels, albums, artists, np.array([angle(d) for d in degrees]) * 3.0)


def test_nearest_is_exact_cosine_search(lib: Library) -> None:
    assert lib.nearest("a0", 3) == ["a1", "a2", "a3"]
    assert lib.nearest("b2", 4) == ["b1", "b0", "a3", "a2"]
    assert lib.distance("a0", "c0") == pytest.approx(1.0)
    assert lib.scorable("a0") and not lib.scorable("c0")


def test_precision_and_ceiling(lib: Library) -> None:
    assert precision_at(lib, "a0", ["a1", "a2", "a3", "b0", "b1"], 5) == pytest.approx(3 / 5)
    assert precision_at(lib, "a0", ["a1", "b0"], 5) == pytest.approx(1 / 5)  # a short answer misses
    assert precision_at(lib, "b0", ["b1", "b2", "a3"], 10) == pytest.approx(2 / 10)
    assert ceiling_at(lib, "a0", 5) == pytest.approx(3 / 5)
    assert ceiling_at(lib, "b0", 10) == pytest.approx(2 / 10)
    assert ceiling_at(lib, "c0", 5) == 0.0


def test_label_share_leaves_the_seed_out(lib: Library) -> None:
    assert label_share(lib, "a0", ["a0", "a1", "b0", "a2"]) == pytest.approx(2 / 3)
    assert label_share(lib, "a0", ["a0"]) == 0.0


def test_distance_ratio_is_one_for_the_true_nearest(lib: Library) -> None:
    assert distance_ratio(lib, "a0", ["a1", "a2"]) == pytest.approx(1.0)
    d = lib.distances("a0")
    got = (d[lib.index["a1"]] + d[lib.index["b0"]]) / 2
    best = (d[lib.index["a1"]] + d[lib.index["a2"]]) / 2
    assert distance_ratio(lib, "a0", ["a0", "a1", "b0"]) == pytest.approx(got / best)
    assert math.isnan(distance_ratio(lib, "a0", []))


def test_back_to_back_counts_albums_and_known_artists(lib: Library) -> None:
    # a0 a1: same album and artist; a3 c0: both untagged (no album, no artist): no repeat
    assert back_to_back(lib, ["a0", "a1", "b0", "b1", "a3", "c0"]) == (2, 2)
    assert back_to_back(lib, ["a0", "b0", "a1", "b1"]) == (0, 0)


def test_mean_step(lib: Library) -> None:
    assert mean_step(lib, ["a0", "c0"]) == pytest.approx(1.0)
    assert math.isnan(mean_step(lib, ["a0"]))


def test_answer_figures(lib: Library) -> None:
    similar = AnswerFigures()
    similar.add(lib, "a0", ["a1", "a2", "a3", "b0", "b1", "b2", "c0"], is_mix=False)
    similar.add(lib, "c0", ["a3", "a2"], is_mix=False)  # c has no other track: no precision
    row = similar.row()
    assert row["p5"] == pytest.approx(3 / 5) and row["p10"] == pytest.approx(3 / 10)
    assert similar.album_b2b == [4, 0]  # a0 a1 a2 and b0 b1 b2, seed in front
    assert similar.by_label == {"a": [pytest.approx(3 / 5)]}
    mix = AnswerFigures()
    mix.add(lib, "b0", ["b0", "a0", "b1", "a1", "b2"], is_mix=True, relaxed=["album_spacing"])
    assert mix.share == [pytest.approx(2 / 4)] and mix.album_b2b == [0] and mix.relaxed["album_spacing"] == 1
    assert mix.row()["ratio"] > 1.0


def test_leave_one_out_precision() -> None:
    x = np.array([angle(d) for d in (0, 1, 2, 90, 91, 92)])
    overall, per_label = loo_precision(x, ["a", "a", "a", "b", "b", "b"], k=2)
    assert overall == 1.0 and per_label == {"a": 1.0, "b": 1.0}
    overall, per_label = loo_precision(x, ["a", "b", "a", "b", "a", "c"], k=1)
    # at 0, 1, 2, 90, 91, 92 degrees: every track's nearest has another label; c's only track is left out
    assert per_label == {"a": 0.0, "b": 0.0} and overall == 0.0


def test_standardise_and_whiten() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)) * [1, 10, 100, 0.1, 0] + 7
    z = standardise(x)
    assert np.allclose(z.mean(axis=0), 0) and np.allclose(z.std(axis=0)[:4], 1) and np.all(z[:, 4] == 0)
    w = whiten(x[:, :4], ridge=0.0)
    assert np.allclose(np.cov(w, rowvar=False), np.eye(4), atol=1e-6)


def test_key_on_the_circle_of_fifths() -> None:
    rows = [
        {"key": "C", "scale": "major"},
        {"key": "A", "scale": "minor"},
        {"key": "G", "scale": "major"},
        {"key": "Bb", "scale": "major"},
        {"key": None, "scale": None},
    ]
    c, a_minor, g, b_flat, unknown = _key_circle(rows)
    assert np.allclose(c, a_minor)  # relative keys share a place
    assert np.dot(c, g) == pytest.approx(math.cos(math.radians(30)))  # one fifth apart
    assert np.dot(c, b_flat) == pytest.approx(math.cos(math.radians(60)))  # two fifths
    assert np.all(unknown == 0)


def test_paired_interval() -> None:
    lo, hi = paired_interval([0.4, 0.6, None, 0.8], [0.2, 0.4, 0.0, 0.6])
    assert lo == pytest.approx(0.2) and hi == pytest.approx(0.2)  # every difference is 0.2
    lo, hi = paired_interval([1.0, 0.0] * 20, [0.5] * 40)
    assert lo < 0 < hi


@pytest.mark.slow
def test_quality_bench_on_the_small_corpus(tmp_path: Path) -> None:
    """bench/quality.py end to end on the small corpus (real music from Debian packages, analysed
    and served by the real service), figures printed; skipped where the packages cannot be fetched.
    Asserted: only what must hold whatever the music (raw similar_tracks is the exact nearest
    tracks; nothing returned is nearer than the true nearest), never a timing."""
    import json
    import subprocess

    from analysis_corpus import fetch_package
    from quality import CORPORA, DEFAULT_CACHE

    try:
        for package in CORPORA["small"]:
            fetch_package(package, DEFAULT_CACHE / "music")
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the small corpus cannot be fetched here: {exc}")
    out = tmp_path / "figures.json"
    res = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve().parent.parent / "bench" / "quality.py"),
            "--corpus",
            "small",
            "--work",
            str(tmp_path / "work"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(res.stdout)
    assert res.returncode == 0, res.stderr[-3000:]
    figures = json.loads(out.read_text())["answers"]
    assert figures["raw"]["p5"] == pytest.approx(figures["seed_similar"]["p5"])
    assert figures["raw"]["ratio"] == pytest.approx(1.0)
    for key in ("default", "mix10", "mix50"):
        assert figures[key]["ratio"] >= 1.0 - 1e-6
    assert figures["mix10"]["artist_b2b"] <= figures["seed_mix10"]["artist_b2b"]
