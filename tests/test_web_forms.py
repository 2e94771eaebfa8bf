"""The analysis and clustering forms of the web admin offer every parameter the API takes, start
from the settings, never hold a secret, and their defaults, sent as the page sends them, are
accepted by the API's own validation."""

from __future__ import annotations

from typing import Any

from sidecar.clustering import params as cparams
from sidecar.config import load_settings
from sidecar.web.forms import FormField, analysis_form, clustering_form


def _fields(settings: Any) -> list[FormField]:
    basic, groups = clustering_form(settings)
    return [*basic, *(f for g in groups for f in g.fields)]


def _as_sent(f: FormField) -> Any:
    """The value app.js sends for a field left as it is."""
    if f.kind == "list":
        return [t.strip() for t in str(f.value).split(",") if t.strip()]
    if f.kind == "secret":
        return None
    return f.value


def test_the_clustering_form_has_every_request_key_once() -> None:
    keys = [f.key for f in _fields(load_settings({}))]
    assert sorted(keys) == sorted(cparams.REQUEST_KEYS)
    assert len(keys) == len(set(keys))
    assert {f.key for f in analysis_form(load_settings({}))} == {"num_recent_albums", "top_n_moods"}


def test_the_forms_start_from_the_settings_and_never_show_a_secret() -> None:
    settings = load_settings(
        {
            "CLUSTERING_RUNS": "77",
            "CLUSTER_ALGORITHM": "gmm",
            "GEMINI_API_KEY": "g-secret",
            "NUM_RECENT_ALBUMS": "4",
        }
    )
    fields = {f.key: f for f in _fields(settings)}
    assert fields["clustering_runs"].value == 77 and fields["clustering_method"].value == "gmm"
    assert fields["gemini_api_key"].kind == "secret" and fields["gemini_api_key"].value == ""
    assert "g-secret" not in repr(_fields(settings)) + repr(analysis_form(settings))
    assert analysis_form(settings)[0].value == 4
    assert all(f.help for f in fields.values() if f.key != "gemini_api_key"), "every field explains itself"


def test_the_defaults_as_sent_pass_the_api_validation() -> None:
    settings = load_settings({})
    body = {f.key: _as_sent(f) for f in _fields(settings)}
    params, ai = cparams.from_request(settings, body)
    assert params == cparams.from_request(settings, {})[0]
    assert ai == {k: v for k, v in body.items() if k in cparams.AI_KEYS and v is not None}
