"""Moods and the other features, from the two MusiCNN taggers' scores (plus tempo and energy).

Moods (:func:`top_moods`)
    The ``TOP_N_MOODS`` MSD tags with the highest mean scores, best first.

Other features (:func:`other_features`)
    Essentia's dedicated classifier heads are not available, so ``danceable, aggressive, happy, party,
    relaxed, sad`` are a documented, deterministic mapping of the two taggers' 50 tag scores plus
    tempo and normalised energy: per feature, a weighted sum (:data:`FEATURE_WEIGHTS`, a readable
    table) of squashed tag strengths and signal terms, through a logistic. See
    :func:`other_features`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

__all__ = [
    "FEATURE_BIAS",
    "FEATURE_GAIN",
    "FEATURE_WEIGHTS",
    "MSD_LABELS",
    "MTT_LABELS",
    "OTHER_FEATURES",
    "TAG_FLOOR",
    "other_features",
    "tag_strength",
    "top_moods",
]

# MusiCNN tag lists (index = model output column); both are sorted by tag frequency in the training
# data, most frequent first.
MSD_LABELS: Final = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
    "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
    "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip
MTT_LABELS: Final = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal",
    "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance",
    "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal",
    "female voice", "choral",
)  # fmt: skip

OTHER_FEATURES: Final = ("danceable", "aggressive", "happy", "party", "relaxed", "sad")


def top_moods(msd_scores: Mapping[str, float], n: int) -> list[str]:
    """The ``n`` labels with the highest scores, best first; ties keep the mapping's order."""
    if n <= 0:
        return []
    items = list(msd_scores.items())
    order = sorted(range(len(items)), key=lambda i: (-float(items[i][1]), i))
    return [items[i][0] for i in order[:n]]


# =========================================================================== other features

# Typical strength of a tag: the taggers' sigmoid outputs follow the tags' base rates, and both label
# lists are sorted by frequency, so a rare tag (e.g. MSD "happy", rank 49) rarely scores above 0.1
# while "rock" (rank 0) often scores 0.6. Each score is divided by its tag's reference value
# ref(rank) = 0.5 * (1 + rank) ** -0.35  (0.50 for rank 0, 0.13 for rank 49) and squashed with tanh,
# so "strongly present" means ~1 for every tag: s = tanh(score / ref(rank)).
_REF_TOP: Final = 0.5
TAG_FLOOR: Final = 0.03  # typical score of an absent tag: its term is 0 there
_REF_DECAY: Final = 0.35

