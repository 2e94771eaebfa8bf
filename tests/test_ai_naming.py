"""Playlist naming (sidecar/ai/naming.py, cleaning.py): deterministic names computed by hand, answer
cleaning on hostile answers, and name_playlist against a scripted OpenAI-compatible server."""

from __future__ import annotations

import math
import re
import time
from typing import Any

import pytest
from fakes.openai_server import Answer, FakeOpenAI, Malformed, Status
from hypothesis import given, settings
from hypothesis import strategies as st

import sidecar.ai.naming as naming
from sidecar.ai import (
    AiConfig,
    NamingResult,
    PlaylistProfile,
    ai_config,
    clean_name,
    deterministic_name,
    name_playlist,
)
from sidecar.ai.naming import naming_messages, tempo_band, unique_name
from sidecar.config import load_settings

PROFILE = PlaylistProfile(
    moods={"rock": 0.62, "pop": 0.51, "indie": 0.40, "alternative": 0.33},
    tempo_bpm=120.0,
    energy=0.45,
    other_features={"sad": 0.71, "relaxed": 0.66, "danceable": 0.55, "party": 0.10},
)
FALLBACK = "Rock_Pop_Indie_Medium_Sad_Relaxed"
SONGS = [(f"Song {i}", f"Artist {i}") for i in range(1, 41)]


# --- deterministic names -------------------------------------------------------------------


@pytest.mark.parametrize(
    "profile, expected",
    [
        (PROFILE, FALLBACK),  # the upstream example: 3 moods, tempo band, 2 features >= 0.5
        (PlaylistProfile({"jazz": 0.3}, 60.0, 0.1, {"relaxed": 0.9}), "Jazz_Slow_Relaxed"),
        (PlaylistProfile({}, 80.0, 0.2), "Mixed_Slow"),
        (PlaylistProfile({"rock": 0.01, "pop": 0.005}, 150.0, 0.9), "Mixed_Fast"),  # 0.01 is not above 0.01
        (PlaylistProfile({"rock": 0.5, "pop": -0.9}, 150.0, 0.9), "Mixed_Fast"),  # scores sum to <= 0
        (
            PlaylistProfile({"alternative rock": 0.5, "80s": 0.4, "Hip-Hop": 0.3, "soul": 0.2}, 160.0, 0.8),
            "Alternative Rock_80s_Hip-Hop_Fast",
        ),  # str.title() would say 80S
        (
            PlaylistProfile(
                {"happy": 0.5, "pop": 0.4}, 100.0, 0.6, {"happy": 0.8, "danceable": 0.6, "party": 0.55}
            ),
            "Happy_Pop_Medium_Danceable_Party",
        ),  # a feature already named as a mood is not repeated
        (
            PlaylistProfile({"b": 0.5, "a": 0.5, "c": 0.5, "d": 0.5}, 100.0, 0.5),
            "A_B_C_Medium",
        ),  # ties by label
        (PlaylistProfile({"rock": 0.5}, 100.0, 0.5, {"sad": 0.5, "relaxed": 0.49}), "Rock_Medium_Sad"),
        (
            PlaylistProfile({"rock": math.nan, "folk": 0.2}, math.nan, math.nan, {"sad": math.nan}),
            "Folk_Medium",
        ),
        (PlaylistProfile({"female vocalists": 0.4, "rnb": 0.3}, 145.6, 0.5), "Female Vocalists_Rnb_Fast"),
    ],
)
def test_deterministic_name(profile: PlaylistProfile, expected: str) -> None:
    assert deterministic_name(profile) == expected


@pytest.mark.parametrize(
    "bpm, band",
    [
        (40.0, "Slow"),
        (92.7, "Slow"),
        (92.8, "Medium"),
        (145.5, "Medium"),
        (145.6, "Fast"),
        (210.0, "Fast"),
        (math.inf, "Medium"),
    ],
)
def test_tempo_bands(bpm: float, band: str) -> None:
    assert tempo_band(bpm) == band


def test_unique_name_ignores_case_and_the_automatic_suffix() -> None:
    assert unique_name("Rock_Medium", []) == "Rock_Medium"
    assert unique_name("Rock_Medium", ["rock_medium"]) == "Rock_Medium_2"
    assert unique_name("Rock_Medium", ["Rock_Medium_automatic", "ROCK_MEDIUM_2"]) == "Rock_Medium_3"
    assert unique_name("Rock_Medium", ["Rock_Medium_automatic (2)"]) == "Rock_Medium_2"


# --- cleaning --------------------------------------------------------------------------------

NAME = "Velvet Midnight Hours"


