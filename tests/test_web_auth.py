"""The web admin's sign-in, session cookie and CSRF check, over HTTP (no browser): the real app
on the embedded PostgreSQL and Valkey."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.services import Endpoints
from sidecar.web.auth import SESSION_COOKIE, SessionSigner, exposure_warning

TOKEN = "web-admin-secret-token"


@pytest.fixture
def music(tmp_path: Path) -> Path:
    (tmp_path / "music").mkdir()
    return tmp_path / "music"


PAGES = ("/", "/analysis", "/similarity", "/path", "/chat", "/playlists", "/settings")


async def _client(settings: Any, endpoints: Endpoints) -> TestClient:
    client = TestClient(TestServer(create_app(settings, endpoints)))
    await client.start_server()
    return client


@pytest_asyncio.fixture
async def open_client(make_settings: Any, endpoints: Endpoints, music: Path) -> AsyncIterator[TestClient]:
    settings = make_settings({"LOCAL_MUSIC_DIR": str(music)}, ai_chat_db_user_name="ai_user_web")
    c = await _client(settings, endpoints)
    yield c
    await c.close()


@pytest_asyncio.fixture
async def guarded(make_settings: Any, endpoints: Endpoints, music: Path) -> AsyncIterator[TestClient]:
    settings = make_settings(
        {"LOCAL_MUSIC_DIR": str(music), "API_TOKEN": TOKEN, "OPENAI_API_KEY": "sk-hidden-key"},
        ai_chat_db_user_name="ai_user_web",
    )
    c = await _client(settings, endpoints)
    yield c
    await c.close()


async def test_every_page_renders_without_a_token(open_client: TestClient) -> None:
    for path in PAGES:
        resp = await open_client.get(path)
        text = await resp.text()
        assert resp.status == 200, path
        assert resp.content_type == "text/html" and "<nav" in text and 'href="/analysis"' in text
    css = await open_client.get("/static/app.css")
    assert css.status == 200 and "text/css" in css.content_type
    assert (await open_client.get("/login", allow_redirects=False)).status == 303  # nothing to sign in to


async def _sign_in(client: TestClient) -> str:
    resp = await client.post("/login", data={"token": TOKEN, "next": "/settings"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/settings"
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    page = await (await client.get("/settings")).text()
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert match and match.group(1)
    return match.group(1)


async def test_pages_need_a_session_when_a_token_is_set(guarded: TestClient) -> None:
    for path in PAGES:
        resp = await guarded.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login?next="), path
    form = await guarded.get("/login?next=/chat")
    assert form.status == 200 and 'name="token"' in await form.text()
    wrong = await guarded.post("/login", data={"token": "nope", "next": "/"}, allow_redirects=False)
    assert wrong.status == 401 and SESSION_COOKIE not in wrong.cookies
    assert (await guarded.get("/static/app.css")).status == 200
    assert (await guarded.get("/healthz")).status == 200
    await _sign_in(guarded)
    for path in PAGES:
        resp = await guarded.get(path, allow_redirects=False)
        assert resp.status == 200, path
        text = await resp.text()
        assert TOKEN not in text and "sk-hidden-key" not in text, path


async def test_login_never_redirects_to_another_site(guarded: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        resp = await guarded.post("/login", data={"token": TOKEN, "next": target}, allow_redirects=False)
        assert resp.headers["Location"] == "/", target


async def test_the_session_uses_the_api_with_a_csrf_header_on_unsafe_methods(guarded: TestClient) -> None:
    assert (await guarded.get("/api/library/stats")).status == 401
    csrf = await _sign_in(guarded)
    assert (await guarded.get("/api/library/stats")).status == 200  # safe: the cookie is enough
    refused = await guarded.post("/api/analysis/start", json={"num_recent_albums": 1})
    assert refused.status == 403 and (await refused.json())["error"] == "CSRF token missing or wrong"
    wrong = await guarded.post("/api/analysis/start", json={}, headers={"X-CSRF-Token": csrf[:-2] + "xx"})
    assert wrong.status == 403
    chat = await guarded.post("/chat/api/chatPlaylist", json={"userInput": "x"})
    assert chat.status == 403
    ok = await guarded.post(
        "/api/clustering/start", json={"clustering_method": "nope"}, headers={"X-CSRF-Token": csrf}
    )
    assert ok.status == 400  # through to the handler, which validates the body
    # handlers that check the bearer token themselves (the chat's) take the session too
    chat = await guarded.post("/api/chat/playlist", json={"userInput": ""}, headers={"X-CSRF-Token": csrf})
    assert chat.status == 400 and (await chat.json())["error"] == "userInput is required"
    made = await guarded.post(
        "/chat/api/create_playlist",
        json={"playlist_name": "", "item_ids": []},
        headers={"X-CSRF-Token": csrf},
    )
    assert made.status == 400
    out = await guarded.post("/logout", headers={"X-CSRF-Token": csrf})
    assert out.status == 200
    assert (await guarded.get("/api/library/stats")).status == 401


async def test_the_bearer_token_still_works_without_a_session(guarded: TestClient) -> None:
    resp = await guarded.post(
        "/api/clustering/start",
        json={"clustering_method": "nope"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert resp.status == 400


def test_session_cookies_are_signed_and_expire() -> None:
    signer = SessionSigner(TOKEN)
    cookie = signer.issue(now=1_000_000)
    session = signer.verify(cookie, now=1_000_001)
    assert session is not None
    assert signer.verify(cookie, now=1_000_000 + 15 * 24 * 3600) is None  # expired
    assert SessionSigner("another-token").verify(cookie, now=1_000_001) is None  # token changed
    sid, expiry, sig = cookie.split(".")
    assert signer.verify(f"{sid}.{int(expiry) + 999}.{sig}", now=1_000_001) is None  # tampered
    assert signer.csrf(session) != SessionSigner("another-token").csrf(session)


def test_an_open_service_on_the_network_warns(make_settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert exposure_warning(make_settings({"WEB_HOST": "127.0.0.1"})) is None
    assert exposure_warning(make_settings({"WEB_HOST": "::1"})) is None
    assert exposure_warning(make_settings({"WEB_HOST": "0.0.0.0", "API_TOKEN": "x"})) is None
    warning = exposure_warning(make_settings({"WEB_HOST": "0.0.0.0"}))
    assert warning is not None and "API_TOKEN" in str(warning) and "0.0.0.0" in str(warning)
    with caplog.at_level(logging.WARNING, logger="sidecar.web.auth"):
        create_app(make_settings({"WEB_HOST": "0.0.0.0"}), Endpoints("postgresql://x/y", "redis://x/0"))
    assert any("API_TOKEN is not set" in r.getMessage() for r in caplog.records)