# Feature weights on the squashed tag strengths. Keys: "msd:<label>" / "mtt:<label>"; special terms:
# "tempo:dance" (1 inside 110-135 BPM, falling linearly to 0 at 90 and 155), "tempo:fast"
# ((tempo - 100) / 60 clipped to [-1, 1]), "energy" (normalised energy - 0.5, in [-0.5, 0.5]).
# value = logistic(FEATURE_BIAS[f] + sum(weight * term)).
FEATURE_WEIGHTS: Final[dict[str, dict[str, float]]] = {
    "danceable": {
        "msd:dance": 2.5, "msd:House": 2.5, "msd:electro": 1.5, "msd:electronic": 1.0,
        "msd:electronica": 0.5, "msd:Hip-Hop": 1.5, "msd:funk": 1.5, "msd:rnb": 1.0,
        "msd:party": 1.5, "msd:catchy": 0.5, "msd:pop": 0.5, "msd:sexy": 0.5,
        "msd:ambient": -1.5, "msd:folk": -1.0, "msd:acoustic": -1.0, "msd:Mellow": -1.0,
        "msd:easy listening": -0.5, "msd:sad": -0.5,
        "mtt:dance": 2.5, "mtt:techno": 2.5, "mtt:beat": 1.5, "mtt:beats": 1.5,
        "mtt:electronic": 0.5, "mtt:drums": 0.5,
        "mtt:slow": -1.5, "mtt:classical": -2.0, "mtt:ambient": -1.0, "mtt:quiet": -1.0,
        "mtt:soft": -1.0, "mtt:new age": -1.0, "mtt:choir": -1.0, "mtt:opera": -1.0,
        "mtt:harpsichord": -0.5,
        "tempo:dance": 1.5, "energy": 1.5,
    },
    "aggressive": {
        "msd:metal": 3.0, "msd:heavy metal": 3.0, "msd:hard rock": 2.5, "msd:punk": 2.5,
        "msd:rock": 0.5, "msd:alternative rock": 0.5, "msd:Progressive rock": 0.5,
        "msd:Mellow": -1.5, "msd:chill": -1.0, "msd:chillout": -1.0, "msd:easy listening": -1.5,
        "msd:ambient": -1.5, "msd:beautiful": -1.0, "msd:acoustic": -1.0, "msd:jazz": -1.0,
        "msd:folk": -1.0, "msd:soul": -0.5,
        "mtt:metal": 3.0, "mtt:loud": 2.5, "mtt:fast": 1.5, "mtt:rock": 1.0, "mtt:drums": 0.5,
        "mtt:quiet": -2.0, "mtt:soft": -2.0, "mtt:slow": -1.0, "mtt:classical": -1.5,
        "mtt:ambient": -1.5, "mtt:new age": -1.5, "mtt:harp": -1.0, "mtt:flute": -1.0,
        "tempo:fast": 0.5, "energy": 2.5,
    },
    "happy": {
        "msd:happy": 3.0, "msd:catchy": 1.5, "msd:party": 1.5, "msd:pop": 1.0, "msd:dance": 1.0,
        "msd:funk": 1.0, "msd:indie pop": 1.0, "msd:soul": 0.5, "msd:oldies": 0.5,
        "msd:country": 0.5,
        "msd:sad": -3.0, "msd:Mellow": -1.0, "msd:ambient": -1.0, "msd:metal": -1.0,
        "msd:heavy metal": -1.0, "msd:experimental": -0.5,
        "mtt:fast": 1.0, "mtt:pop": 1.0, "mtt:dance": 1.0, "mtt:beat": 0.5,
        "mtt:slow": -1.5, "mtt:quiet": -1.0, "mtt:weird": -1.0, "mtt:metal": -1.0,
        "mtt:opera": -0.5, "mtt:choral": -0.5,
        "tempo:fast": 0.5, "energy": 0.5,
    },
    "party": {
        "msd:party": 3.0, "msd:dance": 2.5, "msd:House": 2.0, "msd:Hip-Hop": 1.5,
        "msd:electro": 1.5, "msd:catchy": 1.0, "msd:sexy": 1.0, "msd:funk": 1.0, "msd:rnb": 1.0,
        "msd:pop": 1.0,
        "msd:sad": -2.0, "msd:Mellow": -2.0, "msd:chill": -1.0, "msd:chillout": -1.0,
        "msd:ambient": -2.0, "msd:acoustic": -1.0, "msd:folk": -1.0, "msd:beautiful": -1.0,
        "msd:easy listening": -1.0,
        "mtt:dance": 2.5, "mtt:techno": 2.0, "mtt:beat": 1.5, "mtt:beats": 1.5, "mtt:loud": 1.0,
        "mtt:fast": 1.0,
        "mtt:slow": -2.0, "mtt:quiet": -2.0, "mtt:soft": -1.5, "mtt:classical": -2.0,
        "mtt:new age": -1.0, "mtt:choir": -1.0, "mtt:opera": -1.0,
        "tempo:dance": 1.0, "energy": 2.0,
    },
    "relaxed": {
        "msd:chillout": 3.0, "msd:chill": 3.0, "msd:Mellow": 3.0, "msd:ambient": 2.5,
        "msd:easy listening": 2.0, "msd:acoustic": 1.5, "msd:beautiful": 1.0, "msd:jazz": 1.0,
        "msd:folk": 1.0, "msd:instrumental": 0.5, "msd:soul": 0.5,
        "msd:metal": -2.5, "msd:heavy metal": -2.5, "msd:hard rock": -2.0, "msd:punk": -2.0,
        "msd:party": -1.0, "msd:dance": -1.0, "msd:House": -0.5, "msd:Hip-Hop": -0.5,
        "msd:electro": -0.5,
        "mtt:soft": 2.5, "mtt:quiet": 2.5, "mtt:slow": 2.0, "mtt:ambient": 2.0,
        "mtt:new age": 2.0, "mtt:classical": 1.0, "mtt:piano": 1.0, "mtt:harp": 1.0,
        "mtt:flute": 1.0, "mtt:strings": 0.5, "mtt:cello": 0.5,
        "mtt:loud": -2.5, "mtt:metal": -2.5, "mtt:fast": -2.0, "mtt:drums": -1.0,
        "mtt:techno": -1.0,
        "tempo:fast": -1.0, "energy": -2.5,
    },
    "sad": {
        "msd:sad": 3.5, "msd:Mellow": 1.5, "msd:beautiful": 1.0, "msd:acoustic": 0.5,
        "msd:folk": 0.5,
        "msd:happy": -2.5, "msd:party": -2.0, "msd:dance": -1.5, "msd:catchy": -1.0,
        "msd:funk": -1.0, "msd:House": -1.0, "msd:pop": -0.5,
        "mtt:slow": 1.5, "mtt:quiet": 0.5, "mtt:soft": 0.5, "mtt:piano": 1.0, "mtt:cello": 1.0,
        "mtt:violin": 0.5,
        "mtt:fast": -1.5, "mtt:dance": -1.5, "mtt:techno": -1.0, "mtt:loud": -1.0,
        "mtt:beat": -0.5, "mtt:new age": -0.5,
        "msd:ambient": -0.5, "msd:chillout": -0.5,
        "tempo:fast": -0.5, "energy": -0.5,
    },
}  # fmt: skip