@pytest.mark.parametrize(
    "raw, expected",
    [
        (NAME, NAME),
        (f"<think>They want something calm.\nMaybe neon?</think>\n\n{NAME}", NAME),
        (f"<THINKING>plan</THINKING>{NAME}", NAME),
        (f"the user wants a calm name</think>{NAME}", NAME),  # the opening tag never printed
        (f"[INST] name it [/INST] {NAME}", NAME),
        (f"[THOUGHT]hmm[/THOUGHT]{NAME}", NAME),
        (
            f"<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>final<|message|>{NAME}",
            NAME,
        ),
        ("<think>I keep thinking and never finish the thought about Velvet Midnight", None),
        (f"Sure! Here's a name for your playlist:\n\n**{NAME}**\n\nIt captures the late-night mood.", NAME),
        (f'Playlist Name: "{NAME}"', NAME),
        (f"Title: {NAME}", NAME),
        (f"1. {NAME}", NAME),
        (f"Here are some options:\n1. {NAME}\n2. Neon Rain Boulevard", NAME),
        (f"Sure! How about **{NAME}**? It fits the mood.", NAME),
        (f'I would call it "{NAME}".', NAME),
        (f"\u201c{NAME}\u201d", NAME),
        (f"'{NAME}'", NAME),
        (f"# {NAME}", NAME),
        (f"```\n{NAME}\n```", NAME),
        (f'{{"name": "{NAME}"}}', NAME),
        (f"Sure!\n{NAME}", NAME),
        (f"Sure, {NAME}.", NAME),
        (f"{NAME} (2)", NAME),  # numbering is ours to add
        (f"{NAME} - a playlist for slow drives home after the last show", NAME),
        (f"{NAME} \u2013 for late drives with the windows down and no hurry", NAME),
        ("\U0001d415\U0001d41e\U0001d425\U0001d42f\U0001d41e\U0001d42d Midnight Hours", NAME),  # math bold
        ("\uff36\uff45\uff4c\uff56\uff45\uff54 Midnight Hours", NAME),  # full-width
        ("Caf\u00e9 Nights in Montr\u00e9al \U0001f319\u2728", "Cafe Nights in Montreal"),
        ("Velvet_Midnight_Hours", NAME),
        ("Rockin' Through The Night!", "Rockin' Through The Night!"),
        (f"How about {NAME}?", NAME),
        (f"The name is {NAME}", NAME),
        (f"I would name it {NAME}.", NAME),
        (f"**Playlist Name:** {NAME}", NAME),
        (f"<think>\n\n</think>\n\n{NAME}", NAME),  # an empty reasoning block (qwen3)
        (f"{NAME}\n\nExplanation: calm, nocturnal, a little sad.", NAME),
        ("Call It a Night: Slow Songs", "Call It a Night Slow Songs"),  # a name, not a preamble
        ("What About Us: Songs of Doubt", "What About Us Songs of Doubt"),
        ("Playlist: Neon", None),
        ("Neon", None),  # too short
        ("A Very Long Name That Goes On And On Past The Limit Of Forty", None),
        ("asdkj 12391 @@@ !!! 0x00ff ###", None),  # garbage
        ("1234567890 1234567890", None),  # no words
        ("\U0001f3b5\U0001f3b6\U0001f3b8\U0001f941", None),  # emoji only
        ("I'm sorry, but I can't help with naming this playlist.", None),
        ("Error: model not loaded, try again later", None),
        ("As an AI language model I cannot", None),
        ("", None),
        ("   \n\t ", None),
        (None, None),
    ],
)
def test_clean_name(raw: str | None, expected: str | None) -> None:
    assert clean_name(raw) == expected


def test_clean_names_are_plain_ascii_within_the_window() -> None:
    for raw in [
        "\u00c5ngstr\u00f6m Dreams of the North",
        "Za\u017c\u00f3\u0142\u0107 g\u0119\u015bl\u0105 ja\u017a\u0144",
        "\u2605 Starlit \u2605 Avenue \u2605 Nights \u2605",
    ]:
        name = clean_name(raw)
        assert name is not None and name.isascii() and 15 <= len(name) <= 40, (raw, name)


# --- the prompt ------------------------------------------------------------------------------


def test_prompt_holds_profile_songs_and_taken_names() -> None:
    messages = naming_messages(PROFILE, SONGS, {"Old Name One", "Old Name Two"}, max_songs=3)
    assert [m["role"] for m in messages] == ["system", "user"]
    rules, user = messages[0]["content"], messages[1]["content"]
    assert "15 to 40 characters" in rules and "ASCII" in rules and "No numbering" in rules
    assert "Old Name One" in rules and "Old Name Two" in rules
    assert "rock (0.62)" in user and "medium (120 BPM)" in user and "moderate (0.45" in user
    assert "sad (0.71)" in user
    assert "- Song 1 - Artist 1" in user and "- Song 3 - Artist 3" in user and "Song 4 " not in user
    assert "3 of 40" in user


# --- name_playlist against the scripted server --------------------------------------------


