"""Playlist names: the AI naming of ``sidecar.ai.naming`` (an LLM when one is configured, else
upstream's deterministic ``Rock_Pop_Indie_Medium_Sad_Relaxed`` scheme), made unique within a
run; then the ``_automatic`` suffix and part numbers.

Upstream let a second playlist with the same name silently replace the first; here a name
already taken gets ``_2``, ``_3``, ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sidecar.ai.naming import NamingResult, PlaylistProfile, deterministic_name, name_playlist
from sidecar.clustering.data import ENERGY, MOOD0, MOOD_LABELS, OTHER0, OTHER_FEATURE_LABELS, TEMPO

SUFFIX = "_automatic"

__all__ = [
    "SUFFIX",
    "NamingResult",
    "deterministic_name",
    "final_names",
    "name",
    "playlist_profile",
    "unique",
]


def playlist_profile(
    vector: NDArray[np.float64], tempo_min: float = 40.0, tempo_max: float = 200.0, top_moods: int = 5
) -> PlaylistProfile:
    """A mean score vector in the AI naming's terms: top moods, tempo in BPM, energy, features."""
    moods = sorted(
        ((lbl, float(vector[MOOD0 + i])) for i, lbl in enumerate(MOOD_LABELS) if vector[MOOD0 + i] > 0),
        key=lambda x: -x[1],
    )[:top_moods]
    return PlaylistProfile(
        moods=dict(moods),
        tempo_bpm=tempo_min + float(vector[TEMPO]) * (tempo_max - tempo_min),
        energy=float(vector[ENERGY]),
        other_features={lbl: float(vector[OTHER0 + i]) for i, lbl in enumerate(OTHER_FEATURE_LABELS)},
    )


def unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``, ...: the first not in ``taken`` (case-insensitive);
    the result is added to ``taken``."""
    lowered = {t.casefold() for t in taken}
    out, n = name, 1
    while out.casefold() in lowered:
        n += 1
        out = f"{name}_{n}"
    taken.add(out)
    return out


async def name(
    ai: Any, profile: PlaylistProfile, songs: Sequence[tuple[str, str]], taken: set[str]
) -> NamingResult:
    """One playlist's name, unique against ``taken`` (to which it is added).  ``ai`` is an
    ``AiConfig`` or None (deterministic names)."""
    result = await name_playlist(ai, profile, songs, sorted(taken))
    final = unique(result.name, taken)
    return NamingResult(final, result.source, result.note)


def final_names(base: str, parts: int) -> list[str]:
    """``<base>_automatic``, or ``<base> (1)_automatic``, ``<base> (2)_automatic``, ... for a
    playlist split in parts: every name ends with ``_automatic``."""
    if parts <= 1:
        return [base + SUFFIX]
    return [f"{base} ({i}){SUFFIX}" for i in range(1, parts + 1)]
