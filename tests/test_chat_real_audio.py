"""The no-LLM chat ranking on tracks the service itself analysed: real audio files (synthesised
here, so that their loudness and pulse are known: quiet slow pads, mid-tempo drums, loud fast
drums), the real models and worker (POST /api/analysis/start, then the worker until idle),
PostgreSQL with the chat role; then plain-language requests through the HTTP API.

What is checked is the ranking against what the analysis measured (the tempo and energy columns
the chat reads), and that the measured values follow the audio (quiet is low energy, the 165 BPM
drums are fast): "calm" puts low-energy tracks above high-energy ones, "fast" the higher tempos
first, "like <song>" starts with that song and follows with its nearest tracks, and no artist
appears more than MAX_SONGS_PER_ARTIST times.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import mutagen.flac
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf
from aiohttp.test_utils import TestClient, TestServer
from workers import run_workers_until_idle

from sidecar.app import create_app
from sidecar.services import Endpoints
from sidecar.web.keys import DB

SR = 22050
SECONDS = 30.0
ROLE = "ai_user_chat_audio"


def _drums(bpm: float, loud: float, seed: int) -> np.ndarray:
    """Kick on beats 1 and 3, snare on 2 and 4, hi-hat on every eighth note, over a bass line."""
    rng = np.random.default_rng(seed)
    n = int(SECONDS * SR)
    y = np.zeros(n)
    length = int(0.15 * SR)
    t = np.arange(length) / SR
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 20)
    snare = rng.standard_normal(length) * np.exp(-t * 25) * 0.7
    hat_len = int(0.05 * SR)
    hat = np.diff(rng.standard_normal(hat_len + 1)) * np.exp(-np.arange(hat_len) / SR * 80) * 0.4
    period, beat, pos = 60.0 / bpm, 0, 0.05
    while (pos + period) * SR + length < n:
        i = int(pos * SR)
        y[i : i + length] += snare if beat % 2 else kick
        for half in (0.0, 0.5):
            j = int((pos + half * period) * SR)
            y[j : j + hat_len] += hat
        beat, pos = beat + 1, pos + period
    tt = np.arange(n) / SR
    bass = 0.4 * np.sign(np.sin(2 * np.pi * (55 + 5 * seed) * tt))
    y = y + bass + 0.05 * rng.standard_normal(n)
    return loud * y / np.max(np.abs(y))


def _pad(seed: int) -> np.ndarray:
    """A soft sustained chord, slowly changing, no percussion."""
    n = int(SECONDS * SR)
    tt = np.arange(n) / SR
    roots = [220.0, 196.0, 174.6, 246.9]
    y = np.zeros(n)
    for k, root in enumerate(roots):
        a, b = k * n // 4, (k + 1) * n // 4
        f = root * 2 ** (seed / 12)
        for ratio in (1.0, 1.26, 1.5):
            y[a:b] += np.sin(2 * np.pi * f * ratio * tt[a:b])
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 0.1 * tt) ** 2
    y = y * env
    return 0.04 * y / np.max(np.abs(y))


#: title -> (artist, audio)
TRACKS: dict[str, tuple[str, Any]] = {
    "Still Water": ("Calm One", lambda: _pad(0)),
    "Morning Mist": ("Calm Two", lambda: _pad(3)),
    "Slow Cloud": ("Calm Three", lambda: _pad(5)),
    "Walk": ("Mid One", lambda: _drums(100, 0.35, 1)),
    "Stroll": ("Mid Two", lambda: _drums(96, 0.35, 2)),
    "Sprint": ("Fast One", lambda: _drums(165, 0.95, 3)),
    "Rush": ("Fast Two", lambda: _drums(150, 0.9, 4)),
    "Race One": ("Drummer", lambda: _drums(170, 0.95, 5)),
    "Race Two": ("Drummer", lambda: _drums(168, 0.95, 6)),
    "Race Three": ("Drummer", lambda: _drums(160, 0.95, 7)),
    "Race Four": ("Drummer", lambda: _drums(172, 0.95, 8)),
    "Race Five": ("Drummer", lambda: _drums(162, 0.95, 9)),
}


def make_music(root: Path) -> None:
    for i, (title, (artist, audio)) in enumerate(TRACKS.items()):
        path = root / artist / "Album" / f"{i + 1:02d} {title}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.asarray(audio(), dtype=np.float32), SR)
        tags = mutagen.flac.FLAC(path)
        tags.update({"title": title, "artist": artist, "album": f"{artist} Album", "tracknumber": str(i + 1)})
        tags.save()


@pytest_asyncio.fixture
async def analysed(make_settings: Any, endpoints: Endpoints, tmp_path: Path) -> AsyncIterator[TestClient]:
    music = tmp_path / "music"
    make_music(music)
    settings = make_settings(
        {"LOCAL_MUSIC_DIR": str(music), "API_TOKEN": "tok-9", "CHAT_MAX_SONGS": "8"},
        ai_chat_db_user_name=ROLE,
    )
    client = TestClient(TestServer(create_app(settings, endpoints)))
    await client.start_server()
    try:
        resp = await client.post("/api/analysis/start", json={}, headers=AUTH)
        assert resp.status == 202, await resp.text()
        await run_workers_until_idle(settings, endpoints)
        yield client
    finally:
        await client.close()


AUTH = {"Authorization": "Bearer tok-9"}


async def ask(client: TestClient, text: str) -> dict[str, Any]:
    resp = await client.post("/api/chat/playlist", json={"userInput": text}, headers=AUTH)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = (await resp.json())["response"]
    return body


def _pairs_in_order(titles: list[str], value: dict[str, float], gap: float, higher_first: bool) -> list[str]:
    """The pairs of ``titles`` whose values differ by more than ``gap`` and come in the wrong order."""
    wrong = []
    for i, a in enumerate(titles):
        for b in titles[i + 1 :]:
            d = value[a] - value[b]
            if (d < -gap) if higher_first else (d > gap):
                wrong.append(f"{a} ({value[a]:.2f}) before {b} ({value[b]:.2f})")
    return wrong


async def test_the_rules_rank_analysed_real_audio(analysed: TestClient) -> None:
    db: asyncpg.Pool = analysed.app[DB]
    rows = await db.fetch(
        "SELECT t.title, t.artist, t.analysis_status, a.tempo, a.energy_normalized AS energy "
        "FROM tracks t LEFT JOIN track_analysis a USING (item_id)"
    )
    assert sorted(r["title"] for r in rows if r["analysis_status"] == "analyzed") == sorted(TRACKS), [
        dict(r) for r in rows
    ]
    tempo = {r["title"]: float(r["tempo"] or 0.0) for r in rows}
    energy = {r["title"]: float(r["energy"]) for r in rows}
    artist = {r["title"]: r["artist"] for r in rows}
    # the analysis follows the audio: the pads are quiet, the loud drums loud, the mid ones between
    pads, loud = ("Still Water", "Morning Mist", "Slow Cloud"), ("Sprint", "Rush", "Race One", "Race Two")
    assert max(energy[t] for t in pads) < 0.2 < energy["Walk"] < 0.6 < min(energy[t] for t in loud), energy
    assert tempo["Walk"] == pytest.approx(100, abs=3) and tempo["Rush"] == pytest.approx(150, abs=4), tempo

    # "calm": nothing loud, and lower energy above higher energy
    r = await ask(analysed, "calm")
    calm = [t["title"] for t in r["query_results"]]
    assert set(pads) <= set(calm) and all(energy[t] <= 0.45 for t in calm), (calm, energy)
    assert not _pairs_in_order(calm, energy, 0.1, higher_first=False)
    assert "energy <= 0.45" in r["understood_as"]

    # "fast": the tracks measured at 130 BPM or more, the higher tempos first (whatever the
    # models' "fast" tag says: on these sounds it scores no track as a match)
    r = await ask(analysed, "fast songs")
    fast = [t["title"] for t in r["query_results"]]
    measured_fast = {t for t, bpm in tempo.items() if bpm >= 130}
    assert fast and set(fast) <= measured_fast and all(tempo[t] >= 130 for t in fast), (fast, tempo)
    capped = {t for t in measured_fast if artist[t] != "Drummer"} | {
        t for t in fast if artist[t] == "Drummer"
    }
    assert set(fast) == capped
    assert not _pairs_in_order(fast, tempo, 5.0, higher_first=True), (fast, tempo)
    assert "minimum scores were dropped (the tempo, energy and year limits kept)" in r["message"]

    # "energetic": loud tracks only, at most MAX_SONGS_PER_ARTIST (3) of the drummer's five
    r = await ask(analysed, "energetic")
    energetic = [t["title"] for t in r["query_results"]]
    assert energetic and all(energy[t] >= 0.6 for t in energetic)
    assert sum(artist[t] == "Drummer" for t in energetic) == 3
    assert {"Sprint", "Rush"} <= set(energetic)

    # "like <song>": a song mix that starts with it; its nearest are the other pads, and the
    # service's own nearest-track answer agrees; the artist cap holds in the mix too (8 songs:
    # the 12 tracks can fill them with at most 3 of the drummer's, so the engine keeps the cap)
    r = await ask(analysed, "songs like Still Water")
    mix = [t["title"] for t in r["query_results"]]
    assert mix[0] == "Still Water" and set(mix[1:3]) == {"Morning Mist", "Slow Cloud"}, mix
    assert "the song 'Still Water' by Calm One" in r["understood_as"]
    seed = r["query_results"][0]["item_id"]
    resp = await analysed.get("/api/similar_tracks", params={"item_id": seed, "n": "2"}, headers=AUTH)
    nearest = {t["item_id"] for t in await resp.json()}
    assert nearest == {t["item_id"] for t in r["query_results"][1:3]}
    r = await ask(analysed, "like Race One")
    mix = [t["title"] for t in r["query_results"]]
    assert mix[0] == "Race One" and len(mix) == 8 == len(set(mix)), mix
    assert sum(artist[t] == "Drummer" for t in mix) == 3, mix
