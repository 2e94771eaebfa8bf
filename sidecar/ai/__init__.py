"""LLM access shared by automatic-playlist naming and the instant-playlist chat.

``client``: one OpenAI-compatible chat client (OpenAI, OpenRouter, Ollama, Gemini) and its
per-request configuration.  ``naming``: playlist names, from the LLM or deterministic, never failing.
"""

from sidecar.ai.client import AI_OVERRIDE_KEYS, AiConfig, AiError, ChatMessage, ai_config, complete
from sidecar.ai.naming import NamingResult, PlaylistProfile, clean_name, deterministic_name, name_playlist

__all__ = [
    "AI_OVERRIDE_KEYS",
    "AiConfig",
    "AiError",
    "ChatMessage",
    "NamingResult",
    "PlaylistProfile",
    "ai_config",
    "clean_name",
    "complete",
    "deterministic_name",
    "name_playlist",
]
