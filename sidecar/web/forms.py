"""The fields of the analysis and clustering forms, built from the API's own parameter lists
(``sidecar/clustering/params.py``) and the settings (defaults and help text), so a parameter
added to the API appears on the page without editing a template.  No secret is ever a value."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from sidecar.clustering import params as cparams
from sidecar.config import AiProvider, Settings

#: shown before "Advanced"
BASIC_CLUSTERING = (
    "clustering_method",
    "num_clusters_min",
    "num_clusters_max",
    "clustering_runs",
    "top_n_playlists",
    "max_songs_per_cluster",
    "enable_clustering_embeddings",
    "ai_model_provider",
)
#: advanced fields, grouped by the prefix of their key (first match wins)
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Algorithms", ("dbscan_", "gmm_", "spectral_", "pca_")),
    ("Playlists", ("max_songs_per_artist", "max_distance", "min_playlist_size", "top_n_moods")),
    ("Score weights", ("score_weight_", "top_k_moods", "other_feature_predominance")),
    ("Search", ("top_n_elites", "exploitation_", "mutation_", "iterations_per_batch", "max_concurrent")),
    ("Sampling", ("sampling_", "min_songs_per_genre", "stratified_")),
    ("AI naming", ("ollama_", "gemini_")),
)
SECRET_KEYS = frozenset({"gemini_api_key"})


@dataclass(frozen=True)
class FormField:
    key: str  # the request's JSON key
    label: str
    kind: str  # int, float, bool, choice, text, list, secret
    value: Any  # default shown (never a secret)
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: str = "any"


@dataclass(frozen=True)
class FieldGroup:
    title: str
    fields: tuple[FormField, ...]


def _setting_name(key: str) -> str | None:
    for candidate in (key, f"clustering_{key}", cparams.RENAMED.get(key, "")):
        if candidate in Settings.model_fields:
            return candidate
    return None


def _help(key: str) -> str:
    name = _setting_name(key)
    if name is None:
        return ""
    return f"{Settings.model_fields[name].description or ''} ({name.upper()})"


def _label(key: str) -> str:
    text = key.replace("_", " ")
    return text[0].upper() + text[1:]


def _bounds(key: str) -> tuple[float | None, float | None]:
    field = cparams.ClusteringParams.model_fields.get(cparams.RENAMED.get(key, key))
    lo = hi = None
    for m in field.metadata if field else ():
        lo = getattr(m, "ge", None) if getattr(m, "ge", None) is not None else lo
        hi = getattr(m, "le", None) if getattr(m, "le", None) is not None else hi
    return lo, hi


def clustering_field(key: str, settings: Settings) -> FormField:
    defaults = cparams.defaults(settings)
    if key in cparams.AI_KEYS:
        if key == "ai_model_provider":
            return FormField(
                key,
                "AI naming",
                "choice",
                settings.ai_model_provider.value,
                _help(key),
                tuple(p.value for p in AiProvider),
            )
        if key in SECRET_KEYS:
            return FormField(key, _label(key), "secret", "", _help(key) + " Empty: the setting's.")
        value = getattr(settings, key, None)
        return FormField(key, _label(key), "text", value or "", _help(key))
    name = cparams.RENAMED.get(key, key)
    annotation = cparams.ClusteringParams.model_fields[name].annotation
    value = defaults[name]
    choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()
    if choices:
        return FormField(key, _label(key), "choice", value, _help(key), tuple(str(c) for c in choices))
    if annotation is bool:
        return FormField(key, _label(key), "bool", bool(value), _help(key))
    if name == "stratified_genres":
        return FormField(key, _label(key), "list", ", ".join(value), _help(key) + " Comma-separated.")
    lo, hi = _bounds(key)
    if annotation is int:
        return FormField(key, _label(key), "int", value, _help(key), minimum=lo, maximum=hi, step="1")
    return FormField(key, _label(key), "float", value, _help(key), minimum=lo, maximum=hi)


def clustering_form(settings: Settings) -> tuple[tuple[FormField, ...], tuple[FieldGroup, ...]]:
    """(basic fields, advanced groups) of POST /api/clustering/start: every key it takes."""
    keys = sorted(cparams.REQUEST_KEYS)
    basic = tuple(clustering_field(k, settings) for k in BASIC_CLUSTERING)
    rest = [k for k in keys if k not in BASIC_CLUSTERING]
    groups: list[FieldGroup] = []
    for title, prefixes in GROUPS:
        mine = [k for k in rest if k.startswith(prefixes)]
        rest = [k for k in rest if k not in mine]
        groups.append(FieldGroup(title, tuple(clustering_field(k, settings) for k in mine)))
    if rest:
        groups.append(FieldGroup("Other", tuple(clustering_field(k, settings) for k in rest)))
    return basic, tuple(g for g in groups if g.fields)


def analysis_form(settings: Settings) -> tuple[FormField, ...]:
    """The fields of POST /api/analysis/start."""
    return (
        FormField(
            "num_recent_albums",
            "Albums to analyse",
            "int",
            settings.num_recent_albums,
            "The newest albums first; 0 = the whole library. Analysed tracks are skipped. (NUM_RECENT_ALBUMS)",
            minimum=0,
            step="1",
        ),
        FormField(
            "top_n_moods",
            "Top moods per track",
            "int",
            settings.top_n_moods,
            _help("top_n_moods"),
            minimum=1,
            maximum=50,
            step="1",
        ),
    )


def form_context(settings: Settings) -> dict[str, Any]:
    basic, groups = clustering_form(settings)
    return {
        "analysis_fields": analysis_form(settings),
        "clustering_basic": basic,
        "clustering_groups": groups,
    }
