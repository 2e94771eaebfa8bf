"""The OpenAPI document (/openapi.json): valid OpenAPI 3.1, one entry per route of the web app,
and parameters that are the handlers' own (read from their source, so they cannot drift)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from sidecar.app import create_app
from sidecar.openapi import app_routes, build_document
from sidecar.openapi.introspect import handler_reads
from sidecar.openapi.operations import OPERATIONS
from sidecar.routes.params import bool_param, int_param, list_param, str_param
from sidecar.services import Endpoints

LIMIT_MAX = 77


def _offline_app(make_settings: Any) -> web.Application:
    """The app as configured, not started (no database needed to list its routes)."""
    return create_app(make_settings(), Endpoints("postgresql://u@127.0.0.1:1/x", "redis://127.0.0.1:1"))


@pytest.fixture
def document(make_settings: Any) -> dict[str, Any]:
    return build_document(app_routes(_offline_app(make_settings)))


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_route_has_an_entry_and_every_entry_a_route(make_settings: Any) -> None:
    routes = {f"{m} {p}" for m, p, _ in app_routes(_offline_app(make_settings))}
    assert routes, "the app has no routes?"
    missing = sorted(routes - set(OPERATIONS))
    assert not missing, f"routes without an entry in sidecar/openapi/operations.py: {missing}"
    stale = sorted(set(OPERATIONS) - routes)
    assert not stale, f"entries in sidecar/openapi/operations.py for routes that do not exist: {stale}"


def test_entries_describe_only_what_the_handlers_read(make_settings: Any) -> None:
    for method, path, handler in app_routes(_offline_app(make_settings)):
        op = OPERATIONS.get(f"{method} {path}")
        if op is None:
            continue  # reported by test_every_route_has_an_entry_and_every_entry_a_route
        reads = handler_reads(handler)
        unknown = set(op.params) - set(reads.query)
        assert not unknown, (
            f"{method} {path}: the entry describes parameters the handler does not read: {unknown}"
        )
        unread = set(op.body) - set(reads.body_keys)
        assert not unread, (
            f"{method} {path}: the entry describes body keys the handler does not read: {unread}"
        )


def test_documented_parameters_match_the_handlers(document: dict[str, Any]) -> None:
    sim = {p["name"]: p for p in document["paths"]["/api/similar_tracks"]["get"]["parameters"]}
    assert sim["n"]["schema"] == {"type": "integer", "default": 10, "minimum": 1, "maximum": 500}
    assert "SIMILARITY_ELIMINATE_DUPLICATES_DEFAULT" in sim["eliminate_duplicates"]["description"]
    path = {p["name"]: p for p in document["paths"]["/api/find_path"]["get"]["parameters"]}
    assert path["start_song_id"]["required"] and path["end_song_id"]["required"]
    assert path["max_steps"]["schema"]["maximum"] == 200
    # helpers of the module are followed: _window() of the search handlers
    albums = {p["name"] for p in document["paths"]["/api/search_albums"]["get"]["parameters"]}
    assert {"query", "search_query", "start", "end"} <= albums
    status = document["paths"]["/api/status/{task_id}"]["get"]["parameters"]
    assert status[0] == {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
    body = document["paths"]["/api/create_playlist"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["properties"]) == {"playlist_name", "track_ids"}


async def _sample_handler(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 5, 1, LIMIT_MAX)
    names = list_param(request, "names")
    return web.json_response([limit, names, _more(request)])


def _more(request: web.Request) -> Any:
    return bool_param(request, "loud", False), str_param(request, "who", required=True)


def test_a_parameter_changed_in_a_handler_changes_the_document() -> None:
    """The document is the handler's code: no second declaration to forget."""
    doc = build_document([("GET", "/api/sample", _sample_handler)])
    params = {p["name"]: p for p in doc["paths"]["/api/sample"]["get"]["parameters"]}
    assert params["limit"]["schema"] == {"type": "integer", "default": 5, "minimum": 1, "maximum": LIMIT_MAX}
    assert params["names"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert params["loud"]["schema"] == {"type": "boolean", "default": False}
    assert params["who"]["required"] is True
    assert doc["paths"]["/api/sample"]["get"]["tags"] == ["undocumented"]


@pytest_asyncio.fixture
async def client(make_settings: Any, endpoints: Endpoints, tmp_path: Path) -> AsyncIterator[TestClient]:
    (tmp_path / "music").mkdir()
    app = create_app(
        make_settings({"LOCAL_MUSIC_DIR": str(tmp_path / "music")}, ai_chat_db_user_name="ai_user_oas"),
        endpoints,
    )
    c = TestClient(TestServer(app))
    await c.start_server()
    yield c
    await c.close()


async def test_the_served_document_holds_every_route(client: TestClient) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    served = await resp.json()
    validate(served)
    expected = {f"{m} {p}" for m, p, _ in app_routes(client.app)}
    got = {f"{m.upper()} {p}" for p, ops in served["paths"].items() for m in ops}
    assert got == expected


async def test_the_documented_bounds_are_the_ones_the_api_enforces(client: TestClient) -> None:
    """Each GET operation without path parameters: one above a documented integer maximum and a
    missing required parameter are refused with 400 naming the parameter."""
    doc = await (await client.get("/openapi.json")).json()
    checked = 0
    for path, ops in doc["paths"].items():
        op = ops.get("get")
        if op is None or "{" in path:
            continue
        params = op.get("parameters", [])
        required = {p["name"]: "x" for p in params if p.get("required")}
        for p in params:
            top = p["schema"].get("maximum")
            if p["schema"]["type"] != "integer" or top is None:
                continue
            resp = await client.get(path, params={**required, p["name"]: str(top + 1)})
            if resp.status == 400 and p["name"] not in (await resp.json())["error"]:
                # one of several optional names is needed (query or search_query): give them all
                given = {q["name"]: "x" for q in params if q["schema"]["type"] == "string"}
                resp = await client.get(path, params={**given, p["name"]: str(top + 1)})
            assert resp.status == 400, (path, p["name"], resp.status)
            assert p["name"] in (await resp.json())["error"], (path, p["name"])
            checked += 1
        for name in required:
            resp = await client.get(path, params={k: v for k, v in required.items() if k != name})
            assert resp.status == 400, (path, name, resp.status)
            checked += 1
    assert checked >= 8


async def test_the_apidocs_page_lists_every_operation_and_sends_requests(client: TestClient) -> None:
    from playwright.async_api import async_playwright

    doc = await (await client.get("/openapi.json")).json()
    count = sum(len(ops) for ops in doc["paths"].values())
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page()
            errors: list[str] = []
            # the 400 asked for below is logged by Chromium as a failed resource: not an error here
            page.on(
                "console",
                lambda m: (
                    errors.append(m.text) if m.type == "error" and "status of 400" not in m.text else None
                ),
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(str(client.make_url("/apidocs")))
            await page.wait_for_selector("details.api-op")
            assert await page.locator("details.api-op").count() == count
            # try it out: a GET with a bounded parameter, then the same with a value out of bounds
            op = page.locator("details[data-op='GET /api/library/failed']")
            await op.locator("summary").click()
            await op.locator("input[data-param='query:end']").fill("10")
            await op.locator("button[type=submit]").click()
            await op.locator("[data-status='200']").wait_for()
            assert '"total": 0' in await op.locator("pre.response").inner_text()
            await op.locator("input[data-param='query:end']").fill("100000")
            await op.locator("button[type=submit]").click()
            await op.locator("[data-status='400']").wait_for()
            assert "end must be between" in await op.locator("pre.response").inner_text()
            # a POST carries the page's CSRF header and the JSON body
            post = page.locator("details[data-op='POST /api/map/compute']")
            await post.locator("summary").click()
            await post.locator("button[type=submit]").click()
            await post.locator("[data-status='202']").wait_for()
            # the filter
            await page.fill("#apidocs-filter", "/api/similar_tracks")
            await page.wait_for_function("document.querySelectorAll('details.api-op').length === 1")
            assert await page.locator("details.api-op").get_attribute("data-op") == "GET /api/similar_tracks"
            assert not errors, errors
        finally:
            await browser.close()
