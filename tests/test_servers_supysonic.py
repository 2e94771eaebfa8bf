"""A real supysonic (Subsonic API 1.12.0) server runs on loopback and behaves as recorded.

These tests also pin down facts other tests rely on (see the docstring of
``servers/supysonic.py``): auth error codes, unknown-method answers, JSON quirks.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request

import libsonic
import pytest
from audio_factory import (
    DEFAULT_LIBRARY,
    make_corrupt_file,
    make_empty_file,
    make_library,
    make_non_audio_file,
    make_truncated_file,
)
from servers.supysonic import API_VERSION, SupysonicError, SupysonicServer, find_free_port, running_supysonic

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("supy_music")
    return root, make_library(root)


@pytest.fixture(scope="module")
def server(library, tmp_path_factory):
    root, _ = library
    with running_supysonic(root, tmp_path_factory.mktemp("supy_work")) as srv:
        yield srv


def raw(
    srv: SupysonicServer, method: str, *, auth: dict | None = None, headers: dict | None = None, **params
) -> tuple[int, dict, bytes]:
    """GET with explicit query params (auth replaced by ``auth`` when given)."""
    q = dict(srv.auth_params()) if auth is None else dict(auth)
    q.update(params)
    url = f"{srv.rest_url}/{method}.view?{urllib.parse.urlencode(q)}"
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()


def sub(body: bytes) -> dict:
    return json.loads(body)["subsonic-response"]


# ------------------------------------------------------------------ lifecycle


def test_server_started_quickly(server):
    assert server.running
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    assert server.startup_seconds is not None and server.startup_seconds < 15
    print(f"\nsupysonic ping-ready {server.startup_seconds:.2f}s after spawn")
    assert server.last_scan.added_tracks == sum(len(a["tracks"]) for a in DEFAULT_LIBRARY)
    assert server.last_scan.added_albums == len(DEFAULT_LIBRARY)
    assert server.last_scan.errors == []


# ------------------------------------------------------------------ ping / auth


def test_ping_raw_http(server):
    status, headers, body = raw(server, "ping")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert sub(body) == {"status": "ok", "version": API_VERSION}


def test_ping_py_sonic(server):
    assert server.libsonic().ping() is True


def test_hex_encoded_password_and_basic_auth(server):
    enc = "enc:" + server.password.encode().hex()
    status, _, body = raw(
        server, "ping", auth={"u": server.user, "p": enc, "v": API_VERSION, "c": "t", "f": "json"}
    )
    assert status == 200 and sub(body)["status"] == "ok"
    basic = base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
    status, _, body = raw(
        server, "ping", auth={"c": "t", "f": "json"}, headers={"Authorization": "Basic " + basic}
    )
    assert status == 200 and sub(body)["status"] == "ok"


def test_wrong_password_is_error_40_with_http_200(server):
    status, _, body = raw(server, "ping", auth=server.auth_params(password="wrong"))
    assert status == 200
    r = sub(body)
    assert r["status"] == "failed"
    assert r["error"]["code"] == 40
    assert r["error"]["message"] == "Wrong username or password."
    # unknown user: same
    status, _, body = raw(server, "ping", auth=server.auth_params(user="mallory"))
    assert status == 200 and sub(body)["error"]["code"] == 40
    # XML (no f=): also HTTP 200
    status, _, body = raw(server, "ping", auth=server.auth_params(password="wrong", fmt=None))
    assert status == 200 and b'status="failed"' in body and b'code="40"' in body
    # py-sonic maps 40 to CredentialError
    bad = libsonic.Connection(
        f"http://{server.host}", server.user, "wrong", port=server.port, legacyAuth=True
    )
    with pytest.raises(libsonic.errors.CredentialError):
        bad.ping()


def test_token_auth_is_refused_with_code_10(server):
    """supysonic 0.7.9 has no token auth: without ``p`` it answers 10 (missing parameter), not 41."""
    import hashlib

    salt = "c19b2d"
    token = hashlib.md5((server.password + salt).encode()).hexdigest()
    status, _, body = raw(
        server, "ping", auth={"u": server.user, "t": token, "s": salt, "v": "1.13.0", "c": "t", "f": "json"}
    )
    assert status == 200
    r = sub(body)
    assert r["status"] == "failed"
    assert r["error"]["code"] == 10
    assert r["error"]["message"] == "A required parameter is missing."
    # py-sonic's default (token) auth therefore fails with ParameterError
    with pytest.raises(libsonic.errors.ParameterError):
        server.libsonic(legacyAuth=False).ping()


def test_missing_credentials_is_code_10(server):
    status, _, body = raw(server, "ping", auth={"v": API_VERSION, "c": "t", "f": "json"})
    assert status == 200 and sub(body)["error"]["code"] == 10


# ------------------------------------------------------------------ browsing


def test_get_album_list2_newest_lists_all_albums(server):
    r = server.get_json("getAlbumList2", type="newest", size=50)
    albums = r["albumList2"]["album"]
    assert sorted(a["name"] for a in albums) == sorted(a["album"] for a in DEFAULT_LIBRARY)
    for a in albums:
        assert isinstance(a["id"], str) and len(a["id"]) == 36  # UUID string
        assert isinstance(a["artistId"], str)
        assert isinstance(a["songCount"], int) and isinstance(a["duration"], int)
        assert isinstance(a["year"], int)
    # py-sonic sees the same
    via_client = server.libsonic().getAlbumList2("newest", size=50)["albumList2"]["album"]
    assert {a["id"] for a in via_client} == {a["id"] for a in albums}


def test_get_album_list2_paging(server):
    names = [
        a["name"]
        for a in server.get_json("getAlbumList2", type="alphabeticalByName", size=50)["albumList2"]["album"]
    ]
    assert names == sorted(names)
    # default size is 10; size/offset page through the list
    page1 = server.get_json("getAlbumList2", type="alphabeticalByName", size=2, offset=0)["albumList2"][
        "album"
    ]
    page2 = server.get_json("getAlbumList2", type="alphabeticalByName", size=2, offset=2)["albumList2"][
        "album"
    ]
    assert [a["name"] for a in page1 + page2] == names
    # past the end: "albumList2" is an empty object (empty lists are dropped from JSON)
    assert server.get_json("getAlbumList2", type="alphabeticalByName", size=2, offset=99)["albumList2"] == {}
    # missing type -> code 10; unknown type -> code 0
    assert server.get_json("getAlbumList2", check=False)["error"]["code"] == 10
    assert server.get_json("getAlbumList2", type="bogus", check=False)["error"]["code"] == 0


def test_get_album_lists_tracks_with_right_titles(server, library):
    _, tracks = library
    albums = server.get_json("getAlbumList2", type="alphabeticalByName", size=50)["albumList2"]["album"]
    for a in albums:
        r = server.get_json("getAlbum", id=a["id"])["album"]
        expected = [t for t in tracks if t.album == a["name"]]
        songs = sorted(r["song"], key=lambda s: s["track"])
        assert [s["title"] for s in songs] == [t.title for t in expected]
        assert [s["track"] for s in songs] == [t.track_number for t in expected]
        for s, t in zip(songs, expected, strict=True):
            assert s["path"] == t.relpath  # relative to the music folder
            assert s["suffix"] == t.fmt
            assert s["albumId"] == a["id"]
            assert isinstance(s["duration"], int)  # whole seconds (truncated)
            assert isinstance(s["size"], int) and s["size"] == t.path.stat().st_size
            assert isinstance(s["parent"], str) and s["parent"].isdigit()  # folder ids are int strings
            assert s["year"] == t.year and s["genre"] == t.genre
    first = albums[0]
    client_album = server.libsonic().getAlbum(first["id"])["album"]
    assert client_album["name"] == first["name"]


def test_music_folders_and_search3_empty_query(server, library):
    _, tracks = library
    folders = server.get_json("getMusicFolders")["musicFolders"]["musicFolder"]
    assert folders == [{"id": "1", "name": "music"}]
    # an empty query matches everything (songCount defaults to 20)
    songs = server.get_json("search3", query="", songCount=100, albumCount=0, artistCount=0)["searchResult3"][
        "song"
    ]
    assert sorted(s["title"] for s in songs) == sorted(t.title for t in tracks)


# ------------------------------------------------------------------ media


def _song_by_title(server, title):
    songs = server.get_json("search3", query=title)["searchResult3"]["song"]
    return next(s for s in songs if s["title"] == title)


@pytest.mark.parametrize("title", ["Dawn", "Gust", "Adagio", "Loop One"])
def test_download_returns_original_bytes(server, library, title):
    _, tracks = library
    t = next(t for t in tracks if t.title == title)
    song = _song_by_title(server, title)
    status, headers, body = raw(server, "download", id=song["id"])
    assert status == 200
    assert body == t.path.read_bytes()
    assert int(headers["Content-Length"]) == len(body)
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == song["contentType"]
    # Range requests work
    status, headers, part = raw(server, "download", id=song["id"], headers={"Range": "bytes=0-99"})
    assert status == 206 and part == body[:100]
    assert headers["Content-Range"] == f"bytes 0-99/{len(body)}"
    # py-sonic
    resp = server.libsonic().download(song["id"])
    assert resp.read() == body


def test_download_unknown_ids(server):
    r = server.get_json("download", id="00000000-0000-0000-0000-000000000000", check=False)
    assert r["error"]["code"] == 70
    r = server.get_json("download", id="not-a-uuid", check=False)
    assert r["error"]["code"] == 0 and r["error"]["message"] == "Invalid ID"


@pytest.mark.parametrize("method", ["getSimilarSongs2", "getSimilarSongs", "getTopSongs", "getArtistInfo2"])
def test_unimplemented_methods_are_http_404_unknown_method(server, method):
    song = _song_by_title(server, "Dawn")
    status, headers, body = raw(server, method, id=song["id"], artist="Alpha Band")
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    r = sub(body)
    assert r["status"] == "failed"
    assert r["error"] == {"code": 0, "message": "Unknown method"}


def test_get_similar_songs2_via_py_sonic_raises_http_error(server):
    song = _song_by_title(server, "Dawn")
    with pytest.raises(urllib.error.HTTPError) as ei:
        server.libsonic().getSimilarSongs2(song["id"])
    assert ei.value.code == 404


# ------------------------------------------------------------------ harness behaviour


def test_scan_indexes_corrupt_files_and_skips_unreadable(tmp_path):
    music = tmp_path / "music"
    make_library(music, [{"artist": "Solo", "album": "Only", "tracks": ["Good"]}])
    make_empty_file(music / "bad" / "empty.flac")
    make_corrupt_file(music / "bad" / "corrupt.flac")
    make_non_audio_file(music / "bad" / "text.mp3")
    make_truncated_file(music / "bad" / "cut.ogg")
    with running_supysonic(music, tmp_path / "work") as srv:
        scan = srv.last_scan
        # unreadable files are skipped silently (not reported as errors); a file whose
        # header/tags parse is indexed even if its audio is garbage
        assert scan.errors == []
        songs = srv.get_json("search3", query="", songCount=100)["searchResult3"]["song"]
        paths = {s["path"] for s in songs}
        assert {"Solo/Only/01 Good.flac", "bad/corrupt.flac"} <= paths
        assert not paths & {"bad/empty.flac", "bad/text.mp3"}
        # (a truncated file may or may not be indexed, depending on where the cut lands)
        corrupt = next(s for s in songs if s["path"] == "bad/corrupt.flac")
        assert corrupt["album"] == "[non-album tracks]" and corrupt["artist"] == "[unknown]"
        # rescan while running picks up new files
        make_library(music, [{"artist": "Solo", "album": "Later", "tracks": ["New"]}])
        assert srv.scan().added_tracks == 1
        assert srv.get_json("search3", query="New")["searchResult3"]["song"][0]["album"] == "Later"


def test_home_and_env_config_are_ignored_and_stop_reaps(tmp_path, monkeypatch):
    # A developer config that would disable the API if it were read.
    home = tmp_path / "devhome"
    (home / ".config" / "supysonic").mkdir(parents=True)
    poison = "[webapp]\nmount_api = no\n[base]\ndatabase_uri = sqlite:////nonexistent/x.db\n"
    (home / ".supysonic").write_text(poison)
    (home / ".config" / "supysonic" / "supysonic.conf").write_text(poison)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SUPYSONIC_CONFIG", str(home / ".supysonic"))
    music = tmp_path / "music"
    make_library(music, [{"artist": "A", "album": "B", "tracks": 1, "seconds": 0.5}])

    srv = SupysonicServer(music, tmp_path / "work", user="bob", password="pw", extra_users={"carol": "pw2"})
    srv.start()
    pid, port = srv.pid, srv.port
    try:
        assert srv.get_json("ping")["status"] == "ok"
        assert srv.get_json("ping", **srv.auth_params(user="carol", password="pw2"))["status"] == "ok"
        assert (tmp_path / "work" / "supysonic.db").exists()
    finally:
        srv.stop()
    assert not srv.running
    with pytest.raises(ProcessLookupError):  # reaped, not a zombie
        os.kill(pid, 0)
    with pytest.raises(ProcessLookupError):  # whole process group gone
        os.killpg(pid, 0)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    srv.stop()  # idempotent

    # restart reuses the DB (users, scanned tracks) on a fresh port
    srv.start()
    try:
        assert srv.last_scan.added_tracks == 0
        assert len(srv.get_json("search3", query="", songCount=10)["searchResult3"]["song"]) == 1
    finally:
        srv.stop()


def test_startup_failure_reports_server_stderr(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        srv = SupysonicServer(music, tmp_path / "work", port=port, startup_timeout=20)
        with pytest.raises(SupysonicError) as ei:
            srv.start()
    assert not srv.running
    msg = str(ei.value)
    assert "exited with code" in msg
    assert "stderr" in msg and "address" in msg.lower()


def test_find_free_port_is_bindable():
    port = find_free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
