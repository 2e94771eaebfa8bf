"""Deterministic playlist names (upstream's ``Rock_Pop_Indie_Medium_Sad_Relaxed`` scheme,
research A.8) and the one function that names a playlist (where the AI naming plugs in).

Names are unique within a run: a name already taken (in this run, or by the avoid list) gets
``_2``, ``_3``, ... (upstream let the second playlist silently replace the first).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sidecar.clustering.data import MOOD0, MOOD_LABELS, OTHER0, OTHER_FEATURE_LABELS, TEMPO

SUFFIX = "_automatic"


def tempo_band(tempo_normalized: float) -> str:
    return "Slow" if tempo_normalized < 0.33 else "Medium" if tempo_normalized < 0.66 else "Fast"


def deterministic_name(vector: NDArray[np.float64]) -> str:
    """Up to 3 moods above 0.01 (best first, title-cased), the tempo band, then up to 2 other
    features of at least 0.5: ``Rock_Pop_Indie_Medium_Sad_Relaxed``."""
    moods = sorted(((float(vector[MOOD0 + i]), i) for i in range(len(MOOD_LABELS))), key=lambda x: (-x[0], x[1]))
    top = [MOOD_LABELS[i].title() for v, i in moods[:3] if v > 0.01]
    total = sum(v for v, _ in moods)
    base = "_".join(top) if top and total > 0 else "Mixed"
    others = sorted(((float(vector[OTHER0 + i]), i) for i in range(len(OTHER_FEATURE_LABELS))
                     if vector[OTHER0 + i] >= 0.5), key=lambda x: (-x[0], x[1]))
    extra = "".join("_" + OTHER_FEATURE_LABELS[i].title() for _, i in others[:2])
    return f"{base}_{tempo_band(float(vector[TEMPO]))}{extra}"


def unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``, ... : the first not in ``taken`` (case-insensitive);
    the result is added to ``taken``."""
    lowered = {t.lower() for t in taken}
    out, n = name, 1
    while out.lower() in lowered:
        n += 1
        out = f"{name}_{n}"
    taken.add(out)
    return out


@dataclass(frozen=True)
class NamingResult:
    name: str
    source: str  # "deterministic" (or the AI provider once AI naming is wired)
    note: str = ""


def name_playlist(settings: Any, vector: NDArray[np.float64], songs: Sequence[tuple[str, str]],
                  avoid: Iterable[str]) -> NamingResult:
    """The name of one playlist (without suffix).  Today the deterministic name; the AI naming
    (``sidecar.ai.naming.name_playlist``) replaces this body when it lands, falling back here."""
    del settings, songs, avoid
    return NamingResult(deterministic_name(vector), "deterministic")
