"""One chat-completions client for every OpenAI-compatible endpoint.

OpenAI, OpenRouter, a local llama.cpp / LM Studio server (``AI_MODEL_PROVIDER=OPENAI`` with
``OPENAI_SERVER_URL``), Ollama (its ``/v1`` endpoint) and Gemini (its OpenAI-compatible endpoint)
all speak ``POST {base_url}/chat/completions``; the ``openai`` package talks to each of them.

* :func:`ai_config` turns the settings, plus per-request overrides (the AI keys of a clustering
  request), into an :class:`AiConfig`, or ``None`` when no provider is configured.  A bad
  override raises ``ValueError`` with a message that starts with the offending key.
* :func:`complete` sends one conversation and returns the answer's text.  The timeout bounds the
  whole call; a 5xx answer or a connection error is retried once (never a timeout, never a 4xx),
  and every failure is raised as :class:`AiError`.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict
from urllib.parse import urlsplit

import openai

from sidecar.config import AiProvider, Settings

#: the keys :func:`ai_config` accepts in its overrides (the JSON keys of a clustering request)
AI_OVERRIDE_KEYS = frozenset(
    {
        "ai_provider",
        "ai_model_provider",
        "ai_model",
        "ai_request_timeout_seconds",
        "openai_server_url",
        "openai_model_name",
        "openai_api_key",
        "ollama_server_url",
        "ollama_model_name",
        "gemini_server_url",
        "gemini_model_name",
        "gemini_api_key",
    }
)

#: sent as the key to servers that need none (Ollama, a local server): the client requires one
_NO_KEY = "not-needed"


class AiError(Exception):
    """An LLM request that gave no usable answer; :attr:`reason` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class AiConfig:
    """Where and how to ask: an OpenAI-compatible base URL (ending before ``/chat/completions``)."""

    provider: AiProvider
    base_url: str
    model: str
    api_key: str | None = field(repr=False)
    timeout: float
    #: most songs listed in a naming prompt (MAX_SONGS_IN_AI_PROMPT)
    max_songs_in_prompt: int


