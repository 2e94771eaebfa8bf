"""Analysis end to end: real audio files, the real models, the real worker, PostgreSQL and Valkey.

Every track of a run ends analysed or failed with its reason; bad files never stop an album;
re-runs skip what the same model version stored; cancellation; a worker killed by SIGKILL
mid-album loses and duplicates nothing; the Subsonic provider end to end.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf
from aiohttp.test_utils import TestClient, TestServer
from audio_factory import make_corrupt_file, make_empty_file, make_non_audio_file, make_track
from workers import run_workers_until_idle

from sidecar.app import create_app
from sidecar.db import tasks
from sidecar.ml import pipeline
from sidecar.ml.pipeline import AnalysisParams, analyze_path, select_patches
from sidecar.services import Endpoints
from sidecar.web.keys import DB

MELODIES = [[220, 277, 330, 440], [196, 247, 294, 392], [262, 330, 392, 523], [147, 185, 220, 294]]


def make_album(
    root: Path, artist: str, album: str, n: int, seconds: float = 8.0, start: int = 0
) -> list[Path]:
    return [
        make_track(
            root / artist / album / f"{i + 1:02d} Song {start + i}.flac",
            seconds=seconds,
            melody=MELODIES[(start + i) % len(MELODIES)],
            seed=start + i,
            title=f"Song {start + i}",
            artist=artist,
            album=album,
            track_number=i + 1,
        )
        for i in range(n)
    ]


def add_bad_files(album_dir: Path) -> dict[str, str]:
    """The awkward inputs of the issue, each with the failure reason code it must end with
    (None: must end analysed)."""
    make_empty_file(album_dir / "90 empty.flac")
    make_corrupt_file(album_dir / "91 corrupt.flac", seconds=4.0, title="91 corrupt")
    make_non_audio_file(album_dir / "92 text.mp3", kind="text")
    sf.write(album_dir / "93 silent.wav", np.zeros(16000 * 6, dtype=np.float32), 16000)
    make_track(album_dir / "94 short.flac", seconds=1.5, title="94 short")
    t = np.arange(8000 * 10) / 8000
    six = np.stack([0.3 * np.sin(2 * np.pi * (200 + 50 * c) * t) for c in range(6)], axis=1).astype(
        np.float32
    )
    sf.write(album_dir / "95 surround8k.wav", six, 8000)
    return {
        "90 empty": "empty",
        "91 corrupt": "corrupt",
        "92 text": "not_audio",
        "93 silent": "silent",
        "94 short": "too_short",
        "95 surround8k": "",
    }


async def run_worker_until_idle(settings: Any, endpoints: Endpoints) -> None:
    await run_workers_until_idle(settings, endpoints)


@pytest_asyncio.fixture
async def client(make_settings: Any, endpoints: Endpoints, tmp_path: Path) -> AsyncIterator[TestClient]:
    music = tmp_path / "music"
    music.mkdir(exist_ok=True)
    c = TestClient(
        TestServer(
            create_app(
                make_settings({"LOCAL_MUSIC_DIR": str(music)}, ai_chat_db_user_name="ai_user_an"), endpoints
            )
        )
    )
    await c.start_server()
    yield c
    await c.close()


def test_select_patches_spreads_evenly() -> None:
    p = np.arange(80)[:, None, None] * np.ones((1, 187, 96), dtype=np.float32)
    picked = select_patches(p, 8)[:, 0, 0].astype(int).tolist()
    assert picked == [5, 15, 25, 35, 45, 55, 65, 75]
    assert select_patches(p, 0).shape[0] == 80 and select_patches(p[:3], 8).shape[0] == 3


def test_pipeline_on_a_real_file(tmp_path: Path) -> None:
    path = make_track(tmp_path / "a.mp3", seconds=20, melody=MELODIES[0], title="x")
    r = analyze_path(path, AnalysisParams(top_n_moods=4))
    assert (
        r.embedding.shape == (200,) and r.embedding.dtype == np.float32 and np.all(np.isfinite(r.embedding))
    )
    assert len(r.tags) == 50 and len(r.mtt_tags) == 50 and "rock" in r.tags and "guitar" in r.mtt_tags
    assert len(r.moods) == 4 and r.moods[0] == max(r.tags, key=r.tags.get)
    assert r.tempo is None or 40 <= r.tempo <= 200
    assert r.key in {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"} and r.scale in {
        "major",
        "minor",
    }
    assert 0 <= r.energy_normalized <= 1 and set(r.other_features) == {
        "danceable",
        "aggressive",
        "happy",
        "party",
        "relaxed",
        "sad",
    }
    assert all(0 <= v <= 1 for v in r.other_features.values())
    assert r.features["patches"] == 6 and r.features["complete"]
    # a budget of patches keeps the embedding close to the all-patches one
    budget = analyze_path(path, AnalysisParams(max_patches=3))
    cos = float(
        budget.embedding @ r.embedding / np.linalg.norm(budget.embedding) / np.linalg.norm(r.embedding)
    )
    assert budget.features["patches"] == 3 and cos > 0.95


async def test_every_track_ends_analysed_or_failed_with_reason(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path, client: TestClient
) -> None:
    music = tmp_path / "music"
    make_album(music, "Band", "Good", 3)
    expected = add_bad_files(music / "Band" / "Good")
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)})
    resp = await client.post("/api/analysis/start", json={"top_n_moods": 3})
    assert resp.status == 202
    started = await resp.json()
    assert started["task_type"] == "main_analysis" and started["status"] == "PENDING"
    again = await client.post("/api/analysis/start", json={})
    assert again.status == 409
    await run_worker_until_idle(settings, endpoints)
    db: asyncpg.Pool = client.app[DB]
    task = await tasks.get(db, started["task_id"])
    assert task is not None and task["status"] == "SUCCESS", task
    d = task["details"]
    assert d["tracks_total"] == 9 and d["tracks_analyzed"] + d["tracks_failed"] == 9 and d["adds_up"]
    assert task["log"][-1].startswith(
        f"done: {d['tracks_analyzed']} analysed + {d['tracks_failed']} failed = 9"
    )
    rows = {
        r["title"]: r for r in await db.fetch("SELECT title, analysis_status, failure_reason FROM tracks")
    }
    for title, reason in expected.items():
        row = rows[title]
        if reason:
            assert row["analysis_status"] == "failed" and row["failure_reason"].startswith(reason + ":"), (
                dict(row)
            )
        else:
            assert row["analysis_status"] == "analyzed", dict(row)
    for i in range(3):
        assert rows[f"Song {i}"]["analysis_status"] == "analyzed"
    analysed = await db.fetchval("SELECT count(*) FROM tracks WHERE analysis_status = 'analyzed'")
    assert await db.fetchval("SELECT count(*) FROM embeddings") == analysed
    assert await db.fetchval("SELECT count(*) FROM track_analysis WHERE cardinality(moods) = 3") == analysed
    # the analysed tracks are searchable at once
    seed = await db.fetchval("SELECT item_id FROM tracks WHERE title = 'Song 0'")
    body = await (await client.get("/api/similar_tracks", params={"item_id": seed, "n": "2"})).json()
    assert len(body) == 2
    # a second run skips everything the same model version stored
    resp = await client.post("/api/analysis/start", json={})
    assert resp.status == 202
    second = (await resp.json())["task_id"]
    before = await db.fetchval("SELECT max(analyzed_at) FROM track_analysis")
    await run_worker_until_idle(settings, endpoints)
    task2 = await tasks.get(db, second)
    assert task2 is not None and task2["details"]["albums_skipped"] == 2  # failures for lasting reasons too
    assert task2["details"]["albums_to_analyse"] == 0
    assert await db.fetchval("SELECT max(analyzed_at) FROM track_analysis") == before


async def test_new_model_version_reanalyses(
    make_settings: Any,
    endpoints: Endpoints,
    tmp_path: Path,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    music = tmp_path / "music"
    make_album(music, "Band", "Good", 2)
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)})
    db: asyncpg.Pool = client.app[DB]
    await client.post("/api/analysis/start", json={})
    await run_worker_until_idle(settings, endpoints)
    old = {r[0] for r in await db.fetch("SELECT DISTINCT model_version FROM embeddings")}
    monkeypatch.setattr(pipeline, "PIPELINE_REVISION", pipeline.PIPELINE_REVISION + 1)
    resp = await client.post("/api/analysis/start", json={})
    await run_worker_until_idle(settings, endpoints)
    task = await tasks.get(db, (await resp.json())["task_id"])
    assert (
        task is not None
        and task["details"]["albums_to_analyse"] == 1
        and task["details"]["tracks_analyzed"] == 2
    )
    new = {r[0] for r in await db.fetch("SELECT DISTINCT model_version FROM embeddings")}
    assert len(new) == 1 and new != old


async def test_bad_start_requests(client: TestClient) -> None:
    for body in ({"num_recent_albums": -1}, {"top_n_moods": 0}, {"top_n_moods": "five"}, [1]):
        resp = await client.post("/api/analysis/start", json=body)
        assert resp.status == 400 and "error" in await resp.json()


async def test_cancel_mid_run(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path, client: TestClient
) -> None:
    music = tmp_path / "music"
    for a in range(3):
        make_album(music, f"Artist {a}", f"Album {a}", 4, seconds=12, start=10 * a)
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music), "MAX_QUEUED_ANALYSIS_JOBS": "1"})
    db: asyncpg.Pool = client.app[DB]
    task_id = (await (await client.post("/api/analysis/start", json={})).json())["task_id"]
    worker = asyncio.create_task(run_worker_until_idle(settings, endpoints))
    deadline = time.monotonic() + 120
    while await db.fetchval("SELECT count(*) FROM tracks WHERE analysis_status = 'analyzed'") < 1:
        assert time.monotonic() < deadline and not worker.done()
        await asyncio.sleep(0.05)
    resp = await client.post(f"/api/cancel/{task_id}")
    assert resp.status == 200
    await worker
    task = await tasks.get(db, task_id)
    assert task is not None and task["status"] == "REVOKED"
    children = await db.fetch("SELECT status FROM tasks WHERE parent_task_id = $1", task_id)
    assert children and all(c["status"] in ("REVOKED", "SUCCESS") for c in children)
    assert any(c["status"] == "REVOKED" for c in children)
    analysed = await db.fetchval("SELECT count(*) FROM tracks WHERE analysis_status = 'analyzed'")
    assert 1 <= analysed < 12  # it stopped between tracks
    assert await db.fetchval("SELECT count(*) FROM tracks WHERE analysis_status = 'analyzing'") == 0
    assert not any(settings.download_dir.glob("am-*"))


@pytest.mark.slow
async def test_sigkill_mid_album_then_restart(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path, client: TestClient
) -> None:
    music = tmp_path / "music"
    make_album(music, "Solo", "Long Album", 8, seconds=15)
    db: asyncpg.Pool = client.app[DB]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "MEDIASERVER_"))}
    env.update(
        {
            "DATABASE_URL": endpoints.postgres_dsn,
            "REDIS_URL": endpoints.redis_url,
            "LOCAL_MUSIC_DIR": str(music),
            "AUDIOMUSE_DATA_DIR": str(tmp_path / "data"),
            "TASK_ORPHAN_SECONDS": "2",
            "LOG_LEVEL": "WARNING",
        }
    )
    task_id = (await (await client.post("/api/analysis/start", json={})).json())["task_id"]

    def start_worker() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "sidecar", "worker"],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = start_worker()
    deadline = time.monotonic() + 120
    while await db.fetchval("SELECT count(*) FROM tracks WHERE analysis_status = 'analyzed'") < 2:
        assert time.monotonic() < deadline and first.poll() is None, (
            first.stderr.read() if first.stderr else ""
        )
        await asyncio.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    analysed_at_kill = await db.fetchval("SELECT count(*) FROM tracks WHERE analysis_status = 'analyzed'")
    assert analysed_at_kill < 8, "the album finished before the kill: make it longer"
    second = start_worker()
    try:
        while (await tasks.get(db, task_id) or {}).get("status") not in tasks.FINAL:
            assert time.monotonic() < deadline + 120 and second.poll() is None
            await asyncio.sleep(0.2)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=60)
    task = await tasks.get(db, task_id)
    assert task is not None and task["status"] == "SUCCESS", task
    assert task["details"]["tracks_analyzed"] == 8 and task["details"]["adds_up"]
    assert any("queued again" in line for line in task["log"]), task["log"]
    # every track stored exactly once
    assert await db.fetchval("SELECT count(*) FROM embeddings") == 8
    assert await db.fetchval("SELECT count(*) FROM track_analysis") == 8
    assert await db.fetchval("SELECT count(DISTINCT item_id) FROM embeddings") == 8


async def test_analysis_through_a_real_subsonic_server(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path, db: asyncpg.Pool
) -> None:
    from servers.supysonic import running_supysonic

    from sidecar.web.keys import QUEUE

    music = tmp_path / "subsonic-music"
    make_album(music, "Remote", "Streamed", 3, seconds=8)
    make_empty_file(music / "Remote" / "Streamed" / "04 empty.flac")  # supysonic skips it: not a track
    with running_supysonic(music, tmp_path / "supysonic") as server:
        settings = make_settings(
            {
                "MEDIASERVER_TYPE": "navidrome",
                "NAVIDROME_URL": server.base_url,
                "NAVIDROME_USER": server.user,
                "NAVIDROME_PASSWORD": server.password,
            },
            ai_chat_db_user_name="ai_user_sub",
        )
        c = TestClient(TestServer(create_app(settings, endpoints)))
        await c.start_server()
        try:
            task_id = (await (await c.post("/api/analysis/start", json={})).json())["task_id"]
            await run_worker_until_idle(settings, endpoints)
            task = await tasks.get(db, task_id)
            assert task is not None and task["status"] == "SUCCESS", task
            assert task["details"]["tracks_analyzed"] == 3 and task["details"]["adds_up"]
            rows = await db.fetch("SELECT item_id, provider, analysis_status FROM tracks")
            assert {r["provider"] for r in rows} == {"navidrome"} and len(rows) == 3
            # ids are the server's: the bridge and clients can use them directly
            songs = server.get_json("getAlbumList2", type="newest")["albumList2"]["album"]
            album = server.get_json("getAlbum", id=songs[0]["id"])["album"]["song"]
            assert {s["id"] for s in album} == {r["item_id"] for r in rows}
            assert not any(settings.download_dir.iterdir()), "downloaded files must be removed"
            assert QUEUE in c.app
        finally:
            await c.close()