# Bias per feature: sets the value of a neutral track (all tags weak, 100 BPM, mid energy) low, so
# a feature only rises with evidence for it.
FEATURE_GAIN: Final = 0.5
FEATURE_BIAS: Final[dict[str, float]] = {
    "danceable": -1.5,
    "aggressive": -1.5,
    "happy": -1.5,
    "party": -2.0,
    "relaxed": -1.5,
    "sad": -1.5,
}


def _tag_refs(labels: Sequence[str]) -> dict[str, float]:
    return {lab: _REF_TOP * (1.0 + rank) ** -_REF_DECAY for rank, lab in enumerate(labels)}


_MSD_REF: Final = _tag_refs(MSD_LABELS)
_MTT_REF: Final = _tag_refs(MTT_LABELS)


def tag_strength(score: float, ref: float) -> float:
    """``tanh(score / ref) - tanh(TAG_FLOOR / ref)``: 0 at the floor, strictly increasing, < 1."""
    s = float(score)
    s = min(1.0, max(0.0, s)) if math.isfinite(s) else 0.0
    return math.tanh(s / ref) - math.tanh(TAG_FLOOR / ref)


def _tempo_dance(tempo: float) -> float:
    if tempo <= 0 or not math.isfinite(tempo):
        return 0.0
    if 110.0 <= tempo <= 135.0:
        return 1.0
    if tempo < 110.0:
        return max(0.0, (tempo - 90.0) / 20.0)
    return max(0.0, (155.0 - tempo) / 20.0)


def _tempo_fast(tempo: float) -> float:
    if tempo <= 0 or not math.isfinite(tempo):
        return 0.0
    return min(1.0, max(-1.0, (tempo - 100.0) / 60.0))


def other_features(
    msd_scores: Mapping[str, float],
    mtt_scores: Mapping[str, float] | None = None,
    *,
    tempo: float = 0.0,
    energy_normalized: float = 0.5,
) -> dict[str, float]:
    """The six features ``danceable, aggressive, happy, party, relaxed, sad``, each in [0, 1].

    For each feature ``f``:
    ``f = logistic(FEATURE_BIAS[f] + sum_t FEATURE_WEIGHTS[f][t] * term_t)``, where a tag term is
    ``tanh(score / ref(rank))`` (:func:`tag_strength`; missing tags count as 0, ``mtt_scores=None``
    drops the MTT terms), ``tempo:dance`` is 1 in 110-135 BPM falling to 0 at 90 and 155 BPM,
    ``tempo:fast`` is ``(tempo - 100) / 60`` clipped to [-1, 1] (both 0 for an unknown tempo <= 0),
    and ``energy`` is ``energy_normalized - 0.5``. Every output is strictly increasing in the tags
    with a positive weight and strictly decreasing in those with a negative one (up to float
    saturation), deterministic, and bounded in (0, 1).
    """
    e = float(energy_normalized)
    e = 0.0 if not math.isfinite(e) else min(1.0, max(0.0, e))
    terms: dict[str, float] = {
        "tempo:dance": _tempo_dance(tempo),
        "tempo:fast": _tempo_fast(tempo),
        "energy": e - 0.5,
    }
    for lab, ref in _MSD_REF.items():
        terms["msd:" + lab] = tag_strength(msd_scores.get(lab, 0.0), ref)
    if mtt_scores is not None:
        for lab, ref in _MTT_REF.items():
            terms["mtt:" + lab] = tag_strength(mtt_scores.get(lab, 0.0), ref)
    out: dict[str, float] = {}
    for feature in OTHER_FEATURES:
        z = FEATURE_BIAS[feature]
        for term, weight in FEATURE_WEIGHTS[feature].items():
            z += FEATURE_GAIN * weight * terms.get(term, 0.0)
        out[feature] = 1.0 / (1.0 + math.exp(-z))
    return out
