"""Candidate similarity spaces ("Beat the seed", issue #12), measured offline on the labelled corpus
of bench/quality.py (``--spaces``): leave-one-out precision@5 (and @10) of cosine kNN in each
space, overall and per label, against the seed's space (the mean MusiCNN MSD ``dense`` embedding).

What the service stores is read from its database (the 200-d embedding, both taggers' 50 scores,
tempo, key, energy).  What it computes but does not store (the MTT model's embedding, the spread
of the patch embeddings over the track) is computed again here from the audio with the service's
own pipeline (same decoder, same 12 patches, same ONNX models) and cached beside the music folder.
Statistics used to standardise (mean, standard deviation per dimension) are the library's own, as
a service would keep them.  Nothing here changes the service.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from quality_metrics import Library, fmt, loo_precision, loo_queries, paired_interval, standardise

KEYS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}


def audio_features(paths: list[str], cache: Path) -> dict[str, np.ndarray]:
    """Per track (rows in the order of ``paths``): msd_mean / msd_std / mtt_mean / mtt_std over the
    analysed patches; computed once, then read from ``cache`` (an .npz)."""
    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        if list(data["paths"]) == paths:
            return {k: data[k] for k in data.files if k != "paths"}
    from sidecar.ml import audio as _audio
    from sidecar.ml import pipeline

    params = pipeline.AnalysisParams()
    msd, mtt = pipeline.models(params)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("msd_mean", "msd_std", "mtt_mean", "mtt_std")}
    for i, path in enumerate(paths):
        print(
            f"\r  MTT embedding and patch spread: {i + 1}/{len(paths)}", end="", file=sys.stderr, flush=True
        )
        decoded = _audio.load_for_analysis(Path(path))
        chosen = pipeline.select_patches(pipeline._patches(decoded), params.max_patches)
        _, msd_emb = msd.predict_patches(chosen)
        _, mtt_emb = mtt.predict_patches(chosen)
        out["msd_mean"].append(msd_emb.mean(axis=0))
        out["msd_std"].append(msd_emb.std(axis=0))
        out["mtt_mean"].append(mtt_emb.mean(axis=0))
        out["mtt_std"].append(mtt_emb.std(axis=0))
    print(file=sys.stderr)
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
    np.savez(cache, paths=np.asarray(paths), **arrays)
    return arrays


def _tags(rows: list[dict[str, Any]], column: str) -> np.ndarray:
    parsed = [json.loads(r[column] or "{}") for r in rows]
    labels = sorted(parsed[0])
    return np.array([[p.get(label, 0.0) for label in labels] for p in parsed], dtype=np.float64)


def _key_circle(rows: list[dict[str, Any]]) -> np.ndarray:
    """Key on the circle of fifths (a minor key at its relative major), as (cos, sin); 0 when unknown."""
    out = np.zeros((len(rows), 2))
    for i, r in enumerate(rows):
        key = _FLAT.get(r["key"] or "", r["key"] or "")
        if key not in KEYS:
            continue
        pitch = KEYS.index(key) + (3 if r["scale"] == "minor" else 0)
        angle = 2 * np.pi * ((pitch * 7) % 12) / 12
        out[i] = (np.cos(angle), np.sin(angle))
    return out


def _block(x: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """Standardised, scaled so the block's total variance is ``weight`` (blocks of any width weigh alike)."""
    z = standardise(x)
    return z * (weight / np.sqrt(max(x.shape[1], 1)))


def whiten(x: np.ndarray, ridge: float = 0.1) -> np.ndarray:
    """PCA whitening over the library, each component divided by sqrt(variance + ridge * mean variance)."""
    c = np.asarray(x, dtype=np.float64) - x.mean(axis=0)
    _, s, vt = np.linalg.svd(c, full_matrices=False)
    var = s**2 / max(len(x) - 1, 1)
    result: np.ndarray = (c @ vt.T) / np.sqrt(var + ridge * var.mean())
    return result


