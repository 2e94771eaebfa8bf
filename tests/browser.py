"""Helpers of the browser tests: Debian's Chromium driven by Playwright (no browser download),
pages watched for console errors and failed requests, screenshots at desktop and phone width,
and the web app served from the test's event loop."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from sidecar.app import create_app
from sidecar.services import Endpoints

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def require_chromium() -> str:
    """The Chromium binary; fail (root: CI installs it) or skip (not root) when it is missing."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if os.geteuid() == 0:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (as .ci/run does)")
    pytest.skip(
        f"{CHROMIUM} is missing and this user is not root to install it (apt-get install -y chromium)"
    )


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    path = require_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Problems:
    """Console errors, page errors, failed requests and 4xx/5xx answers seen by a page."""

    seen: list[str] = field(default_factory=list)
    #: answers expected by the test (status, URL regex): not problems
    allowed: list[tuple[int, re.Pattern[str]]] = field(default_factory=list)

    def allow(self, status: int, url_pattern: str) -> None:
        self.allowed.append((status, re.compile(url_pattern)))

    def _is_allowed(self, status: int, url: str) -> bool:
        return any(s == status and p.search(url) for s, p in self.allowed)

    def on_console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        text = msg.text
        # Chromium logs each 4xx/5xx answer as a console error too: judged by on_response
        if text.startswith("Failed to load resource: the server responded with a status of"):
            return
        self.seen.append(f"console: {text}")

    def on_response(self, response: Any) -> None:
        if response.status >= 400 and not self._is_allowed(response.status, response.url):
            self.seen.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def on_failed(self, request: Any) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" in failure:  # a poll cut short by leaving the page
            return
        self.seen.append(f"request failed: {request.method} {request.url}: {failure}")

    def clear(self) -> None:
        self.seen.clear()


async def new_page(
    browser: Any, viewport: dict[str, int] | None = None, **context: Any
) -> tuple[Any, Problems]:
    """A page in a fresh context (own cookies), watched for problems."""
    ctx = await browser.new_context(viewport=viewport or DESKTOP, **context)
    page = await ctx.new_page()
    problems = Problems()
    page.on("console", problems.on_console)
    page.on("pageerror", lambda exc: problems.seen.append(f"page error: {exc}"))
    page.on("response", problems.on_response)
    page.on("requestfailed", problems.on_failed)
    return page, problems


async def screenshot(page: Any, name: str, full_page: bool = True) -> Path:
    """test-output/screenshots/<name>.png (the whole page, or what the viewport shows)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


@asynccontextmanager
async def served(settings: Any, endpoints: Endpoints) -> AsyncIterator[TestServer]:
    """The web app on a free loopback port, in this event loop."""
    server = TestServer(create_app(settings, endpoints), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


#: names for synthetic libraries that read like music in screenshots
_ADJ = "Velvet Silver Quiet Electric Golden Midnight Paper Neon Hollow Wild Northern Crystal".split()
_NOUN = "Harbor Owls Rivers Lanterns Echoes Foxes Static Gardens Comets Tides Engines Mirrors".split()
_WORDS = (
    "Blue Morning Light Rain Dance Slow Fire Home Summer Ghost Road Heart Night City Dream "
    "Falling Open Water Glass Shadows Stars Run Gold Wires Coast"
).split()


def artist_name(i: int) -> str:
    return f"The {_ADJ[i % len(_ADJ)]} {_NOUN[(i // len(_ADJ)) % len(_NOUN)]}"


def song_title(i: int) -> str:
    a, b = _WORDS[i % len(_WORDS)], _WORDS[(i * 7 + 3) % len(_WORDS)]
    return f"{a} {b}" if a != b else a