def _config(server: FakeOpenAI, **env: str) -> AiConfig:
    env_settings = load_settings(
        env={
            "AI_MODEL_PROVIDER": "OPENAI",
            "OPENAI_SERVER_URL": server.base_url,
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_MODEL_NAME": "namer",
            "MAX_SONGS_IN_AI_PROMPT": "5",
            **env,
        }
    )
    config = ai_config(env_settings)
    assert config is not None
    return config


async def _name(
    script: list[Any], avoid: set[str] | None = None, **env: str
) -> tuple[NamingResult, FakeOpenAI]:
    async with FakeOpenAI(script) as server:
        result = await name_playlist(_config(server, **env), PROFILE, SONGS, avoid or set())
        server.assert_no_violations()
    return result, server


async def test_good_answer() -> None:
    result, server = await _name([Answer(NAME)], {"Taken Already Name"})
    assert result == NamingResult(NAME, "ai", None)
    [request] = server.requests
    assert request.body["model"] == "namer"
    assert "- Song 5 - Artist 5" in request.prompt and "Song 6 " not in request.prompt
    assert "Taken Already Name" in request.prompt and "rock (0.62)" in request.prompt


async def test_thinking_block_then_answer() -> None:
    result, _ = await _name([Answer(f"<think>\nCalm, sad, rock... something nocturnal.\n</think>\n\n{NAME}")])
    assert result == NamingResult(NAME, "ai", None)


async def test_garbage_falls_back() -> None:
    result, _ = await _name([Answer("@@@ \U0001f525\U0001f525 ### 0x1f")])
    assert (result.name, result.source) == (FALLBACK, "fallback")
    assert result.note is not None and result.note.startswith("AI answer unusable as a name")


async def test_malformed_answer_falls_back() -> None:
    result, server = await _name([Malformed()])
    assert (result.name, result.source) == (FALLBACK, "fallback")
    assert result.note == "AI naming failed: the AI server's answer is not JSON"


async def test_500_twice_falls_back_after_one_retry() -> None:
    result, server = await _name([Status(500), Status(500), Answer("never asked for")])
    assert (result.name, result.source) == (FALLBACK, "fallback")
    assert result.note is not None and "HTTP 500" in result.note
    assert len(server.requests) == 2


async def test_500_once_then_the_retry_answers() -> None:
    result, server = await _name([Status(500), Answer(NAME)])
    assert result == NamingResult(NAME, "ai", None)
    assert len(server.requests) == 2


async def test_timeout_falls_back_in_time() -> None:
    started = time.monotonic()
    result, server = await _name([Answer(NAME, delay=3.0)], AI_REQUEST_TIMEOUT_SECONDS="1")
    elapsed = time.monotonic() - started
    assert (result.name, result.source, result.note) == (
        FALLBACK,
        "fallback",
        "AI naming failed: no answer within 1 s",
    )
    assert elapsed < 2.0
    assert len(server.requests) == 1


async def test_slow_answer_in_time_is_accepted() -> None:
    result, _ = await _name([Answer(NAME, delay=1.5)], AI_REQUEST_TIMEOUT_SECONDS="3")
    assert result == NamingResult(NAME, "ai", None)


async def test_taken_ai_name_falls_back_to_a_unique_deterministic_name() -> None:
    result, _ = await _name([Answer(f"**{NAME.upper()}**")], {NAME.lower(), FALLBACK})
    assert (result.name, result.source) == (FALLBACK + "_2", "fallback")
    assert result.note == f"AI name {NAME.upper()!r} is already taken"


async def test_a_run_never_repeats_a_name() -> None:
    async with FakeOpenAI([Answer(NAME), Answer(NAME), Status(400)]) as server:
        config = _config(server)
        used: list[str] = []
        for _ in range(3):
            used.append((await name_playlist(config, PROFILE, SONGS, used)).name)
    assert used == [NAME, FALLBACK, FALLBACK + "_2"]


async def test_provider_none_never_asks() -> None:
    async with FakeOpenAI([Answer(NAME)]) as server:
        none = load_settings(env={"AI_MODEL_PROVIDER": "NONE", "OPENAI_SERVER_URL": server.base_url})
        config = ai_config(none)
        result = await name_playlist(config, PROFILE, SONGS, {FALLBACK})
    assert result == NamingResult(FALLBACK + "_2", "fallback", None)
    assert server.requests == []


async def test_unexpected_errors_never_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: object) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(naming, "complete", broken)
    async with FakeOpenAI() as server:
        result = await name_playlist(_config(server), PROFILE, SONGS, set())
    assert result == NamingResult(FALLBACK, "fallback", "AI naming failed: RuntimeError")


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_clean_name_only_returns_plain_names(raw: str) -> None:
    name = clean_name(raw)
    assert name is None or (
        15 <= len(name) <= 40
        and re.fullmatch(r"[A-Za-z0-9 \-&'!.,?()\[\]]+", name)
        and name == name.strip()
        and "  " not in name
    )
