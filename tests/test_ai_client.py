"""The OpenAI-compatible client (sidecar/ai/client.py): configuration from settings and per-request
overrides, and complete() against a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from fakes.openai_server import Answer, FakeOpenAI, Malformed, Status

from sidecar.ai import AiConfig, AiError, ChatMessage, ai_config, complete
from sidecar.config import AiProvider, SettingsError, load_settings

HELLO: list[ChatMessage] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def _settings(**env: str) -> Any:
    return load_settings(env=env)


def _config(base_url: str, timeout: float = 5.0) -> AiConfig:
    return AiConfig(
        provider=AiProvider.OPENAI,
        base_url=base_url,
        model="test-model",
        api_key="sk-test",
        timeout=timeout,
        max_songs_in_prompt=25,
    )


# --- configuration ---------------------------------------------------------------------------


def test_provider_none_means_no_config() -> None:
    assert ai_config(_settings()) is None
    assert ai_config(_settings(AI_MODEL_PROVIDER="none", OPENAI_SERVER_URL="http://127.0.0.1:1/v1")) is None
    assert ai_config(_settings(AI_MODEL_PROVIDER="OLLAMA"), {"ai_provider": "NONE"}) is None


def test_openai_from_settings() -> None:
    config = ai_config(
        _settings(
            AI_MODEL_PROVIDER="openai",
            OPENAI_SERVER_URL="https://openrouter.ai/api/v1/",
            OPENAI_MODEL_NAME="meta/llama-3",
            OPENAI_API_KEY="sk-secret",
            AI_REQUEST_TIMEOUT_SECONDS="7",
            MAX_SONGS_IN_AI_PROMPT="9",
        )
    )
    assert config == AiConfig(
        provider=AiProvider.OPENAI,
        base_url="https://openrouter.ai/api/v1",
        model="meta/llama-3",
        api_key="sk-secret",
        timeout=7.0,
        max_songs_in_prompt=9,
    )
    assert "sk-secret" not in repr(config)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://127.0.0.1:11434", "http://127.0.0.1:11434/v1"),
        ("http://ollama:11434/", "http://ollama:11434/v1"),
        ("http://ollama:11434/v1", "http://ollama:11434/v1"),
        ("http://ollama:11434/api/generate", "http://ollama:11434/v1"),  # what upstream asked for
        ("http://ollama:11434/api/chat", "http://ollama:11434/v1"),
    ],
)
def test_ollama_uses_its_openai_compatible_endpoint(url: str, expected: str) -> None:
    config = ai_config(_settings(AI_MODEL_PROVIDER="ollama", OLLAMA_SERVER_URL=url))
    assert config is not None and config.base_url == expected
    assert config.model == "llama3.1:8b" and config.api_key is None


def test_gemini_needs_a_key_and_defaults_to_its_openai_endpoint() -> None:
    with pytest.raises(ValueError, match=r"^gemini_api_key: is required"):
        ai_config(_settings(AI_MODEL_PROVIDER="GEMINI"))
    config = ai_config(_settings(AI_MODEL_PROVIDER="GEMINI", GEMINI_API_KEY="g-key"))
    assert config is not None
    assert config.base_url == "https://generativelanguage.googleapis.com/v1beta/openai"
    assert config.model == "gemini-2.5-flash" and config.api_key == "g-key"
    with pytest.raises(SettingsError, match="GEMINI_SERVER_URL"):
        load_settings(env={"GEMINI_SERVER_URL": "generativelanguage.googleapis.com"})


def test_overrides_replace_settings_per_request() -> None:
    settings = _settings(AI_MODEL_PROVIDER="OLLAMA")
    config = ai_config(
        settings,
        {
            "ai_model_provider": "openai",
            "openai_server_url": "http://llm.local:8080/v1",
            "openai_api_key": "k",
            "ai_model": "qwen3:4b",
            "ai_request_timeout_seconds": 2.5,
            "ollama_model_name": "",
            "gemini_api_key": None,
        },
    )
    assert config == AiConfig(
        provider=AiProvider.OPENAI,
        base_url="http://llm.local:8080/v1",
        model="qwen3:4b",
        api_key="k",
        timeout=2.5,
        max_songs_in_prompt=25,
    )
    config = ai_config(
        settings, {"ollama_server_url": "http://other:11434", "ollama_model_name": "mistral:7b"}
    )
    assert config is not None and (config.base_url, config.model) == ("http://other:11434/v1", "mistral:7b")
    config = ai_config(
        settings, {"ai_provider": "gemini", "gemini_api_key": "g", "gemini_model_name": "gemini-x"}
    )
    assert config is not None and (config.provider, config.model, config.api_key) == (
        AiProvider.GEMINI,
        "gemini-x",
        "g",
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"ai_provider": "claude"}, r"^ai_provider: must be one of NONE, OPENAI, OLLAMA, GEMINI"),
        ({"ai_model_provider": 3}, r"^ai_model_provider: must be one of"),
        ({"ai_provider": "OLLAMA", "ai_model_provider": "OLLAMA"}, r"^ai_provider: give either"),
        ({"ai_provider": "OPENAI"}, r"^openai_server_url: is required"),
        ({"ollama_server_url": "ftp://x"}, r"^ollama_server_url: must be an http\(s\):// URL"),
        ({"ollama_server_url": "localhost:11434"}, r"^ollama_server_url: must be an http"),
        ({"ai_provider": "OPENAI", "openai_server_url": "not a url"}, r"^openai_server_url: must be an http"),
        ({"ollama_model_name": 12}, r"^ollama_model_name: must be a non-empty string"),
        ({"ai_model": "   "}, r"^ai_model: must be a non-empty string"),
        ({"ai_request_timeout_seconds": 0}, r"^ai_request_timeout_seconds: must be a positive number"),
        ({"ai_request_timeout_seconds": "10"}, r"^ai_request_timeout_seconds: must be a positive number"),
        ({"ai_request_timeout_seconds": True}, r"^ai_request_timeout_seconds: must be a positive number"),
        ({"ai_request_timeout_seconds": float("nan")}, r"^ai_request_timeout_seconds: must be a positive"),
        ({"ai_provider": "GEMINI"}, r"^gemini_api_key: is required"),
        ({"openai_key": "sk"}, r"^openai_key: unknown AI setting"),
    ],
)
def test_bad_overrides_name_their_field(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ai_config(_settings(AI_MODEL_PROVIDER="OLLAMA"), overrides)


def test_override_errors_do_not_echo_keys() -> None:
    with pytest.raises(ValueError) as info:
        ai_config(_settings(AI_MODEL_PROVIDER="OLLAMA"), {"openai_api_key": 123456789})
    assert "123456789" not in str(info.value)


# --- complete() against the scripted server ---------------------------------------------------


async def test_answer_and_request_shape() -> None:
    async with FakeOpenAI([Answer("Hello there")]) as server:
        assert await complete(_config(server.base_url), HELLO) == "Hello there"
        server.assert_no_violations()
    [request] = server.requests
    assert request.body["model"] == "test-model"
    assert request.body["messages"] == HELLO
    assert request.headers["Authorization"] == "Bearer sk-test"


async def test_server_without_key_still_gets_a_bearer_header() -> None:
    async with FakeOpenAI([Answer("ok")]) as server:
        config = AiConfig(
            provider=AiProvider.OLLAMA,
            base_url=server.base_url,
            model="m",
            api_key=None,
            timeout=5,
            max_songs_in_prompt=25,
        )
        assert await complete(config, HELLO) == "ok"
        server.assert_no_violations()


async def test_one_retry_after_a_5xx() -> None:
    async with FakeOpenAI([Status(502), Answer("second time lucky")]) as server:
        assert await complete(_config(server.base_url), HELLO) == "second time lucky"
        assert len(server.requests) == 2
        server.assert_no_violations()


async def test_no_retry_storm_two_5xx_fail() -> None:
    async with FakeOpenAI([Status(500, "model overloaded"), Status(503), Answer("never asked")]) as server:
        with pytest.raises(AiError, match=r"HTTP 503") as info:
            await complete(_config(server.base_url), HELLO)
        assert len(server.requests) == 2
    assert "AI server" in info.value.reason


@pytest.mark.parametrize("status", [400, 401, 404, 429])
async def test_no_retry_after_a_4xx(status: int) -> None:
    async with FakeOpenAI([Status(status, "nope"), Answer("never asked")]) as server:
        with pytest.raises(AiError, match=rf"^HTTP {status} from the AI server"):
            await complete(_config(server.base_url), HELLO)
        assert len(server.requests) == 1


@pytest.mark.parametrize(
    "body, reason",
    [
        ('{"id": "chatcmpl-1", "choices": [ this is not json', "the AI server's answer is not JSON"),
        ('{"unexpected": true}', "the AI server's answer is not a chat completion"),
        ('{"id": "x", "choices": []}', "the AI server's answer is not a chat completion"),
        ("[]", None),
    ],
)
async def test_malformed_body_is_an_ai_error(body: str, reason: str | None) -> None:
    async with FakeOpenAI([Malformed(body)]) as server:
        with pytest.raises(AiError) as info:
            await complete(_config(server.base_url), HELLO)
        assert len(server.requests) == 1  # not retried
    if reason:
        assert info.value.reason == reason


@pytest.mark.parametrize("content", ["", "   \n "])
async def test_empty_answer_is_an_ai_error(content: str) -> None:
    async with FakeOpenAI([Answer(content)]) as server:
        with pytest.raises(AiError, match="empty answer"):
            await complete(_config(server.base_url), HELLO)


async def test_timeout_bounds_the_whole_call() -> None:
    async with FakeOpenAI([Answer("too late", delay=3.0)]) as server:
        started = time.monotonic()
        with pytest.raises(AiError, match=r"no answer within 1 s"):
            await complete(_config(server.base_url, timeout=1), HELLO)
        assert time.monotonic() - started < 1.8
        assert len(server.requests) == 1  # a timeout is not retried


async def test_slow_answer_within_the_timeout_is_accepted() -> None:
    async with FakeOpenAI([Answer("worth the wait", delay=1.0)]) as server:
        assert await complete(_config(server.base_url, timeout=3), HELLO) == "worth the wait"


async def test_unreachable_server_is_an_ai_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(AiError, match=r"^cannot reach the AI server"):
        await complete(_config(f"http://127.0.0.1:{port}/v1"), HELLO)
    assert time.monotonic() - started < 3


async def test_the_fake_refuses_requests_outside_the_contract() -> None:
    import aiohttp

    async with FakeOpenAI([Answer("x")]) as server, aiohttp.ClientSession() as http:
        url = server.base_url + "/chat/completions"
        bad = [
            {"messages": [{"role": "user", "content": "hi"}]},  # no model
            {"model": "m", "messages": []},  # no messages
            {"model": "m", "messages": [{"role": "robot", "content": "hi"}]},  # bad role
            {"model": "m", "messages": [{"role": "user"}]},  # no content
            {"model": "m", "messages": [{"role": "user", "content": "hi"}], "prompt": "x"},
        ]  # not chat
        for body in bad:
            async with http.post(url, json=body, headers={"Authorization": "Bearer k"}) as r:
                assert r.status == 400
        async with http.post(url, json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}) as r:
            assert r.status == 401
        assert len(server.violations) == 6
        assert server.script == [Answer("x")]
