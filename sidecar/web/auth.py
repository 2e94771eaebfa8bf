"""Who may use the service when ``API_TOKEN`` is set.

* ``/api/*`` and ``/chat/api/*`` take ``Authorization: Bearer <API_TOKEN>`` (scripts, plugins),
  or the web admin's session cookie plus its CSRF token in the ``X-CSRF-Token`` header on
  unsafe methods (POST, PUT, PATCH, DELETE).
* The pages need a session: a browser without one is sent to ``/login``, a form taking the
  token, which sets the session cookie (signed, HttpOnly, SameSite=Strict).
* Public: ``/healthz``, ``/api/health`` (probes), ``/login`` and ``/static/*``.

The session cookie is ``<id>.<expiry>.<HMAC-SHA256>``; the signing key is derived from
``API_TOKEN`` (so every web process accepts the others' sessions, and changing the token ends
every session). The CSRF token is an HMAC of the session id, sent to the page in a
``<meta name="csrf-token">`` tag and checked against the cookie's session on unsafe methods.
Without ``API_TOKEN`` nothing is guarded (anyone who can reach ``WEB_HOST`` may use the
service), which is why a non-loopback ``WEB_HOST`` without it logs a warning at start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web

from sidecar.config import Settings
from sidecar.web.errors import Handler, json_error

log = logging.getLogger(__name__)

#: reachable without a token (container health probes, the login form, its stylesheet)
PUBLIC_PATHS = frozenset({"/api/health", "/healthz", "/login"})
PUBLIC_PREFIXES = ("/static/",)
#: answered in JSON (401), never redirected to the login form
API_PREFIXES = ("/api/", "/chat/api/")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SESSION_COOKIE = "audiomuse_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 14 * 24 * 3600
#: request storage: the signer (None without API_TOKEN) and the request's session id
_SIGNER: web.RequestKey[SessionSigner | None] = web.RequestKey("auth_signer")
_SESSION: web.RequestKey[str | None] = web.RequestKey("auth_session")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class SessionSigner:
    """Issues and verifies session cookies and their CSRF tokens, keyed from the API token."""

    def __init__(self, api_token: str) -> None:
        self._key = hmac.new(api_token.encode(), b"audiomuse-web-session-v1", hashlib.sha256).digest()
        self._token = api_token.encode()

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.strip().encode(), self._token)

    def issue(self, now: float | None = None) -> str:
        expiry = int(now if now is not None else time.time()) + SESSION_SECONDS
        payload = f"{secrets.token_urlsafe(18)}.{expiry}"
        return f"{payload}.{self._sign(payload)}"

    def verify(self, cookie: str | None, now: float | None = None) -> str | None:
        """The session id of a valid, unexpired cookie, else None."""
        if not cookie:
            return None
        payload, _, signature = cookie.rpartition(".")
        session_id, _, expiry = payload.partition(".")
        if not session_id or not expiry.isdigit():
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        if int(expiry) < (now if now is not None else time.time()):
            return None
        return session_id

    def csrf(self, session_id: str) -> str:
        return self._sign(f"csrf:{session_id}")


def session_of(request: web.Request) -> str | None:
    """The request's session id (None without API_TOKEN or without a valid session cookie)."""
    return request.get(_SESSION)


def csrf_token_for(request: web.Request, session_id: str | None) -> str:
    """The CSRF token pages send in ``X-CSRF-Token`` ("" when there is no session)."""
    signer = request.get(_SIGNER)
    return signer.csrf(session_id) if signer and session_id else ""


def signer_of(request: web.Request) -> SessionSigner | None:
    return request.get(_SIGNER)


def auth_enabled(request: web.Request) -> bool:
    return request.get(_SIGNER) is not None


def _bearer_ok(request: web.Request, signer: SessionSigner) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and signer.token_matches(value)


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def api_token_middleware(token: str | None):  # type: ignore[no-untyped-def]
    signer = SessionSigner(token) if token else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[_SIGNER] = signer
        if signer is None:
            return await handler(request)
        session_id = signer.verify(request.cookies.get(SESSION_COOKIE))
        request[_SESSION] = session_id
        if _is_public(request.path) or _bearer_ok(request, signer):
            return await handler(request)
        if session_id is not None:
            if request.method not in SAFE_METHODS:
                given = request.headers.get(CSRF_HEADER, "")
                if not hmac.compare_digest(given.encode(), signer.csrf(session_id).encode()):
                    return json_error(
                        403, "CSRF token missing or wrong", f"send the page's token in {CSRF_HEADER}"
                    )
            if request.path.startswith(API_PREFIXES):
                # some handlers (the chat's) check the bearer token themselves: the session stands for it
                request = request.clone(headers={**request.headers, "Authorization": f"Bearer {token}"})
                request[_SIGNER], request[_SESSION] = signer, session_id
            return await handler(request)
        if request.path.startswith(API_PREFIXES) or request.method not in SAFE_METHODS:
            return json_error(401, "unauthorized", "send Authorization: Bearer <API_TOKEN>")
        raise web.HTTPSeeOther(f"/login?next={_quote_next(request.path_qs)}")

    return middleware


def _quote_next(path_qs: str) -> str:
    return quote(path_qs, safe="/")


def safe_next(target: str | None) -> str:
    """A local path to go back to after login (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def set_session_cookie(response: web.StreamResponse, request: web.Request, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


@dataclass(frozen=True)
class ExposureWarning:
    host: str

    def __str__(self) -> str:
        return (
            f"WEB_HOST={self.host} is reachable from other machines and API_TOKEN is not set: "
            "anyone on the network can use the web admin and the API (start analyses, create and "
            "delete playlists, read the configuration). Set API_TOKEN, or WEB_HOST=127.0.0.1 "
            "behind a reverse proxy that authenticates."
        )


def exposure_warning(settings: Settings) -> ExposureWarning | None:
    """The warning for a service open to the network without a token, if it is."""
    if settings.api_token or _is_loopback(settings.web_host):
        return None
    return ExposureWarning(settings.web_host)


def warn_if_exposed(settings: Settings) -> None:
    warning = exposure_warning(settings)
    if warning is not None:
        log.warning("%s", warning)


def _is_loopback(host: str) -> bool:
    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
