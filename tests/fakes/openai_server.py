"""A scripted OpenAI-compatible chat server on loopback, speaking real HTTP.

``POST /v1/chat/completions`` answers from a queue of scripted behaviours, one per request::

    async with FakeOpenAI([Answer("Velvet Midnight Hours"), Status(500)]) as server:
        ...                               # point the code under test at server.base_url
        assert len(server.requests) == 1
        server.assert_no_violations()

Behaviours: :class:`Answer` (a chat completion whose content is the given text, optionally after
a delay: thinking blocks and garbage are just texts), :class:`Status` (an HTTP error with
OpenAI's error body), :class:`Malformed` (a 200 whose body is not JSON).  An empty queue answers
500 and records a violation.

Contract checks, both ways:

* every request must be a chat completions request: a JSON object with a non-empty string
  ``model``, a non-empty list ``messages`` of ``{role, content}`` (role system / developer /
  user / assistant / tool, content a string or a list of text parts), only parameters of the
  chat completions API, ``Authorization: Bearer <key>``;
* every completion sent must have the shape the ``openai`` package parses (``id``, ``object:
  "chat.completion"``, ``created``, ``model``, ``choices[{index, message{role, content},
  finish_reason}]``, ``usage``): the fake validates its own answer before sending it, and the
  ``openai`` client in the tests parses it for real.

A violation is appended to :attr:`FakeOpenAI.violations` and answered 400 with an OpenAI error body.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from aiohttp import web

#: the request parameters of ``POST /v1/chat/completions`` (OpenAI API reference)
CHAT_PARAMETERS = frozenset(
    {
        "messages",
        "model",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)

_TEXT_PART = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}
REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {
                    "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
                    "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": _TEXT_PART}]},
                    "name": {"type": "string"},
                },
            },
        },
        "stream": {"const": False},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
    },
}
RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices", "usage"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "object": {"const": "chat.completion"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["index", "message", "finish_reason"],
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "finish_reason": {
                        "enum": ["stop", "length", "tool_calls", "content_filter", "function_call"]
                    },
                    "message": {
                        "type": "object",
                        "required": ["role", "content"],
                        "properties": {
                            "role": {"const": "assistant"},
                            "content": {"type": ["string", "null"]},
                        },
                    },
                },
            },
        },
        "usage": {
            "type": "object",
            "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
            "properties": {
                k: {"type": "integer", "minimum": 0}
                for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            },
        },
    },
}


@dataclass(frozen=True)
class Answer:
    """A completion whose message content is ``content``, sent after ``delay`` seconds."""

    content: str
    delay: float = 0.0


@dataclass(frozen=True)
class Status:
    """An HTTP error answer (OpenAI's error body)."""

    status: int
    message: str = "scripted failure"


@dataclass(frozen=True)
class Malformed:
    """A 200 answer whose body is not JSON (content type still application/json)."""

    body: str = '{"id": "chatcmpl-1", "choices": [ this is not json'


Behaviour = Answer | Status | Malformed


@dataclass
class Received:
    """One request as the server got it."""

    body: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def prompt(self) -> str:
        """All message contents, joined."""
        return "\n".join(str(m.get("content", "")) for m in self.messages)


class FakeOpenAI:
    def __init__(self, script: Iterable[Behaviour] = ()) -> None:
        self.script: list[Behaviour] = list(script)
        self.requests: list[Received] = []
        self.violations: list[str] = []
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def add(self, *behaviours: Behaviour) -> None:
        self.script.extend(behaviours)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def assert_no_violations(self) -> None:
        assert not self.violations, "fake OpenAI server saw contract violations:\n" + "\n".join(
            self.violations
        )

    # --- handler --------------------------------------------------------------------------
    def _refuse(self, reason: str, status: int = 400) -> web.Response:
        self.violations.append(reason)
        return _error(status, reason, "invalid_request_error")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.text())
        except ValueError:
            return self._refuse("request body is not JSON")
        self.requests.append(Received(body if isinstance(body, dict) else {}, dict(request.headers)))
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return self._refuse("no Authorization: Bearer header", 401)
        if not request.content_type == "application/json":
            return self._refuse(f"content type {request.content_type!r} is not application/json")
        try:
            jsonschema.validate(body, REQUEST_SCHEMA)
        except jsonschema.ValidationError as exc:
            return self._refuse(f"request does not match the chat completions shape: {exc.message}")
        unknown = sorted(set(body) - CHAT_PARAMETERS)
        if unknown:
            return self._refuse(f"unknown chat completions parameters: {unknown}")
        if not self.script:
            return self._refuse("no scripted behaviour left for this request", 500)
        behaviour = self.script.pop(0)
        if isinstance(behaviour, Status):
            return _error(
                behaviour.status,
                behaviour.message,
                "server_error" if behaviour.status >= 500 else "invalid_request_error",
            )
        if isinstance(behaviour, Malformed):
            return web.Response(status=200, text=behaviour.body, content_type="application/json")
        if behaviour.delay:
            try:  # a client that gave up is not waited for past the server's stop
                await asyncio.wait_for(self._closing.wait(), behaviour.delay)
                return web.Response(status=503)
            except TimeoutError:
                pass
        completion = self._completion(body["model"], behaviour.content, body["messages"])
        jsonschema.validate(completion, RESPONSE_SCHEMA)  # the fake's own side of the contract
        return web.json_response(completion)

    def _completion(self, model: str, content: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(content.split())
        return {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": "fp_fake",
        }


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}, status=status
    )
