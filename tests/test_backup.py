"""Backup and restore of the analysis (sidecar/backup/): real audio analysed by the real
pipeline, exported, and imported into a fresh database where the same files have new ids
(a reinstalled media server), by fingerprint, path and tags; corrupt files refused with
nothing changed; the same over the API and the command line."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from scratch_db import scratch_database
from test_analysis import make_album

from sidecar.app import create_app
from sidecar.backup import format as fmt
from sidecar.backup.export import export_analysis
from sidecar.backup.fingerprint import file_fingerprint
from sidecar.backup.importer import ImportBusy, import_analysis
from sidecar.backup.model_version import installed_model_version
from sidecar.db import create_pool
from sidecar.db.analysis import store_result, tracks_to_analyse
from sidecar.db.backup import IMPORT_LOCK_KEY
from sidecar.db.tracks import upsert_tracks
from sidecar.embedded.postgres import EmbeddedPostgres
from sidecar.ml.pipeline import AnalysisParams, analyze_path, model_version
from sidecar.ml.result import TrackAnalysis
from sidecar.providers.base import Track
from sidecar.providers.local import LocalProvider
from sidecar.services import Endpoints

PARAMS = AnalysisParams(max_patches=3)
VERSION = installed_model_version(None)

Analysed = list[tuple[Track, TrackAnalysis]]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Analysed:
    """Five real tracks in two albums, analysed once for the module by the real pipeline."""
    root = tmp_path_factory.mktemp("backup-music")
    make_album(root, "Alpha", "First Light", 3, seconds=6.0)
    make_album(root, "Beta", "Second Wind", 2, seconds=6.0, start=3)
    import asyncio

    provider = LocalProvider(root, root / "playlists")
    tracks = asyncio.run(_all_tracks(provider))
    return [(t, analyze_path(Path(t.file_path or ""), PARAMS)) for t in tracks]


async def _all_tracks(provider: LocalProvider) -> list[Track]:
    out = []
    for album in await provider.list_albums():
        out.extend(await provider.album_tracks(album.id))
    return sorted(out, key=lambda t: t.title)


async def store_analysed(db: asyncpg.Pool, analysed: Analysed) -> None:
    await upsert_tracks(db, "local", [t for t, _ in analysed])
    for t, result in analysed:
        await store_result(db, t.item_id, result)


async def export_bytes(db: asyncpg.Pool, provider: str = "local") -> bytes:
    out: list[bytes] = []

    async def write(data: bytes) -> None:
        out.append(data)

    await export_analysis(db, provider, VERSION, write)
    return b"".join(out)


async def chunks(data: bytes, size: int = 997) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest_asyncio.fixture
async def fresh(pg_cluster: EmbeddedPostgres, tmp_path: Path) -> AsyncIterator[asyncpg.Pool]:
    """A second, empty installation on the same cluster."""
    async with scratch_database(pg_cluster, f"fresh_{tmp_path.name[-20:]}", migrated=True) as dsn:
        pool = await create_pool(dsn, min_size=1, max_size=3)
        try:
            yield pool
        finally:
            await pool.close()


def renamed(t: Track, **changes: Any) -> Track:
    """The same file as a media server that re-created its ids lists it."""
    return dataclasses.replace(t, **{"item_id": "new-" + t.item_id, **changes})


async def analysis_state(db: asyncpg.Pool) -> list[tuple[Any, ...]]:
    rows = await db.fetch(
        """SELECT t.item_id, t.analysis_status, t.model_version, a.tempo, a.key, a.tags, a.moods,
                  e.embedding::text AS emb, e.mtt_embedding::text AS mtt
           FROM tracks t LEFT JOIN track_analysis a USING (item_id) LEFT JOIN embeddings e USING (item_id)
           ORDER BY t.item_id"""
    )
    return [tuple(r) for r in rows]


def test_the_installed_model_version_is_the_pipelines() -> None:
    assert VERSION is not None
    assert VERSION == model_version(PARAMS)


def test_fingerprint_is_of_the_content_not_the_name(tmp_path: Path) -> None:
    a = tmp_path / "a.bin"
    a.write_bytes(bytes(range(256)) * 1000)
    b = tmp_path / "elsewhere" / "b.bin"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    assert file_fingerprint(a) == file_fingerprint(b)
    data = bytearray(a.read_bytes())
    data[len(data) // 2] ^= 1  # one bit in the middle window
    b.write_bytes(bytes(data))
    assert file_fingerprint(a) != file_fingerprint(b)
    assert file_fingerprint(a).startswith(f"v1:{len(data)}:")


async def test_round_trip_into_a_fresh_installation_where_ids_changed(
    db: asyncpg.Pool, fresh: asyncpg.Pool, analysed: Analysed
) -> None:
    await store_analysed(db, analysed)
    data = await export_bytes(db)
    lines = gzip.decompress(data).decode().splitlines()
    head, end = json.loads(lines[0]), json.loads(lines[-1])
    assert (
        head["format"] == "audiomuse-analysis" and head["version"] == 1 and head["model_version"] == VERSION
    )
    assert end == {"end": True, "records": len(analysed)}
    first = json.loads(lines[1])
    assert first["fingerprint"] == file_fingerprint(first["path"])  # stored at analysis time
    assert "content_fingerprint" not in first["analysis"]["features"]

    # the new installation lists the same files under new ids, before any analysis
    await upsert_tracks(fresh, "local", [renamed(t) for t, _ in analysed])
    new_ids = ["new-" + t.item_id for t, _ in analysed]
    assert await tracks_to_analyse(fresh, new_ids, VERSION or "") == new_ids

    report = (await import_analysis(fresh, chunks(data), VERSION)).as_json()
    assert report["records"] == report["imported"] == len(analysed), report
    assert report["matched_by"] == {"fingerprint": len(analysed), "item_id": 0, "path": 0, "tags": 0}
    assert report["not_imported"] == 0 and report["reasons"] == []
    assert await tracks_to_analyse(fresh, new_ids, VERSION or "") == []  # no re-analysis

    # every value came across exactly, under the new ids
    before = {r[0]: r[1:] for r in await analysis_state(db)}
    after = {r[0].removeprefix("new-"): r[1:] for r in await analysis_state(fresh)}
    assert before == after
    # mixes find the imported tracks at once: they are placed in the similarity space
    assert await fresh.fetchval("SELECT count(*) FROM embeddings WHERE space IS NOT NULL") == len(analysed)

    # idempotent: the same file again changes nothing
    again = (await import_analysis(fresh, chunks(data), VERSION)).as_json()
    assert again["imported"] == 0 and again["unchanged"] == len(analysed), again
    assert {r[0].removeprefix("new-"): r[1:] for r in await analysis_state(fresh)} == before

    # and the fresh installation's own export carries the same analysis
    relines = gzip.decompress(await export_bytes(fresh)).decode().splitlines()
    strip = {"item_id", "analyzed_at"}
    assert [{k: v for k, v in json.loads(x).items() if k not in strip} for x in relines[1:-1]] == [
        {k: v for k, v in json.loads(x).items() if k not in strip} for x in lines[1:-1]
    ]


async def test_without_fingerprints_tracks_match_by_id_path_and_tags_and_the_rest_is_explained(
    db: asyncpg.Pool, fresh: asyncpg.Pool, analysed: Analysed
) -> None:
    await store_analysed(db, analysed)
    data = await export_bytes(db)
    (a, _), (b, _), (c, _), (d, _), (e, _) = analysed
    # a media server (not the local folder: nothing to fingerprint here) with the library elsewhere
    elsewhere = "/srv/media/" + "/".join(Path(b.file_path or "").parts[-3:])
    await upsert_tracks(
        fresh,
        "navidrome",
        [
            dataclasses.replace(a, file_path="/x/" + a.item_id),  # same id, same tags: the id
            renamed(b, file_path=elsewhere, title="renamed by the server"),  # same path tail
            renamed(c, file_path="/other/layout/c.flac"),  # same title, artist, album, duration
            renamed(d, item_id="copy-1", file_path="/1.flac"),  # d twice: ambiguous
            renamed(d, item_id="copy-2", file_path="/2.flac"),
            # e is not in this library at all; an unrelated song re-uses its id
            Track(item_id=e.item_id, title="Other", artist="Someone", album="Else", file_path="/o.flac"),
        ],
    )
    report = (await import_analysis(fresh, chunks(data), VERSION)).as_json()
    assert report["matched_by"] == {"fingerprint": 0, "item_id": 1, "path": 1, "tags": 1}, report
    assert report["imported"] == 3 and report["not_imported"] == 2
    reasons = {r["reason"]: r for r in report["reasons"]}
    assert reasons["ambiguous"]["count"] == 1 and reasons["ambiguous"]["examples"][0]["title"] == d.title
    assert reasons["no_match"]["count"] == 1 and reasons["no_match"]["examples"][0]["item_id"] == e.item_id
    assert reasons["no_match"]["meaning"] and reasons["no_match"]["examples"][0]["line"] >= 2
    status = {r["item_id"]: r["analysis_status"] for r in await fresh.fetch("SELECT * FROM tracks")}
    assert status == {
        a.item_id: "analyzed",
        "new-" + b.item_id: "analyzed",
        "new-" + c.item_id: "analyzed",
        "copy-1": "pending",
        "copy-2": "pending",
        e.item_id: "pending",  # the re-used id was not taken for the song it names here
    }
    # a fingerprint is kept only where it proved the file: none here
    assert not await fresh.fetchval(
        "SELECT count(*) FROM track_analysis WHERE features ? 'content_fingerprint'"
    )


async def test_records_of_another_model_version_are_not_imported(
    db: asyncpg.Pool, fresh: asyncpg.Pool, analysed: Analysed
) -> None:
    await store_analysed(db, analysed[:2])
    data = await export_bytes(db)
    await upsert_tracks(fresh, "local", [renamed(t) for t, _ in analysed[:2]])
    report = (await import_analysis(fresh, chunks(data), "musicnn-other/p9")).as_json()
    assert report["imported"] == 0
    assert report["reasons"][0]["reason"] == "other_model_version" and report["reasons"][0]["count"] == 2


async def test_an_empty_library_is_told_to_sync_first(
    db: asyncpg.Pool, fresh: asyncpg.Pool, analysed: Analysed
) -> None:
    await store_analysed(db, analysed[:1])
    report = (await import_analysis(fresh, chunks(await export_bytes(db)), VERSION)).as_json()
    assert report["tracks_in_library"] == 0 and "audiomuse sync" in report["hint"]


def _gz(lines: list[str]) -> bytes:
    return gzip.compress(("\n".join(lines) + "\n").encode())


async def test_corrupt_or_mismatched_files_are_refused_and_nothing_changes(
    db: asyncpg.Pool, fresh: asyncpg.Pool, analysed: Analysed
) -> None:
    await store_analysed(db, analysed)
    good = await export_bytes(db)
    lines = gzip.decompress(good).decode().splitlines()
    await upsert_tracks(fresh, "local", [renamed(t) for t, _ in analysed])
    before = await analysis_state(fresh)
    bad_embedding = json.loads(lines[3])
    bad_embedding["embedding"] = bad_embedding["embedding"][:200]
    newer = json.loads(lines[0]) | {"version": 2}
    nul = json.dumps(json.loads(lines[2]) | {"title": "a\x00b"})
    huge = json.loads(lines[2])
    huge["analysis"]["energy"] = 1e308
    deep = lines[2][:-1] + ', "extra": ' + "[" * 100_000 + "]" * 100_000 + "}"
    cases = {
        "truncated": (good[: len(good) * 2 // 3], "truncated"),
        "corrupt gzip": (good[:40] + bytes(64) + good[104:], "corrupt"),
        "cut at a line": (_gz(lines[:-2]), "no end line"),
        "a line lost": (_gz(lines[:2] + lines[3:]), "the end line counts"),
        "not a backup": (_gz(['{"hello": 1}', *lines[1:]]), "line 1: not an AudioMuse analysis backup"),
        "newer format": (_gz([json.dumps(newer), *lines[1:]]), "line 1: format version 2 is newer"),
        "bad record": (_gz([*lines[:3], json.dumps(bad_embedding), *lines[4:]]), "line 4: embedding has"),
        "not json": (_gz([*lines[:2], "{oops", *lines[2:]]), "line 3: not JSON"),
        "NUL": (_gz([*lines[:2], nul, *lines[3:]]), "line 3: a NUL character"),
        "infinite": (
            _gz([*lines[:2], json.dumps(huge).replace("1e+308", "1e999"), *lines[3:]]),
            "line 3: energy",
        ),
        "too deep": (_gz([*lines[:2], deep, *lines[3:]]), "line 3: JSON nested too deeply"),
        "empty": (b"", "the file is empty"),
    }
    for name, (data, problem) in cases.items():
        with pytest.raises(fmt.FormatError) as caught:
            await import_analysis(fresh, chunks(data), VERSION)
        assert problem in str(caught.value), (name, str(caught.value))
        assert await analysis_state(fresh) == before, name  # the valid records before it were not kept
    # plain (not compressed) JSON lines are read too
    report = await import_analysis(fresh, chunks(gzip.decompress(good)), VERSION, dry_run=True)
    assert report.imported == len(analysed) and report.dry_run
    assert await analysis_state(fresh) == before  # a dry run changes nothing


async def test_one_import_at_a_time(db: asyncpg.Pool, analysed: Analysed) -> None:
    await store_analysed(db, analysed[:1])
    data = await export_bytes(db)
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", IMPORT_LOCK_KEY)
        with pytest.raises(ImportBusy):
            await import_analysis(db, chunks(data), VERSION)


@pytest_asyncio.fixture
async def client(make_settings: Any, endpoints: Endpoints, tmp_path: Path) -> AsyncIterator[TestClient]:
    music = tmp_path / "music"
    music.mkdir(exist_ok=True)
    c = TestClient(TestServer(create_app(make_settings({"LOCAL_MUSIC_DIR": str(music)}), endpoints)))
    await c.start_server()
    yield c
    await c.close()


async def test_over_the_api(
    client: TestClient, db: asyncpg.Pool, fresh: asyncpg.Pool, analysed: Analysed
) -> None:
    await store_analysed(db, analysed)
    resp = await client.get("/api/analysis/export")
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/gzip"
    assert ".jsonl.gz" in resp.headers["Content-Disposition"]
    data = await resp.read()
    assert json.loads(gzip.decompress(data).splitlines()[-1]) == {"end": True, "records": len(analysed)}

    resp = await client.post("/api/analysis/import", data=data)
    report = await resp.json()
    assert resp.status == 200 and report["unchanged"] == len(analysed) and report["imported"] == 0, report

    before = await analysis_state(db)
    resp = await client.post("/api/analysis/import", data=data[: len(data) // 2])
    body = await resp.json()
    assert resp.status == 400 and body["error"] == "import refused, nothing was changed"
    assert "truncated" in body["detail"]["problem"]
    resp = await client.post("/api/analysis/import?dry_run=maybe", data=data)
    assert resp.status == 400
    assert await analysis_state(db) == before


def test_on_the_command_line(
    db_dsn: str,
    redis_url: str,
    analysed: Analysed,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    import asyncio

    from sidecar.cli import main

    async def prepare() -> None:
        pool = await create_pool(db_dsn, min_size=1, max_size=2)
        try:
            await store_analysed(pool, analysed)
        finally:
            await pool.close()

    asyncio.run(prepare())
    (tmp_path / "music").mkdir()
    for name, value in {
        "DATABASE_URL": db_dsn,
        "REDIS_URL": redis_url,
        "AUDIOMUSE_DATA_DIR": str(tmp_path / "data"),
        "LOCAL_MUSIC_DIR": str(tmp_path / "music"),
    }.items():
        monkeypatch.setenv(name, value)
    target = tmp_path / "backup.jsonl.gz"
    assert main(["export", str(target)]) == 0
    assert f"exported {len(analysed)} analysed tracks" in capsys.readouterr().err
    assert not Path(str(target) + ".partial").exists()
    assert main(["import", str(target)]) == 0
    assert f"imported 0 of {len(analysed)} records ({len(analysed)} already there" in capsys.readouterr().out
    target.write_bytes(target.read_bytes()[:-30])
    assert main(["import", str(target)]) == 1
    assert "import refused, nothing was changed" in capsys.readouterr().err


def test_embeddings_travel_exactly() -> None:
    v = np.random.default_rng(3).normal(size=200).astype(np.float32)
    assert np.array_equal(fmt.decode_embedding(fmt.encode_embedding(v), 2), v)
    with pytest.raises(fmt.FormatError, match="line 7: embedding holds non-finite"):
        fmt.decode_embedding(fmt.encode_embedding(np.full(200, np.nan, np.float32)), 7)
