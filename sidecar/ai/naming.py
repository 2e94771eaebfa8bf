"""Playlist names: asked of an LLM, with a deterministic name whenever the LLM cannot give one.

:func:`name_playlist` never raises and never returns a name already in ``avoid`` (compared
case-insensitively, ``_automatic`` suffixes ignored).  Its result says where the name came from
and, for a fallback, why, so the caller can log it on its task.

The deterministic scheme is upstream AudioMuse-AI's (``Rock_Pop_Indie_Medium_Sad_Relaxed``): up
to three moods, the tempo band, up to two strong other features.  Unlike upstream, the moods are
the playlist's own top moods (upstream only ever saw the first five labels of its list), a label
keeps its case after a digit (``80s``, not ``80S``), a feature already named as a mood is not
repeated, and a name already taken gets a ``_2``, ``_3``... suffix instead of silently replacing
the other playlist.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sidecar.ai.cleaning import MAX_LENGTH, MIN_LENGTH, clean_name
from sidecar.ai.client import AiConfig, AiError, ChatMessage, complete

log = logging.getLogger(__name__)

#: upstream's tempo bands are thirds of the normalised tempo (< 0.33 slow, < 0.66 medium) with
#: TEMPO_MIN_BPM=40 and TEMPO_MAX_BPM=200, i.e. these BPM limits
SLOW_BELOW_BPM = 92.8  # 40 + 0.33 * (200 - 40)
FAST_FROM_BPM = 145.6  # 40 + 0.66 * (200 - 40)
MOODS_IN_NAME = 3
MOOD_MIN_SCORE = 0.01
FEATURES_IN_NAME = 2
FEATURE_MIN_SCORE = 0.5
#: most names of ``avoid`` quoted in the prompt (all of them are checked)
AVOID_IN_PROMPT = 40

__all__ = [
    "NamingResult",
    "PlaylistProfile",
    "clean_name",
    "deterministic_name",
    "name_playlist",
    "naming_messages",
    "tempo_band",
    "unique_name",
]


@dataclass(frozen=True)
class PlaylistProfile:
    """What a playlist sounds like: its centroid in readable terms."""

    #: the playlist's top moods (label -> mean score 0-1), e.g. {"rock": 0.61, "indie": 0.40}
    moods: Mapping[str, float]
    tempo_bpm: float
    #: normalised energy, 0-1
    energy: float
    #: the other features (danceable, aggressive, happy, party, relaxed, sad) -> mean score 0-1
    other_features: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class NamingResult:
    name: str
    source: Literal["ai", "fallback"]
    #: why the deterministic name was used although an LLM is configured (None otherwise)
    note: str | None = None


def tempo_band(bpm: float) -> str:
    """``Slow``, ``Medium`` or ``Fast`` (an unknown tempo counts as ``Medium``)."""
    if not math.isfinite(bpm):
        return "Medium"
    return "Slow" if bpm < SLOW_BELOW_BPM else "Medium" if bpm < FAST_FROM_BPM else "Fast"


def _title(label: str) -> str:
    """Capitalise each word's first letter, leaving the rest as it is: ``alternative rock`` ->
    ``Alternative Rock``, ``hip-hop`` -> ``Hip-Hop``, ``80s`` stays ``80s``, ``UK garage`` ->
    ``UK Garage`` (``str.title`` would give ``80S`` and ``Uk Garage``)."""
    return re.sub(r"(^|[\s\-/&(])([a-z])", lambda m: m.group(1) + m.group(2).upper(), label.strip())


def _ranked(scores: Mapping[str, float], minimum: float, *, strict: bool) -> list[str]:
    kept = [
        (label, s)
        for label, s in scores.items()
        if math.isfinite(s) and (s > minimum if strict else s >= minimum) and label.strip()
    ]
    return [label for label, _ in sorted(kept, key=lambda item: (-item[1], item[0]))]


def deterministic_name(profile: PlaylistProfile) -> str:
    """``<Mood1>_<Mood2>_<Mood3>_<Tempo>[_<Feature1>_<Feature2>]``.

    Moods: the three highest-scoring above 0.01 (ties by label), ``Mixed`` when none is or the
    scores sum to 0 or less.  Features: the two highest scoring at least 0.5, leaving out one
    already named as a mood.
    """
    finite = [s for s in profile.moods.values() if math.isfinite(s)]
    moods = [_title(m) for m in _ranked(profile.moods, MOOD_MIN_SCORE, strict=True)[:MOODS_IN_NAME]]
    if not moods or sum(finite) <= 0:
        moods = ["Mixed"]
    named = {m.casefold() for m in moods}
    features = [
        _title(f)
        for f in _ranked(profile.other_features, FEATURE_MIN_SCORE, strict=False)
        if _title(f).casefold() not in named
    ][:FEATURES_IN_NAME]
    return "_".join([*moods, tempo_band(profile.tempo_bpm), *features])


def _key(name: str) -> str:
    """How names are compared: case-insensitive, without the ``_automatic`` suffix or a part
    number that the caller adds."""
    key = re.sub(r"\s*\(\d+\)$", "", name.strip())
    key = re.sub(r"_automatic$", "", key, flags=re.IGNORECASE)
    return key.strip().casefold()


def unique_name(name: str, avoid: Iterable[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... : the first not in ``avoid``."""
    taken = {_key(n) for n in avoid}
    candidate, n = name, 1
    while _key(candidate) in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _energy_word(energy: float) -> str:
    if not math.isfinite(energy):
        return "unknown"
    return "low" if energy < 0.33 else "moderate" if energy < 0.66 else "high"