def ai_config(settings: Settings, overrides: Mapping[str, Any] | None = None) -> AiConfig | None:
    """The AI configuration of one request: ``settings`` with ``overrides`` applied.

    ``overrides`` keys are those of :data:`AI_OVERRIDE_KEYS`; a value of ``None`` or ``""`` means
    "not overridden".  ``ai_model`` overrides the model of whichever provider is chosen.  Returns
    ``None`` when the provider is ``NONE``.  Raises ``ValueError("<key>: <problem>")``.
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None and v != ""}
    unknown = sorted(set(given) - AI_OVERRIDE_KEYS)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown AI setting (known: {', '.join(sorted(AI_OVERRIDE_KEYS))})")
    if "ai_provider" in given and "ai_model_provider" in given:
        raise ValueError("ai_provider: give either ai_provider or ai_model_provider, not both")

    for name, value in given.items():  # every override is checked, not only the chosen provider's
        if name == "ai_request_timeout_seconds":
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"{name}: must be a positive number of seconds")
        elif name not in ("ai_provider", "ai_model_provider"):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name}: must be a non-empty string")
            if name.endswith("_url"):
                parts = urlsplit(value.strip())
                if parts.scheme not in {"http", "https"} or not parts.netloc:
                    raise ValueError(f"{name}: must be an http(s):// URL")

    provider = settings.ai_model_provider
    for name in ("ai_provider", "ai_model_provider"):
        if name in given:
            provider = _provider(name, given[name])
    if provider is AiProvider.NONE:
        return None

    def text(key: str, default: str | None) -> str | None:
        return str(given[key]).strip() if key in given else default

    model = text("ai_model", None)
    base: str | None
    api_key: str | None
    timeout = float(given.get("ai_request_timeout_seconds", settings.ai_request_timeout_seconds))

    if provider is AiProvider.OPENAI:
        base = text("openai_server_url", settings.openai_server_url)
        if base is None:
            raise ValueError("openai_server_url: is required when the AI provider is OPENAI")
        model = model or text("openai_model_name", settings.openai_model_name)
        api_key = text("openai_api_key", settings.openai_api_key)
    elif provider is AiProvider.OLLAMA:
        base = _ollama_v1(text("ollama_server_url", settings.ollama_server_url) or "")
        model = model or text("ollama_model_name", settings.ollama_model_name)
        api_key = None
    else:  # GEMINI
        base = text("gemini_server_url", settings.gemini_server_url)
        model = model or text("gemini_model_name", settings.gemini_model_name)
        api_key = text("gemini_api_key", settings.gemini_api_key)
        if api_key is None:
            raise ValueError("gemini_api_key: is required when the AI provider is GEMINI")
    assert base is not None and model is not None
    return AiConfig(
        provider=provider,
        base_url=base.rstrip("/"),
        model=model,
        api_key=api_key,
        timeout=timeout,
        max_songs_in_prompt=settings.max_songs_in_ai_prompt,
    )


def _provider(key: str, value: Any) -> AiProvider:
    if isinstance(value, str):
        try:
            return AiProvider(value.strip().upper())
        except ValueError:
            pass
    names = ", ".join(p.value for p in AiProvider)
    raise ValueError(f"{key}: must be one of {names}")


def _ollama_v1(url: str) -> str:
    """Ollama's OpenAI-compatible base from what people paste: the server root, ``/v1``, or the
    native ``/api/generate`` / ``/api/chat`` address upstream AudioMuse-AI asked for."""
    url = url.rstrip("/")
    url = re.sub(r"/api(/(generate|chat))?$", "", url)
    return url if url.endswith("/v1") else url + "/v1"


async def complete(config: AiConfig, messages: Sequence[ChatMessage]) -> str:
    """The model's answer to ``messages`` (its text, as sent).

    ``config.timeout`` bounds the whole call, the retry included.  One retry after a 5xx answer or
    a connection failure; none after a timeout or a 4xx.  Raises :class:`AiError` for everything
    that is not a non-empty answer.
    """
    async with openai.AsyncOpenAI(
        base_url=config.base_url, api_key=config.api_key or _NO_KEY, timeout=config.timeout, max_retries=0
    ) as client:
        try:
            async with asyncio.timeout(config.timeout):
                for attempt in (1, 2):
                    try:
                        response = await client.chat.completions.create(
                            model=config.model,
                            messages=[dict(m) for m in messages],  # type: ignore[misc]
                        )
                        break
                    except openai.APITimeoutError:
                        raise
                    except (openai.InternalServerError, openai.APIConnectionError) as exc:
                        if attempt == 2:
                            raise AiError(_describe(exc)) from exc
        except (TimeoutError, openai.APITimeoutError) as exc:
            raise AiError(f"no answer within {config.timeout:g} s") from exc
        except AiError:
            raise
        except openai.OpenAIError as exc:
            raise AiError(_describe(exc)) from exc
        except ValueError as exc:  # a body that is not JSON (json.JSONDecodeError)
            raise AiError("the AI server's answer is not JSON") from exc
    choices = getattr(response, "choices", None)
    message = getattr(choices[0], "message", None) if isinstance(choices, list) and choices else None
    content = getattr(message, "content", None)
    if not isinstance(content, str) or not content.strip():
        if message is None:
            raise AiError("the AI server's answer is not a chat completion")
        raise AiError("empty answer")
    return content


def _describe(exc: openai.OpenAIError) -> str:
    if isinstance(exc, openai.APIStatusError):
        detail = exc.message if isinstance(exc.message, str) else ""
        return f"HTTP {exc.status_code} from the AI server: {detail[:200]}"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        return f"cannot reach the AI server ({type(cause).__name__ if cause else 'connection error'})"
    if isinstance(exc, openai.APIResponseValidationError):
        return "the AI server's answer is not a chat completion"
    return f"{type(exc).__name__}: {str(exc)[:200]}"
