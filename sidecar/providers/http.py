"""HTTP plumbing shared by the network providers: retries with backoff, error mapping,
bounded streaming downloads into temporary files."""

from __future__ import annotations

import asyncio
import json as json_module
import logging
import os
import random
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from sidecar.providers.base import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderTooLarge,
    ProviderUnavailable,
)

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class HttpClient:
    """One aiohttp session towards one server, with retries and clear errors."""

    def __init__(
        self,
        server: str,
        base_url: str,
        *,
        timeout_s: float,
        retries: int,
        headers: Mapping[str, str] | None = None,
        backoff_s: float = 0.5,
        user_agent: str = "AudioMuse-sidecar/0.1",
    ) -> None:
        self.server = server
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        self._headers = {"User-Agent": user_agent, **(headers or {})}
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _error(self, call: str, status: int, text: str) -> ProviderError:
        detail = f"HTTP {status}" + (f": {text.strip()[:200]}" if text.strip() else "")
        if status in (401, 403):
            return ProviderAuthError(self.server, call, f"credentials rejected ({detail})", status)
        if status == 404:
            return ProviderNotFound(self.server, call, f"not found ({detail})", status)
        if status in RETRY_STATUSES:
            return ProviderUnavailable(self.server, call, detail, status)
        return ProviderError(self.server, call, detail, status)

    async def _with_retries(self, call: str, attempt: Callable[[], Any]) -> Any:
        last: ProviderError | None = None
        for n in range(self.retries + 1):
            if n:
                delay = self.backoff_s * (2 ** (n - 1)) * (0.75 + random.random() / 2)
                log.info(
                    "%s: %s: retry %d/%d in %.1fs after: %s",
                    self.server,
                    call,
                    n,
                    self.retries,
                    delay,
                    last.reason if last else "",
                )
                await asyncio.sleep(delay)
            try:
                return await attempt()
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                last = exc
            except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                last = ProviderUnavailable(self.server, call, f"cannot reach {self.base_url} ({reason})")
        assert last is not None
        raise ProviderUnavailable(
            self.server, call, f"{last.reason} (gave up after {self.retries + 1} attempts)"
        )

    async def request_json(
        self,
        method: str,
        path: str,
        call: str,
        *,
        params: Any = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send a request and decode a JSON answer (None for an empty body)."""

        async def attempt() -> Any:
            async with self.session.request(
                method, self.base_url + path, params=params, json=json, headers=headers
            ) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise self._error(call, resp.status, text)
                if not text.strip():
                    return None
                try:
                    return json_module.loads(text)
                except ValueError:
                    raise ProviderError(self.server, call, f"answer is not JSON: {text[:120]!r}") from None

        return await self._with_retries(call, attempt)

    @asynccontextmanager
    async def download(
        self,
        path: str,
        call: str,
        temp_dir: Path,
        *,
        max_bytes: int,
        params: Any = None,
        suffix: str = "",
        check: Callable[[aiohttp.ClientResponse], Awaitable[None]] | None = None,
    ) -> AsyncIterator[Path]:
        """Stream a body into a temporary file in ``temp_dir``; remove it on exit.

        ``check`` may inspect the response first (Subsonic reports errors in a 200 answer).
        """
        temp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="am-", suffix=suffix, dir=temp_dir)
        os.close(fd)
        target = Path(name)

        async def attempt() -> None:
            async with self.session.get(self.base_url + path, params=params) as resp:
                if resp.status >= 400:
                    raise self._error(call, resp.status, await resp.text(errors="replace"))
                if check is not None:
                    await check(resp)
                length = resp.content_length
                if length is not None and length > max_bytes:
                    raise ProviderTooLarge(
                        self.server,
                        call,
                        f"file is {length} bytes, over the "
                        f"{max_bytes // (1024 * 1024)} MiB limit (MAX_DOWNLOAD_MB)",
                    )
                written = 0
                with target.open("wb") as out:
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        written += len(chunk)
                        if written > max_bytes:
                            raise ProviderTooLarge(
                                self.server,
                                call,
                                f"file exceeds the {max_bytes // (1024 * 1024)} MiB limit (MAX_DOWNLOAD_MB)",
                            )
                        out.write(chunk)

        try:
            await self._with_retries(call, attempt)
            yield target
        finally:
            target.unlink(missing_ok=True)