def _song_line(title: str, artist: str) -> str:
    title = " ".join(str(title).split())[:100] or "(untitled)"
    artist = " ".join(str(artist).split())[:60] or "(unknown artist)"
    return f"- {title} - {artist}"


def naming_messages(
    profile: PlaylistProfile, songs: Sequence[tuple[str, str]], avoid: Iterable[str], max_songs: int
) -> list[ChatMessage]:
    """The naming conversation: the rules, then the profile and up to ``max_songs`` songs
    (``(title, artist)``, most representative first)."""
    taken = sorted({n.strip() for n in avoid if n.strip()}, key=str.casefold)[:AVOID_IN_PROMPT]
    rules = (
        "You give music playlists their names. Answer with the name and nothing else: one line, "
        f"{MIN_LENGTH} to {MAX_LENGTH} characters, using only plain ASCII letters, digits, spaces and "
        "the punctuation - & ' ! . , ? ( ). The name should be evocative: the mood of the music and "
        "the moment or place to listen to it, not a list of genres, tempo and the word tracks. "
        "No numbering, no quotes, no emoji or styled letters, no introduction such as "
        "'Playlist name:', no explanation."
    )
    if taken:
        rules += " These names are already taken, do not use them or near copies: " + "; ".join(taken) + "."
    moods = (
        ", ".join(
            f"{m} ({s:.2f})"
            for m, s in sorted(profile.moods.items(), key=lambda i: -i[1])
            if math.isfinite(s)
        )
        or "none stand out"
    )
    features = ", ".join(
        f"{f} ({s:.2f})"
        for f, s in sorted(profile.other_features.items(), key=lambda i: -i[1])
        if math.isfinite(s)
    )
    tempo = (
        f"{tempo_band(profile.tempo_bpm).lower()} ({profile.tempo_bpm:.0f} BPM)"
        if math.isfinite(profile.tempo_bpm)
        else "unknown"
    )
    listed = [_song_line(t, a) for t, a in songs[: max(0, max_songs)]]
    profile_text = "\n".join(
        [
            f"Top moods: {moods}",
            f"Tempo: {tempo}",
            f"Energy: {_energy_word(profile.energy)} ({profile.energy:.2f} on a 0-1 scale)",
            *([f"Other traits: {features}"] if features else []),
            f"Songs ({len(listed)} of {len(songs)}, as title - artist):",
            *listed,
        ]
    )
    return [
        {"role": "system", "content": rules},
        {"role": "user", "content": "Name this playlist.\n" + profile_text},
    ]


async def name_playlist(
    config: AiConfig | None, profile: PlaylistProfile, songs: Sequence[tuple[str, str]], avoid: Iterable[str]
) -> NamingResult:
    """A name for the playlist ``profile`` / ``songs`` (``(title, artist)`` pairs, most
    representative first) that is not in ``avoid``.

    Asks the LLM of ``config`` (``None``: no LLM) and falls back to :func:`deterministic_name`,
    made unique against ``avoid``, on any failure, timeout, unusable answer or taken name.
    Never raises (cancellation excepted).
    """
    avoid = list(avoid)
    fallback = unique_name(deterministic_name(profile), avoid)
    if config is None:
        return NamingResult(fallback, "fallback", None)
    try:
        answer = await complete(config, naming_messages(profile, songs, avoid, config.max_songs_in_prompt))
    except AiError as exc:
        return NamingResult(fallback, "fallback", f"AI naming failed: {exc.reason}")
    except Exception as exc:  # naming must never fail the clustering
        log.exception("AI naming failed unexpectedly")
        return NamingResult(fallback, "fallback", f"AI naming failed: {type(exc).__name__}")
    name = clean_name(answer)
    if name is None:
        shown = " ".join(answer.split())[:80]
        return NamingResult(fallback, "fallback", f"AI answer unusable as a name: {shown!r}")
    if _key(name) in {_key(n) for n in avoid}:
        return NamingResult(fallback, "fallback", f"AI name {name!r} is already taken")
    return NamingResult(name, "ai", None)