def spaces(
    rows: list[dict[str, Any]], feats: dict[str, np.ndarray], stored: np.ndarray
) -> dict[str, np.ndarray]:
    mtt = feats["mtt_mean"].astype(np.float64)
    msd_sd, mtt_sd = feats["msd_std"].astype(np.float64), feats["mtt_std"].astype(np.float64)
    t_msd, t_mtt = _tags(rows, "tags"), _tags(rows, "mtt_tags")
    tempo = np.log2(np.array([[r["tempo"] or 120.0] for r in rows], dtype=np.float64))
    energy = np.array([[r["energy_normalized"] or 0.0] for r in rows], dtype=np.float64)
    key = _key_circle(rows)

    def light(weight: float) -> np.ndarray:
        return np.hstack([_block(tempo, weight), _block(energy, weight), key * weight / np.sqrt(2)])

    emb = stored.astype(np.float64)
    found: dict[str, Callable[[], np.ndarray]] = {
        "seed: MSD embedding (stored, 200-d), cosine": lambda: emb,
        "MSD embedding, centred on the library mean": lambda: emb - emb.mean(axis=0),
        "MSD embedding, standardised per dimension": lambda: standardise(emb),
        "MSD embedding, PCA-whitened (ridge 0.1)": lambda: whiten(emb),
        "MTT embedding (200-d), cosine": lambda: mtt,
        "MTT embedding, standardised": lambda: standardise(mtt),
        "MSD + MTT embeddings, centred": lambda: np.hstack(
            [_unit(emb) - _unit(emb).mean(axis=0), _unit(mtt) - _unit(mtt).mean(axis=0)]
        ),
        "MSD + MTT embeddings, standardised": lambda: np.hstack([_block(emb), _block(mtt)]),
        "MSD tag scores (50), standardised": lambda: standardise(t_msd),
        "MTT tag scores (50), standardised": lambda: standardise(t_mtt),
        "both taggers' scores (100), standardised": lambda: np.hstack([_block(t_msd), _block(t_mtt)]),
        "MSD embedding + both taggers' scores, standardised": lambda: np.hstack(
            [_block(emb), _block(t_msd, 0.5), _block(t_mtt, 0.5)]
        ),
        "MSD embedding mean + patch spread, standardised": lambda: np.hstack([_block(emb), _block(msd_sd)]),
        "MSD + MTT, mean + spread, standardised": lambda: np.hstack(
            [_block(emb), _block(mtt), _block(msd_sd, 0.5), _block(mtt_sd, 0.5)]
        ),
        "MSD embedding std. + tempo/key/energy x0.2": lambda: np.hstack([_block(emb), light(0.2)]),
        "MSD embedding std. + tempo/key/energy x0.5": lambda: np.hstack([_block(emb), light(0.5)]),
        "MSD + MTT std. + tempo/key/energy x0.2": lambda: np.hstack([_block(emb), _block(mtt), light(0.2)]),
    }
    return {name: make() for name, make in found.items()}


def report_spaces(lib: Library, rows: list[dict[str, Any]], music: Path) -> dict[str, Any]:
    feats = audio_features([str(r["file_path"]) for r in rows], music.parent / "spaces.npz")
    drift = float(np.min(np.sum(_unit(feats["msd_mean"]) * _unit(lib.vectors), axis=1)))
    results: dict[str, Any] = {}
    labels = lib.labels
    for name, x in spaces(rows, feats, lib.vectors).items():
        p5, per_label = loo_precision(x, labels, 5)
        p10, _ = loo_precision(x, labels, 10)
        results[name] = {"p5": p5, "p10": p10, "by_label": per_label, "queries": loo_queries(x, labels, 5)}
    seed = results["seed: MSD embedding (stored, 200-d), cosine"]
    names = sorted(seed["by_label"])
    print(
        f"\nsimilarity spaces: leave-one-out precision@5 / @10 of cosine kNN, {len(labels)} tracks "
        f"(recomputed MSD embedding vs stored: min cosine {drift:.5f}); 95% interval of the P@5 "
        "difference by bootstrap over the queries"
    )
    print("| space | P@5 | vs seed (95% interval) | P@10 | worst label vs seed | " + " | ".join(names) + " |")
    print("|---|---|---|---|---|" + "---|" * len(names))
    for name, r in results.items():
        worst = min(r["by_label"][label] - seed["by_label"][label] for label in names)
        lo, hi = paired_interval(r["queries"], seed["queries"])
        print(
            f"| {name} | {fmt(r['p5'])} | {r['p5'] - seed['p5']:+.2f} ({lo:+.2f} to {hi:+.2f}) "
            f"| {fmt(r['p10'])} | {worst:+.2f} | "
            + " | ".join(fmt(r["by_label"][label]) for label in names)
            + " |"
        )
    return results


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    result: np.ndarray = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return result
