"""Runs never get stuck and never fail silently: one run of a kind at a time (atomically),
parents cannot starve children, ghosts are ended, a bad track fails alone, a media-server
outage is waited out, and failures are reported grouped and listed."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import mutagen
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix, job_key_prefix
from audio_factory import make_track
from workers import run_workers_until_idle

from sidecar.app import create_app
from sidecar.db import analysis as analysis_db
from sidecar.db import tasks
from sidecar.db import tracks as tracks_db
from sidecar.jobs.analysis import analyze_album
from sidecar.jobs.context import JobContext
from sidecar.jobs.queue import settle
from sidecar.ml.pipeline import AnalysisParams, model_version
from sidecar.providers.base import ProviderUnavailable, Track
from sidecar.providers.local import LocalProvider
from sidecar.services import Endpoints
from sidecar.web.keys import DB

MELODIES = [[220, 277, 330, 440], [196, 247, 294, 392], [262, 330, 392, 523], [147, 185, 220, 294]]


def make_album(
    root: Path, artist: str, album: str, n: int, seconds: float = 6.0, start: int = 0
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


@pytest_asyncio.fixture
async def client(make_settings: Any, endpoints: Endpoints, tmp_path: Path) -> AsyncIterator[TestClient]:
    music = tmp_path / "music"
    music.mkdir(exist_ok=True)
    c = TestClient(
        TestServer(
            create_app(
                make_settings({"LOCAL_MUSIC_DIR": str(music)}, ai_chat_db_user_name="ai_user_runs"), endpoints
            )
        )
    )
    await c.start_server()
    yield c
    await c.close()


async def test_simultaneous_starts_admit_exactly_one_run(client: TestClient) -> None:
    for path in ("/api/analysis/start", "/api/library/sync"):
        answers = await asyncio.gather(*(client.post(path, json={}) for _ in range(20)))
        codes = sorted(r.status for r in answers)
        assert codes == [202] + [409] * 19, (path, codes)
        started = [await r.json() for r in answers if r.status == 202][0]
        refused = [await r.json() for r in answers if r.status == 409]
        assert {r["detail"]["task_id"] for r in refused} == {started["task_id"]}
    active = await tasks.active(client.app[DB])
    assert sorted(t["task_type"] for t in active) == ["library_sync", "main_analysis"]


async def test_one_work_slot_cannot_deadlock(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path, client: TestClient
) -> None:
    """WORKER_MAX_JOBS=1 used to deadlock even one run: the parent held the only slot while it
    waited for album jobs that could never start."""
    music = tmp_path / "music"
    make_album(music, "One", "First", 2, start=0)
    make_album(music, "Two", "Second", 2, start=5)
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music), "WORKER_MAX_JOBS": "1"})
    task_id = (await (await client.post("/api/analysis/start", json={})).json())["task_id"]
    await run_workers_until_idle(settings, endpoints, timeout_s=180)
    task = await tasks.get(client.app[DB], task_id)
    assert task is not None and task["status"] == "SUCCESS", task
    assert task["details"]["tracks_analyzed"] == 4


async def test_a_run_whose_job_is_gone_does_not_block_the_next(client: TestClient) -> None:
    db = client.app[DB]
    ghost, _ = await tasks.create_run(db, "main_analysis")  # no job was ever queued for it
    assert ghost is not None
    await db.execute(
        "UPDATE tasks SET status = 'STARTED', updated_at = now() - interval '1 hour' WHERE task_id = $1",
        ghost,
    )
    resp = await client.post("/api/analysis/start", json={})
    assert resp.status == 202, await resp.json()
    ended = await tasks.get(db, ghost)
    assert ended is not None and ended["status"] == "FAILURE"
    assert "job is gone" in ended["details"]["error"]
    # a live run (its job queued) still answers 409
    assert (await client.post("/api/analysis/start", json={})).status == 409


async def test_settle_requeues_lost_workers_ends_ghosts_and_leaves_queued_jobs(
    db: asyncpg.Pool, redis_url: str
) -> None:
    redis = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        run = await tasks.create(db, "main_analysis")
        lost, queued, ghost, fresh = [
            await tasks.create(db, "album_analysis", parent_task_id=run) for _ in range(4)
        ]
        await db.execute("UPDATE tasks SET status = 'SUCCESS' WHERE task_id = $1", run)
        await db.execute(
            "UPDATE tasks SET status = 'STARTED', updated_at = now() - interval '10 minutes' "
            "WHERE task_id = ANY($1::text[])",
            [lost, queued, ghost],
        )
        await redis.set(job_key_prefix + lost, b"x")
        await redis.set(in_progress_key_prefix + lost, b"1")
        await redis.set(job_key_prefix + queued, b"x")
        outcome = await settle(db, redis, stale_after_s=60)
        assert outcome == {"requeued": 1, "ended": 1}
        states = {t: (await tasks.get(db, t) or {})["status"] for t in (lost, queued, ghost, fresh)}
        assert states == {lost: "PENDING", queued: "STARTED", ghost: "FAILURE", fresh: "PENDING"}
        assert not await redis.exists(in_progress_key_prefix + lost)
    finally:
        await redis.aclose()


async def test_metadata_the_database_refuses_fails_that_track_only(db: asyncpg.Pool) -> None:
    good = Track(item_id="a" * 32, title="Fine", artist="X", album="Y", album_id="al")
    nul = Track(
        item_id="b" * 32, title="bad\x00title", artist="A\x00", album="Y", album_id="al", genres=("Ro\x00ck",)
    )
    undecodable = Track(
        item_id="c" * 32,
        title="\udcff\udcfe name",
        album="Y",
        album_id="al",
        file_path="/music/\udcff\udcfe name.flac",
    )
    out_of_range = Track(item_id="d" * 32, title="Year 10^12", album="Y", album_id="al", year=10**12)
    stored, refused = await tracks_db.upsert_tracks(db, "local", [good, nul, undecodable, out_of_range])
    assert [t.item_id for t in stored] == ["a" * 32, "b" * 32, "c" * 32]
    assert [t.item_id for t, _ in refused] == ["d" * 32] and "metadata rejected" in refused[0][1]
    rows = {
        r["item_id"]: r
        for r in await db.fetch("SELECT item_id, title, artist, genres, file_path FROM tracks")
    }
    assert rows["b" * 32]["title"] == "badtitle" and rows["b" * 32]["artist"] == "A"
    assert rows["b" * 32]["genres"] == ["Rock"]
    assert rows["c" * 32]["file_path"] == "/music/\ufffd\ufffd name.flac"


async def test_bad_names_and_tags_fail_nothing_but_themselves(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path, client: TestClient
) -> None:
    """A file name that is not UTF-8 and NUL characters in tags used to raise inside the run and
    leave it STARTED forever."""
    music = tmp_path / "music"
    paths = make_album(music, "Band", "Odd", 3)
    tagged = mutagen.File(paths[0], easy=True)
    tagged["title"], tagged["artist"] = "nul\x00inside", "Band\x00"
    tagged.save()
    os.rename(bytes(paths[1]), bytes(paths[1].parent) + b"/\xff\xfe not utf-8.flac")
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)})
    task_id = (await (await client.post("/api/analysis/start", json={})).json())["task_id"]
    await run_workers_until_idle(settings, endpoints)
    task = await tasks.get(client.app[DB], task_id)
    assert task is not None and task["status"] == "SUCCESS", task
    assert task["details"]["tracks_analyzed"] == 3 and task["details"]["adds_up"]
    rows = await client.app[DB].fetch("SELECT title, artist, file_path FROM tracks")
    assert "nulinside" in {r["title"] for r in rows} and "Band" in {r["artist"] for r in rows}
    assert any("\ufffd\ufffd not utf-8.flac" in r["file_path"] for r in rows)


async def test_an_outage_is_waited_out(
    make_settings: Any,
    endpoints: Endpoints,
    tmp_path: Path,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    music = tmp_path / "music"
    make_album(music, "Band", "Flaky", 3)
    real = LocalProvider.audio_file
    calls = {"n": 0}

    def flaky(self: LocalProvider, track: Track, temp_dir: Path) -> Any:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise ProviderUnavailable("local", "download", "connection refused (simulated outage)")
        return real(self, track, temp_dir)

    monkeypatch.setattr(LocalProvider, "audio_file", flaky)
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music), "MEDIA_OUTAGE_WAIT_SECONDS": "60"})
    task_id = (await (await client.post("/api/analysis/start", json={})).json())["task_id"]
    await run_workers_until_idle(settings, endpoints)
    db = client.app[DB]
    task = await tasks.get(db, task_id)
    assert task is not None and task["status"] == "SUCCESS" and task["details"]["tracks_analyzed"] == 3, task
    child = (await tasks.children(db, task_id, 10))["items"][0]
    child_task = await tasks.get(db, child["task_id"])
    assert child_task is not None and any("media server unavailable" in line for line in child_task["log"])


async def test_failures_are_grouped_counted_and_listed(
    make_settings: Any,
    endpoints: Endpoints,
    tmp_path: Path,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    music = tmp_path / "music"
    make_album(music, "Band", "Down", 3)
    (music / "Band" / "Down" / "99 broken.flac").write_bytes(b"fLaC" + b"\x00" * 400)

    def down(self: LocalProvider, track: Track, temp_dir: Path) -> Any:
        if "Song 0" in track.title:
            raise ProviderUnavailable("local", "download", "connection refused (simulated outage)")
        return real(self, track, temp_dir)

    real = LocalProvider.audio_file
    monkeypatch.setattr(LocalProvider, "audio_file", down)
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music), "MEDIA_OUTAGE_WAIT_SECONDS": "0"})
    task_id = (await (await client.post("/api/analysis/start", json={})).json())["task_id"]
    await run_workers_until_idle(settings, endpoints)
    status = await (await client.get(f"/api/status/{task_id}")).json()
    d = status["details"]
    assert status["status"] == "SUCCESS" and d["adds_up"] and d["tracks_failed"] == 2
    assert {r["reason"]: r["count"] for r in d["failure_reasons"]} == {"download": 1, "corrupt": 1}, d
    assert any(
        "failed: 1 corrupt; 1 download" in line or "failed: 1 download; 1 corrupt" in line
        for line in status["log"]
    ), status["log"]
    # the untagged broken file is an album of its own (its folder)
    assert status["children"]["total"] == 2 and status["children"]["by_status"] == {"SUCCESS": 2}
    assert "Down" in {c["details"]["album"] for c in status["children"]["items"]}
    failed = await (await client.get("/api/library/failed?start=0&end=1")).json()
    assert failed["total"] == 2 and len(failed["items"]) == 1 and failed["end"] == 1
    assert {r["reason"] for r in failed["reasons"]} == {"download", "corrupt"}
    page2 = await (await client.get("/api/library/failed?start=1&end=10")).json()
    assert {failed["items"][0]["item_id"], page2["items"][0]["item_id"]} == {
        r["item_id"]
        for r in await client.app[DB].fetch("SELECT item_id FROM tracks WHERE analysis_status = 'failed'")
    }
    assert (await client.get("/api/library/failed?start=-1")).status == 400


async def test_an_album_job_analyses_exactly_the_tracks_its_run_listed(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path, db: asyncpg.Pool
) -> None:
    """The run lists the media server once and hands each album job its tracks: a track added
    to the album afterwards is left for the next run; one deleted since fails with the
    server's "not found": the run's summary always adds up."""
    music = tmp_path / "music"
    paths = make_album(music, "Band", "Growing", 2)
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)})
    lister = LocalProvider(music, settings.playlist_dir)  # the parent's view, at listing time
    (album,) = await lister.list_albums()
    listed = await lister.album_tracks(album.id)
    await tracks_db.upsert_tracks(db, "local", listed)
    paths[1].unlink()  # one listed track disappears ...
    make_track(
        music / "Band" / "Growing" / "03 New.flac",
        seconds=6,
        title="New",
        artist="Band",
        album="Growing",
        track_number=3,
    )  # ... and a new one arrives
    worker_view = LocalProvider(music, settings.playlist_dir)  # another worker process, its own scan
    app = JobContext(settings=settings, db=db, provider=worker_view)
    task_id = await tasks.create(db, "album_analysis")
    result = await analyze_album({"app": app}, task_id, album.id, album.name, None, listed)
    assert result["status"] == "SUCCESS" and result["total"] == 2, result
    rows = {
        r["item_id"]: r for r in await db.fetch("SELECT item_id, analysis_status, failure_reason FROM tracks")
    }
    assert len(rows) == 2  # the new track is left for the next run, which lists it
    ids = [t.item_id for t in listed]
    assert rows[ids[0]]["analysis_status"] == "analyzed"
    assert rows[ids[1]]["analysis_status"] == "failed" and rows[ids[1]]["failure_reason"].startswith(
        "download:"
    )
    version = model_version(AnalysisParams(max_patches=settings.analysis_max_patches))
    assert await analysis_db.album_outcome(db, ids, version) == {
        "total": 2,
        "analyzed": 1,
        "failed": 1,
        "missing": 0,
    }


def test_config_redacts_every_credential() -> None:
    from sidecar.config import load_settings

    s = load_settings(
        {
            "REDIS_URL": "redis://:redispw@cache:6379/0",
            "DATABASE_URL": "postgresql://am:dbpw@db/audiomuse",
            "NAVIDROME_URL": "http://bob:navipw@music.example:4533",
            "NAVIDROME_USER": "bob",
            "NAVIDROME_PASSWORD": "navipw",
            "OPENAI_SERVER_URL": "https://llm.example/v1?key=llmkey&model=x",
            "OPENAI_API_KEY": "sk-llm",
            "API_TOKEN": "apitoken",
        }
    )
    shown = json.dumps(s.redacted())
    for secret in ("redispw", "dbpw", "navipw", "llmkey", "sk-llm", "apitoken", "bob:"):
        assert secret not in shown, secret
    r = s.redacted()
    assert (
        r["REDIS_URL"] == "redis://***@cache:6379/0" and r["NAVIDROME_URL"] == "http://***@music.example:4533"
    )
    assert r["OPENAI_SERVER_URL"] == "https://llm.example/v1?key=***&model=x"


async def test_nul_characters_and_deep_json_answer_400(client: TestClient) -> None:
    for path in (
        "/api/status/a%00b",
        "/api/search_tracks?search_query=a%00b",
        "/api/similar_tracks?item_id=%00",
        "/api/mix?seed=x%00&kind=song",
        "/api/library/failed?start=%00",
    ):
        resp = await client.get(path)
        body = await resp.json()
        assert resp.status == 400 and "NUL" in body["error"], (path, body)
    resp = await client.post("/api/create_playlist", json={"playlist_name": "a\x00b", "track_ids": ["x"]})
    assert resp.status == 400 and "NUL" in (await resp.json())["error"]
    deep = '{"a": ' + "[" * 50_000 + "]" * 50_000 + "}"
    resp = await client.post("/api/library/sync", data=deep, headers={"Content-Type": "application/json"})
    assert resp.status == 400 and "nested too deeply" in (await resp.json())["error"]
    fine = '{"num_recent_albums": 0, "x": ' + "[" * 20 + "]" * 20 + "}"
    assert (
        await client.post("/api/library/sync", data=fine, headers={"Content-Type": "application/json"})
    ).status == 202


async def test_an_overlong_request_line_is_a_json_414_without_traceback(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sidecar.web.errors import AppRunner

    app = create_app(
        make_settings({"LOCAL_MUSIC_DIR": str(tmp_path)}, ai_chat_db_user_name="ai_user_runs"), endpoints
    )
    runner = AppRunner(app, access_log=None)
    await runner.setup()
    try:
        from aiohttp import web

        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/search_tracks?search_query=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        raw = await reader.read(4096)
        writer.close()
    finally:
        await runner.cleanup()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"414" and b"application/json" in head
    assert json.loads(body)["error"] == "request line or header too long"
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info]


async def test_a_busy_port_is_one_line_naming_the_variable() -> None:
    import socket

    from aiohttp import web

    from sidecar.serve import listen as _listen

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    runner = web.AppRunner(web.Application())
    await runner.setup()
    try:
        with pytest.raises(RuntimeError) as err:
            await _listen(web.TCPSite(runner, "127.0.0.1", port), "WEB_PORT", "127.0.0.1", port)
        assert str(err.value).startswith(f"WEB_PORT={port}: ") and "already in use" in str(err.value)
        assert "\n" not in str(err.value)
    finally:
        await runner.cleanup()
        holder.close()


async def test_create_playlist_over_http_never_overwrites_and_counts_what_it_wrote(
    client: TestClient, make_settings: Any, tmp_path: Path
) -> None:
    music = tmp_path / "music"
    make_album(music, "Band", "Lists", 3)
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)})
    provider = LocalProvider(music, settings.playlist_dir)
    (album,) = await provider.list_albums()
    ids = [t.item_id for t in await provider.album_tracks(album.id)]
    settings.playlist_dir.mkdir(parents=True, exist_ok=True)
    mine = settings.playlist_dir / "My Favourites.m3u8"
    mine.write_text("#EXTM3U\nsomething.flac\n")
    resp = await client.post(
        "/api/create_playlist", json={"playlist_name": "My Favourites", "track_ids": ids}
    )
    body = await resp.json()
    assert resp.status == 409 and "not written by this service" in body["detail"], body
    assert mine.read_text() == "#EXTM3U\nsomething.flac\n"
    resp = await client.post(
        "/api/create_playlist", json={"playlist_name": "Evil\n#EXTINF:1,x", "track_ids": ids}
    )
    assert resp.status == 400 and "one line" in (await resp.json())["error"]
    made = {}
    for name in ("Rock/Pop", "Rock?Pop", "Rock:Pop"):
        resp = await client.post(
            "/api/create_playlist", json={"playlist_name": name, "track_ids": ids + ids[:1]}
        )
        body = await resp.json()
        assert resp.status == 201 and body["track_count"] == 3, body
        made[name] = body["playlist_id"]
    assert len(set(made.values())) == 3
    for name, stem in made.items():
        lines = (settings.playlist_dir / f"{stem}.m3u8").read_text().splitlines()
        assert f"#PLAYLIST:{name}" in lines and sum(1 for x in lines if x.endswith(".flac")) == 3
    # the same name again replaces its own file
    resp = await client.post("/api/create_playlist", json={"playlist_name": "Rock/Pop", "track_ids": ids[:1]})
    assert resp.status == 201 and (await resp.json())["playlist_id"] == made["Rock/Pop"]
    await provider.close()


async def test_tracks_gone_from_the_library_are_removed_after_a_complete_listing(
    make_settings: Any, endpoints: Endpoints, tmp_path: Path, client: TestClient
) -> None:
    music = tmp_path / "music"
    make_album(music, "Band", "Stays", 2, start=0)
    leaving = make_album(music, "Band", "Leaves", 2, start=4)
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)})
    db = client.app[DB]

    async def sync(body: dict[str, Any]) -> dict[str, Any]:
        task_id = (await (await client.post("/api/library/sync", json=body)).json())["task_id"]
        await run_workers_until_idle(settings, endpoints)
        task = await tasks.get(db, task_id)
        assert task is not None and task["status"] == "SUCCESS", task
        return task["details"]

    assert (await sync({}))["tracks"] == 4
    gone_ids = [r["item_id"] for r in await db.fetch("SELECT item_id FROM tracks WHERE album = 'Leaves'")]
    await db.execute(
        "INSERT INTO embeddings (item_id, embedding, space, model_version)"
        " VALUES ($1, $2, $2 || array_fill(0::real, ARRAY[204])::vector, 'v')",
        gone_ids[0],
        [0.1] * 200,
    )
    for path in leaving:
        path.unlink()
    # a partial listing (the newest album only) removes nothing
    partial = await sync({"num_recent_albums": 1})
    assert partial["tracks_removed"] == 0 and await db.fetchval("SELECT count(*) FROM tracks") == 4
    complete = await sync({})
    assert complete["tracks_removed"] == 2 and complete["tracks"] == 2
    assert await db.fetchval("SELECT count(*) FROM tracks WHERE item_id = ANY($1::text[])", gone_ids) == 0
    assert await db.fetchval("SELECT count(*) FROM embeddings") == 0  # the analysis went with the track
    # an empty listing (an unmounted folder) removes nothing
    for path in music.rglob("*.flac"):
        path.unlink()
    empty = await sync({})
    assert empty["tracks_removed"] == 0 and await db.fetchval("SELECT count(*) FROM tracks") == 2


async def test_a_run_lists_each_album_once(
    make_settings: Any,
    endpoints: Endpoints,
    tmp_path: Path,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    music = tmp_path / "music"
    make_album(music, "One", "First", 2, start=0)
    make_album(music, "Two", "Second", 2, start=5)
    real = LocalProvider.album_tracks
    asked: list[str] = []

    async def counting(self: LocalProvider, album_id: str) -> list[Track]:
        asked.append(album_id)
        return await real(self, album_id)

    monkeypatch.setattr(LocalProvider, "album_tracks", counting)
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)})
    task_id = (await (await client.post("/api/analysis/start", json={})).json())["task_id"]
    await run_workers_until_idle(settings, endpoints)
    task = await tasks.get(client.app[DB], task_id)
    assert task is not None and task["status"] == "SUCCESS" and task["details"]["tracks_analyzed"] == 4
    assert sorted(asked) == sorted(set(asked)) and len(asked) == 2  # the album jobs did not list again
