"""A fake Jellyfin 12.0 server that speaks real HTTP and checks itself against Jellyfin's OpenAPI contract.

The fake serves an in-memory music library (:class:`FakeTrack` records pointing at real files) on
``127.0.0.1`` with an aiohttp app on a free port::

    async with FakeJellyfin(tracks) as jf:          # or: base = await jf.start(); ...; await jf.stop()
        ...                                        # point the code under test at jf.base_url, jf.token
        jf.assert_no_violations()

Wire format, as Jellyfin 12.0 sends it: PascalCase JSON (camelCase when the request's ``Accept`` has
``profile="CamelCase"``), ``null`` members omitted, ids as 32-char lowercase hex GUIDs without dashes,
``RunTimeTicks`` in 100 ns ticks (10**7 per second), dates as ``2024-05-01T12:00:00.0000000Z``,
query results as ``{"Items": [...], "TotalRecordCount": n, "StartIndex": i}``.

Contract enforcement (``tests/contracts/jellyfin/jellyfin-openapi-12.0.0.subset.json``, made by
``extract.py`` from Jellyfin's published OpenAPI document):

* the request path must match an operation of the document (case-insensitively, like ASP.NET
  routing) and the method must be declared for it;
* every query parameter name must be declared for that operation (case-insensitive; the auth
  parameters ``ApiKey``/``api_key`` excepted), and its value must parse as the declared type / enum /
  GUID (enums case-insensitively, arrays comma separated or repeated);
* a JSON request body must validate against the declared request schema (member names
  case-insensitive, like System.Text.Json in Jellyfin);
* every JSON response body is validated against the declared response schema for its status
  (OpenAPI 3.0 -> JSON Schema: ``$ref``, ``nullable``, ``allOf``/``oneOf``/``anyOf``, enums, and the
  formats ``uuid`` = 32 lowercase hex, ``date-time``, ``int32``/``int64``); camelCase bodies against the
  camelCased schema. 2xx statuses must be declared; undeclared 4xx bodies must be ``ProblemDetails``.
* declared parameters that the fake does not model are refused too (``unsupported-by-fake``) unless
  ``strict=False``, so nothing relies on behaviour the fake only pretends to have.

A violation never passes silently: it is appended to :attr:`FakeJellyfin.violations` and the request
is answered ``500`` with the reason as text; :meth:`FakeJellyfin.assert_no_violations` raises.

Authentication (Jellyfin 12.0 defaults, ``EnableLegacyAuthorization = false``): only
``Authorization: MediaBrowser ..., Token="..."`` and the ``ApiKey`` query parameter are read. With
``legacy_auth=True`` the deprecated forms also work: ``X-Emby-Authorization`` (read before
``Authorization``), the ``Emby`` scheme, ``X-Emby-Token``, ``X-MediaBrowser-Token`` and ``api_key``
(jellyfin/jellyfin PR #13306 lists all of these as the legacy set; #16992 turns them off by default).
Operations whose contract declares ``security`` answer 401 with an empty body without a valid token;
the others (``/System/Info/Public``, ``/System/Ping``, ``/Audio/{itemId}/stream``) need none.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import re
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema
from aiohttp import WSMsgType, web
from jsonschema.exceptions import best_match
from multidict import CIMultiDict, MultiDict

__all__ = [
    "CONTRACT_PATH",
    "DEFAULT_SERVER_ID",
    "DEFAULT_TOKEN",
    "DEFAULT_USER_ID",
    "TICKS_PER_SECOND",
    "ContractViolation",
    "FakeJellyfin",
    "FakePlaylist",
    "FakeTrack",
    "JellyfinContract",
    "RecordedRequest",
    "camel_case",
    "format_date",
    "make_guid",
    "normalize_guid",
]

CONTRACT_PATH = (
    Path(__file__).resolve().parents[1] / "contracts" / "jellyfin" / "jellyfin-openapi-12.0.0.subset.json"
)
TICKS_PER_SECOND = 10_000_000
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
AUTH_QUERY_PARAMS = frozenset({"apikey", "api_key"})
MIX_LIMIT = 200  # Jellyfin's MusicManager caps instant mixes at 200 items

_GUID_N = re.compile(r"^[0-9a-f]{32}$")
_GUID_LOOSE = re.compile(
    r"^\{?[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\}?$"
)
_JELLYFIN_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})$")

# Jellyfin's MimeTypes for the audio containers a music library holds.
AUDIO_MIME_TYPES = {
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
    ".m4b": "audio/mp4",
    ".mp4": "audio/mp4",
    ".aac": "audio/aac",
    ".wav": "audio/wav",
    ".wma": "audio/x-ms-wma",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
    ".ape": "audio/x-ape",
    ".wv": "audio/x-wavpack",
    ".mka": "audio/x-matroska",
    ".webm": "audio/webm",
    ".dsf": "audio/dsf",
}


# --------------------------------------------------------------------------- ids, dates, names


def make_guid(*parts: object) -> str:
    """A deterministic Jellyfin-style id (32 lowercase hex chars) derived from ``parts``."""
    return hashlib.md5("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def normalize_guid(value: str | None) -> str | None:
    """``value`` as Jellyfin's ``N`` form (32 lowercase hex) if it parses as a GUID, else ``None``.

    Jellyfin accepts the dashed ``D`` form and braces too, case-insensitively."""
    if not value or not _GUID_LOOSE.match(value.strip()):
        return None
    return value.strip().strip("{}").replace("-", "").lower()


def format_date(value: datetime) -> str:
    """A datetime the way Jellyfin serializes it: UTC, 7 fractional digits, ``Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def camel_case(name: str) -> str:
    """System.Text.Json's ``JsonNamingPolicy.CamelCase`` (``ServerId`` -> ``serverId``, ``ETag`` -> ``eTag``)."""
    if not name or not name[0].isupper():
        return name
    chars = list(name)
    for i in range(len(chars)):
        if i == 1 and not chars[i].isupper():
            break
        has_next = i + 1 < len(chars)
        if i > 0 and has_next and not chars[i + 1].isupper():
            if chars[i + 1] == " ":
                chars[i] = chars[i].lower()
            break
        chars[i] = chars[i].lower()
    return "".join(chars)


# Members whose values are dictionaries: System.Text.Json does not apply the naming policy to keys.
_DICTIONARY_MEMBERS = frozenset({"ImageTags", "ImageBlurHashes", "ProviderIds", "RequiredHttpHeaders"})


def _camelize(value: Any) -> Any:
    if isinstance(value, list):
        return [_camelize(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            out[camel_case(key)] = sub if key in _DICTIONARY_MEMBERS else _camelize(sub)
        return out
    return value


def _drop_nulls(value: Any) -> Any:
    """Jellyfin serializes with ``JsonIgnoreCondition.WhenWritingNull``."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _mix_rank(seed: str, item_id: str) -> str:
    """A deterministic stand-in for Jellyfin's ``ItemSortBy.Random``."""
    return hashlib.sha1(f"{seed}:{item_id}".encode()).hexdigest()


# --------------------------------------------------------------------------- library records


@dataclass
class FakeTrack:
    """One audio item. ``id``/``album_id`` must be 32-char lowercase hex (see :func:`make_guid`)."""

    id: str
    name: str
    artist: str
    album: str
    album_id: str
    album_artist: str
    year: int | None
    genres: list[str]
    path: Path
    date_created: datetime
    duration_s: float
    index_number: int | None = None
    disc_number: int | None = None  # ParentIndexNumber
    artists: list[str] | None = None  # all performing artists; defaults to [artist]

    def __post_init__(self) -> None:
        for attr in ("id", "album_id"):
            if not _GUID_N.match(getattr(self, attr)):
                raise ValueError(
                    f"FakeTrack.{attr} must be 32 lowercase hex chars, got {getattr(self, attr)!r}"
                )
        self.path = Path(self.path)
        self.genres = list(self.genres)
        if self.date_created.tzinfo is None:  # naive means UTC
            self.date_created = self.date_created.replace(tzinfo=UTC)
        if self.artists is None:
            self.artists = [self.artist]

    @classmethod
    def build(
        cls,
        name: str,
        artist: str,
        album: str,
        path: Path | str,
        *,
        album_artist: str | None = None,
        year: int | None = None,
        genres: Iterable[str] = (),
        date_created: datetime | None = None,
        duration_s: float = 1.0,
        index_number: int | None = None,
        disc_number: int | None = None,
        artists: list[str] | None = None,
        id: str | None = None,
    ) -> FakeTrack:
        """A track with deterministic ids derived from its names."""
        album_artist = album_artist or artist
        album_id = make_guid("MusicAlbum", album_artist.casefold(), album.casefold())
        return cls(
            id=id or make_guid("Audio", album_id, disc_number, index_number, name),
            name=name,
            artist=artist,
            album=album,
            album_id=album_id,
            album_artist=album_artist,
            year=year,
            genres=list(genres),
            path=Path(path),
            date_created=date_created or datetime(2024, 1, 1, tzinfo=UTC),
            duration_s=duration_s,
            index_number=index_number,
            disc_number=disc_number,
            artists=artists,
        )

    @property
    def run_time_ticks(self) -> int:
        return round(self.duration_s * TICKS_PER_SECOND)

    @property
    def container(self) -> str:
        return self.path.suffix.lstrip(".").lower()


@dataclass
class FakePlaylist:
    id: str
    name: str
    owner_id: str
    media_type: str
    entries: list[tuple[str, str]]  # (PlaylistItemId, item id), in order
    date_created: datetime
    is_public: bool = False

    @property
    def item_ids(self) -> list[str]:
        return [item_id for _, item_id in self.entries]


@dataclass
class _Album:
    id: str
    name: str
    album_artist: str
    year: int | None
    tracks: list[FakeTrack]
    date_created: datetime
    genres: list[str]
    path: Path


@dataclass
class _Artist:
    id: str
    name: str
    tracks: list[FakeTrack]
    genres: list[str]
    date_created: datetime


@dataclass
class _Genre:
    id: str
    name: str


@dataclass
class _Library:
    id: str
    name: str
    date_created: datetime


# --------------------------------------------------------------------------- request log / violations


@dataclass
class RecordedRequest:
    method: str
    path: str  # decoded, including any base path
    query: MultiDict[str]
    headers: CIMultiDict[str]
    body: bytes = b""
    status: int | None = None
    operation: str | None = None  # operationId from the contract, when the path matched one
    auth: str | None = None  # which credential form carried the token: "Authorization", "ApiKey", ...
    injected: str | None = None  # "status:503", "drop", "truncate" when a failure was injected

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def param(self, name: str) -> str | None:
        """First value of query parameter ``name``, matched case-insensitively like ASP.NET."""
        for key, value in self.query.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class ContractViolation:
    kind: str
    method: str
    path: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.method} {self.path}: {self.detail}"


class _Violation(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


# --------------------------------------------------------------------------- OpenAPI contract


def _oas_to_json_schema(node: Any, camel: bool) -> Any:
    """OpenAPI 3.0 schema object -> JSON Schema 2020-12 (``$ref`` -> ``#/$defs/...``)."""
    if isinstance(node, list):
        return [_oas_to_json_schema(v, camel) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:  # OpenAPI 3.0: siblings of $ref are ignored
        return {"$ref": "#/$defs/" + node["$ref"].rsplit("/", 1)[-1]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in (
            "nullable",
            "description",
            "example",
            "deprecated",
            "readOnly",
            "writeOnly",
            "xml",
            "externalDocs",
            "discriminator",
            "default",
            "title",
        ):
            continue
        if key == "properties":
            out[key] = {
                (camel_case(k) if camel else k): _oas_to_json_schema(v, camel) for k, v in value.items()
            }
        elif key == "required":
            out[key] = [camel_case(k) if camel else k for k in value]
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _oas_to_json_schema(value, camel) if isinstance(value, dict) else value
        elif key in ("allOf", "oneOf", "anyOf"):
            out[key] = [_oas_to_json_schema(v, camel) for v in value]
        else:  # type, enum, format, pattern, minimum, ...
            out[key] = value
    if node.get("nullable") is True:
        return {"anyOf": [{"type": "null"}, out]}
    return out


def _check_int(bits: int) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            return True
        return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)

    return check


def _parses_as_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _format_checker(strict: bool) -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    if strict:  # what Jellyfin writes
        checker.checks("uuid")(lambda v: not isinstance(v, str) or bool(_GUID_N.match(v)))
        checker.checks("date-time")(lambda v: not isinstance(v, str) or bool(_JELLYFIN_DATE.match(v)))
    else:  # what Jellyfin accepts
        checker.checks("uuid")(lambda v: not isinstance(v, str) or normalize_guid(v) is not None)
        checker.checks("date-time")(lambda v: not isinstance(v, str) or _parses_as_datetime(v))
    checker.checks("int32")(_check_int(32))
    checker.checks("int64")(_check_int(64))
    return checker


_STRICT_FORMATS = _format_checker(strict=True)
_LENIENT_FORMATS = _format_checker(strict=False)


@dataclass
class _Operation:
    method: str
    template: str
    raw: dict[str, Any]
    path_params: dict[str, dict[str, Any]]
    query_params: dict[str, dict[str, Any]]  # lower-cased name -> parameter object

    @property
    def operation_id(self) -> str:
        return str(self.raw.get("operationId", f"{self.method} {self.template}"))

    @property
    def requires_auth(self) -> bool:
        return bool(self.raw.get("security"))

    @property
    def responses(self) -> dict[str, Any]:
        return self.raw.get("responses", {})

    def __str__(self) -> str:
        return f"{self.method} {self.template} ({self.operation_id})"


@dataclass
class _Route:
    template: str
    segments: list[re.Pattern[str]]
    precedence: tuple[int, ...]
    operations: dict[str, _Operation]

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for pattern, raw in zip(self.segments, segments, strict=True):
            m = pattern.fullmatch(raw)
            if m is None:
                return None
            params.update({k: unquote(v) for k, v in m.groupdict().items()})
        return params


def _compile_template(template: str) -> tuple[list[re.Pattern[str]], tuple[int, ...]]:
    """Per-segment regexes (case-insensitive) and ASP.NET-like precedence: literal < mixed < parameter."""
    segs, prec = [], []
    for seg in template.strip("/").split("/") if template.strip("/") else []:
        parts = re.split(r"(\{[^}]+\})", seg)
        regex = "".join(f"(?P<{p[1:-1]}>[^/]+?)" if p.startswith("{") else re.escape(p) for p in parts if p)
        segs.append(re.compile(regex, re.IGNORECASE))
        has_param, has_literal = "{" in seg, bool(re.sub(r"\{[^}]+\}", "", seg))
        prec.append(0 if not has_param else (1 if has_literal else 2))
    return segs, tuple(prec)


class JellyfinContract:
    """The operations and schemas of a (subset of a) Jellyfin OpenAPI 3 document, as checks."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.version = str(doc.get("info", {}).get("version", ""))
        self.all_operations = frozenset(doc.get("x-all-operations", ()))
        self._components = doc.get("components", {}).get("schemas", {})
        self._defs = {
            camel: {n: _oas_to_json_schema(s, camel) for n, s in self._components.items()}
            for camel in (False, True)
        }
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
        self.routes: list[_Route] = []
        for template, item in doc.get("paths", {}).items():
            shared = item.get("parameters", [])
            ops = {}
            for method, raw in item.items():
                if method not in HTTP_METHODS:
                    continue
                params = {(p["name"], p["in"]): p for p in [*shared, *raw.get("parameters", [])]}
                ops[method.upper()] = _Operation(
                    method=method.upper(),
                    template=template,
                    raw=raw,
                    path_params={n: p for (n, where), p in params.items() if where == "path"},
                    query_params={n.lower(): p for (n, where), p in params.items() if where == "query"},
                )
            self.routes.append(_Route(template, *_compile_template(template), ops))
        self._full_routes = [
            (
                entry.split(" ", 1)[0],
                _Route(entry.split(" ", 1)[1], *_compile_template(entry.split(" ", 1)[1]), {}),
            )
            for entry in sorted(self.all_operations)
        ]

    @classmethod
    def load(cls, path: Path | str = CONTRACT_PATH) -> JellyfinContract:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    # ---- lookups

    def match(self, method: str, raw_path: str) -> tuple[_Route, dict[str, str]] | None:
        """The most specific route for ``raw_path`` (literal segments beat parameters, like ASP.NET)."""
        segments = [s for s in raw_path.strip("/").split("/")] if raw_path.strip("/") else []
        found = [(r, p) for r in self.routes if (p := r.match(segments)) is not None]
        if not found:
            return None
        return min(found, key=lambda rp: rp[0].precedence)

    def operation(self, method: str, template: str) -> _Operation:
        for route in self.routes:
            if route.template == template:
                return route.operations[method.upper()]
        raise KeyError(f"{method} {template}")

    def in_full_document(self, method: str, raw_path: str) -> str | None:
        """The ``METHOD /template`` of the *full* Jellyfin document matching the request, if any."""
        segments = raw_path.strip("/").split("/") if raw_path.strip("/") else []
        found = [r for m, r in self._full_routes if m == method.upper() and r.match(segments) is not None]
        if not found:
            return None
        return f"{method.upper()} {min(found, key=lambda r: r.precedence).template}"

    def resolve(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """Follow ``$ref`` and merge ``allOf`` members into one flat (OpenAPI) schema."""
        seen = 0
        node = dict(schema)
        while "$ref" in node and seen < 50:
            node = {**self._components[node.pop("$ref").rsplit("/", 1)[-1]], **node}
            seen += 1
        if "allOf" in node:
            merged = {k: v for k, v in node.items() if k != "allOf"}
            for sub in node["allOf"]:
                for k, v in self.resolve(sub).items():
                    if k == "properties":
                        merged.setdefault("properties", {}).update(v)
                    else:
                        merged.setdefault(k, v)
            node = merged
        return node

    def enum_values(self, schema: Mapping[str, Any]) -> list[str] | None:
        enum = self.resolve(schema).get("enum")
        return list(enum) if enum else None

    def canonical_enum(self, op: _Operation, param: str, value: str) -> str | None:
        p = op.query_params.get(param.lower())
        if p is None:
            return None
        schema = self.resolve(p.get("schema", {}))
        if schema.get("type") == "array":
            schema = self.resolve(schema.get("items", {}))
        for allowed in schema.get("enum") or ():
            if allowed.lower() == value.strip().lower():
                return str(allowed)
        return None

    def validator(self, schema: Mapping[str, Any], mode: str) -> jsonschema.protocols.Validator:
        """``mode``: ``request`` (lenient formats), ``response`` or ``response-camel`` (strict formats)."""
        key = (json.dumps(schema, sort_keys=True), mode)
        if key not in self._validators:
            camel = mode == "response-camel"
            converted = _oas_to_json_schema(dict(schema), camel)
            root = {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                **converted,
                "$defs": self._defs[camel],
            }
            checker = _LENIENT_FORMATS if mode == "request" else _STRICT_FORMATS
            self._validators[key] = jsonschema.Draft202012Validator(root, format_checker=checker)
        return self._validators[key]

    @staticmethod
    def _errors(validator: jsonschema.protocols.Validator, instance: Any, limit: int = 8) -> list[str]:
        def leaf(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
            # nullable members become anyOf[null, X]: explain X, not "is not of type 'null'"
            branches = [
                e for e in error.context or () if not (e.validator == "type" and e.validator_value == "null")
            ]
            return leaf(best_match(branches)) if branches else error

        out = []
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
            detail = leaf(error)
            out.append(f"{detail.json_path}: {detail.message}")
            if len(out) >= limit:
                break
        return out

    # ---- request checks

    def check_request(
        self,
        op: _Operation,
        path_params: Mapping[str, str],
        query: MultiDict[str],
        content_type: str,
        body: bytes,
    ) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for name, value in path_params.items():
            param = op.path_params.get(name)
            if param is not None:
                problems += self._check_values(op, param, [value], split=False)
        seen: set[str] = set()
        for key in query.keys():
            low = key.lower()
            if low in seen:
                continue
            seen.add(low)
            if low in AUTH_QUERY_PARAMS:
                continue
            param = op.query_params.get(low)
            if param is None:
                declared = ", ".join(sorted(p["name"] for p in op.query_params.values())) or "none"
                problems.append(
                    (
                        "undeclared-query-parameter",
                        f"query parameter {key!r} is not declared for {op}; declared: {declared}",
                    )
                )
                continue
            values = [v for k, v in query.items() if k.lower() == low]
            problems += self._check_values(op, param, values, split=True)
        for low, param in op.query_params.items():
            if param.get("required") and low not in seen:
                problems.append(
                    ("missing-query-parameter", f"required query parameter {param['name']!r} missing")
                )
        problems += self._check_body(op, content_type, body)
        return problems

    def _check_values(
        self, op: _Operation, param: Mapping[str, Any], values: list[str], split: bool
    ) -> list[tuple[str, str]]:
        schema = self.resolve(param.get("schema", {}))
        name = param["name"]
        if schema.get("type") == "array":
            item_schema = schema.get("items", {})
            items = [p.strip() for v in values for p in v.split(",")] if split else values
            return [pr for it in items if it for pr in self._check_scalar(name, item_schema, it)]
        return [pr for v in values if v != "" for pr in self._check_scalar(name, schema, v)]

    def _check_scalar(self, name: str, schema: Mapping[str, Any], raw: str) -> list[tuple[str, str]]:
        kind = "invalid-parameter-value"
        resolved = self.resolve(schema)
        enum = resolved.get("enum")
        if enum:
            if raw.strip().lower() not in {str(e).lower() for e in enum}:
                return [(kind, f"{name}={raw!r} is not one of {list(enum)}")]
            return []
        typ, fmt = resolved.get("type"), resolved.get("format")
        if typ == "integer":
            try:
                value = int(raw.strip())
            except ValueError:
                return [(kind, f"{name}={raw!r} is not an integer")]
            if fmt in ("int32", "int64") and not _check_int(int(fmt[3:]))(value):
                return [(kind, f"{name}={raw!r} is out of {fmt} range")]
        elif typ == "number":
            try:
                float(raw)
            except ValueError:
                return [(kind, f"{name}={raw!r} is not a number")]
        elif typ == "boolean":
            if raw.strip().lower() not in ("true", "false"):
                return [(kind, f"{name}={raw!r} is not a boolean (true/false)")]
        elif typ == "string":
            if fmt == "uuid" and normalize_guid(raw) is None:
                return [(kind, f"{name}={raw!r} is not a GUID")]
            if fmt == "date-time" and not _parses_as_datetime(raw):
                return [(kind, f"{name}={raw!r} is not a date-time")]
            pattern = resolved.get("pattern")
            if pattern and not re.search(pattern, raw):
                return [(kind, f"{name}={raw!r} does not match {pattern!r}")]
        return []

    def _check_body(self, op: _Operation, content_type: str, body: bytes) -> list[tuple[str, str]]:
        spec = op.raw.get("requestBody")
        if not body.strip():
            if spec and spec.get("required"):
                return [("invalid-request-body", f"{op} requires a request body")]
            return []
        if spec is None:
            return [("invalid-request-body", f"{op} takes no request body, got {len(body)} bytes")]
        content = spec.get("content", {})
        ctype = content_type.split(";")[0].strip().lower()
        declared = [
            c
            for c in content
            if c.split(";")[0].strip().lower() in (ctype, "application/*+json")
            and (c != "application/*+json" or ctype.endswith("+json"))
        ]
        if not declared:
            return [("invalid-request-body", f"Content-Type {content_type!r} is not one of {list(content)}")]
        try:
            payload = json.loads(body)
        except ValueError as exc:
            return [("invalid-request-body", f"body is not JSON: {exc}")]
        schema = content[declared[0]].get("schema", {})
        payload = self.normalize_member_names(payload, schema)
        errors = self._errors(self.validator(schema, "request"), payload)
        return [("invalid-request-body", e) for e in errors]

    def normalize_member_names(self, value: Any, schema: Mapping[str, Any]) -> Any:
        """Rename JSON members to the schema's spelling, case-insensitively (System.Text.Json style)."""
        resolved = self.resolve(schema)
        if isinstance(value, dict):
            props = resolved.get("properties", {})
            lookup = {k.lower(): k for k in props}
            out = {}
            for key, sub in value.items():
                canonical = lookup.get(key.lower(), key)
                sub_schema = props.get(canonical)
                out[canonical] = self.normalize_member_names(sub, sub_schema) if sub_schema else sub
            return out
        if isinstance(value, list) and "items" in resolved:
            return [self.normalize_member_names(v, resolved["items"]) for v in value]
        return value

    # ---- response checks

    def check_json_response(self, op: _Operation, status: int, payload: Any, camel: bool) -> list[str]:
        declared = op.responses.get(str(status))
        if declared is None:
            if status < 400:
                return [f"status {status} is not declared for {op} (declared: {sorted(op.responses)})"]
            schema: Mapping[str, Any] = {"$ref": "#/components/schemas/ProblemDetails"}
        else:
            content = declared.get("content") or {}
            key = 'application/json; profile="CamelCase"' if camel else "application/json"
            if key not in content:
                key = "application/json"
            if key not in content or "schema" not in content[key]:
                return [f"{op} declares no JSON body for status {status} (content: {list(content)})"]
            schema = content[key]["schema"]
        mode = "response-camel" if camel else "response"
        return self._errors(self.validator(schema, mode), payload)

    def check_bodyless_response(self, op: _Operation, status: int, kind: str) -> list[str]:
        """``kind``: ``empty`` or ``binary``. 206 counts as the declared 200 (range processing)."""
        declared = op.responses.get(str(status)) or (op.responses.get("200") if status == 206 else None)
        if declared is None:
            return [] if status >= 300 else [f"status {status} is not declared for {op}"]
        content = declared.get("content") or {}
        if kind == "empty" and status < 300 and content:
            return [f"{op} declares a body for status {status} ({list(content)}), the fake sent none"]
        if kind == "binary" and not any("json" not in c and "html" not in c for c in content):
            return [f"{op} declares no binary body for status {status} (content: {list(content)})"]
        return []


# --------------------------------------------------------------------------- handler plumbing


@dataclass
class _Json:
    payload: Any
    status: int = 200


@dataclass
class _Empty:
    status: int = 204


@dataclass
class _File:
    path: Path
    content_type: str
    attachment: str | None = None


@dataclass
class _Failure:
    remaining: int | None  # None: until clear_failures()
    status: int
    mode: str
    path: re.Pattern[str] | None
    method: str | None
    retry_after: int | None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return self.path is None or bool(self.path.search(path))


@dataclass
class _Ctx:
    contract: JellyfinContract
    op: _Operation
    path_params: dict[str, str]
    query: MultiDict[str]
    camel: bool
    user_id: str | None = None  # from the legacy /Users/{userId}/Items route

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.query.items() if k.lower() == name.lower()]

    def get(self, name: str) -> str | None:
        return next((v for v in self.values(name) if v != ""), None)

    def get_list(self, name: str, sep: str = ",") -> list[str]:
        return [p.strip() for v in self.values(name) for p in v.split(sep) if p.strip()]

    def enums(self, name: str) -> list[str]:
        out = []
        for value in self.get_list(name):
            canonical = self.contract.canonical_enum(self.op, name, value)
            if canonical is not None and canonical not in out:
                out.append(canonical)
        return out

    def guid(self, name: str) -> str | None:
        return normalize_guid(self.get(name))

    def guids(self, name: str) -> list[str]:
        out: list[str] = []
        for v in self.get_list(name):
            g = normalize_guid(v)
            if g and g not in out:
                out.append(g)
        return out

    def get_int(self, name: str) -> int | None:
        v = self.get(name)
        return int(v) if v is not None else None

    def get_bool(self, name: str, default: bool | None = None) -> bool | None:
        v = self.get(name)
        return default if v is None else v.strip().lower() == "true"


def _problem(status: int, title: str, detail: str | None = None) -> _Json:
    """An ASP.NET Core ``ProblemDetails`` body, as Jellyfin sends for NotFound() and friends."""
    types = {400: "15.5.1", 401: "15.5.2", 403: "15.5.4", 404: "15.5.5"}
    body = {
        "type": f"https://tools.ietf.org/html/rfc9110#section-{types.get(status, '15.6.1')}",
        "title": title,
        "status": status,
        "detail": detail,
        "traceId": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00",
    }
    return _Json({k: v for k, v in body.items() if v is not None}, status)


# Declared query parameters each handler honours or may safely ignore (lower-case). With strict=True
# any other declared parameter is refused as "unsupported-by-fake".
_PRESENTATION = {"userid", "enableimages", "imagetypelimit", "enableimagetypes", "enableuserdata", "fields"}
_SUPPORTED_PARAMS: dict[str, set[str]] = {
    "GetItems": _PRESENTATION
    | {
        "parentid",
        "includeitemtypes",
        "excludeitemtypes",
        "recursive",
        "ids",
        "startindex",
        "limit",
        "sortby",
        "sortorder",
        "genres",
        "years",
        "artistids",
        "albumartistids",
        "contributingartistids",
        "albumids",
        "searchterm",
        "namestartswith",
        "mediatypes",
        "excludeitemids",
        "filters",
        "enabletotalrecordcount",
        "ismissing",
        "excludelocationtypes",
        "isfavorite",
        "isplayed",
        "collapseboxsetitems",
    },
    "GetItem": {"userid"},
    "DeleteItem": set(),
    "GetDownload": set(),
    "GetAudioStream": {"static", "container", "deviceid", "playsessionid", "mediasourceid", "tag"},
    "GetAudioStreamByContainer": {"static", "deviceid", "playsessionid", "mediasourceid", "tag"},
    "CreatePlaylist": {"name", "ids", "userid", "mediatype"},
    "GetPlaylist": set(),
    "UpdatePlaylist": set(),
    "GetPlaylistItems": _PRESENTATION | {"startindex", "limit"},
    "AddItemToPlaylist": {"ids", "position", "userid"},
    "RemoveItemFromPlaylist": {"entryids"},
    "GetSimilarItems": {"userid", "limit", "fields", "excludeartistids"},
    "GetSimilarAlbums": {"userid", "limit", "fields", "excludeartistids"},
    "GetSimilarArtists": {"userid", "limit", "fields", "excludeartistids"},
    "GetInstantMixFromMusicGenreById": _PRESENTATION | {"id", "limit"},
    "GetPublicSystemInfo": set(),
    "GetSystemInfo": set(),
    "GetUserById": set(),
    "GetPingSystem": set(),
    "PostPingSystem": set(),
}
for _mix in ("Item", "Song", "Album", "Artists", "MusicGenreByName", "Playlist"):
    _SUPPORTED_PARAMS[f"GetInstantMixFrom{_mix}"] = _PRESENTATION | {"limit"}
_SUPPORTED_PARAMS["HeadAudioStream"] = _SUPPORTED_PARAMS["GetAudioStream"]
_SUPPORTED_PARAMS["HeadAudioStreamByContainer"] = _SUPPORTED_PARAMS["GetAudioStreamByContainer"]

_STREAM_OPERATIONS = frozenset(
    {"GetAudioStream", "HeadAudioStream", "GetAudioStreamByContainer", "HeadAudioStreamByContainer"}
)

_SORT_KEYS = {
    "Default",
    "SortName",
    "Name",
    "DateCreated",
    "ProductionYear",
    "IndexNumber",
    "ParentIndexNumber",
    "Album",
    "AlbumArtist",
    "Artist",
    "Runtime",
    "Random",
    "PlayCount",
    "DatePlayed",
    "IsPlayed",
    "IsUnplayed",
    "IsFavoriteOrLiked",
    "IsFolder",
}


# --------------------------------------------------------------------------- the server


class FakeJellyfin:
    """A Jellyfin 12.0 stand-in on ``127.0.0.1``; see the module docstring.

    Knobs: ``legacy_auth`` (accept the deprecated credential forms), ``legacy_routes`` (serve the
    obsolete ``/Users/{userId}/Items`` alias of ``/Items``, absent from the 12.0 contract),
    ``strict`` (refuse declared-but-unmodelled parameters), ``base_path`` (Jellyfin's "Base URL"),
    :meth:`fail_next` (inject 5xx / dropped connections / truncated bodies), :attr:`delay_s`,
    :meth:`mutate_next_response` (corrupt a JSON body, to prove the validator fails).
    """

    def __init__(
        self,
        tracks: Iterable[FakeTrack] = (),
        *,
        token: str = "",
        user_id: str = "",
        server_id: str = "",
        server_name: str = "Fake Jellyfin",
        version: str | None = None,
        legacy_auth: bool = False,
        legacy_routes: bool = False,
        strict: bool = True,
        base_path: str = "",
        host: str = "127.0.0.1",
        contract: JellyfinContract | Path | str | None = None,
    ) -> None:
        if isinstance(contract, JellyfinContract):
            self.contract = contract
        else:
            self.contract = JellyfinContract.load(contract or CONTRACT_PATH)
        self.token = token or DEFAULT_TOKEN
        self.user_id = user_id or DEFAULT_USER_ID
        self.server_id = server_id or DEFAULT_SERVER_ID
        for name, value in (("user_id", self.user_id), ("server_id", self.server_id)):
            if not _GUID_N.match(value):
                raise ValueError(f"{name} must be 32 lowercase hex chars, got {value!r}")
        self.server_name = server_name
        self.version = version or self.contract.version or "12.0.0"
        self.legacy_auth = legacy_auth
        self.legacy_routes = legacy_routes
        self.strict = strict
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.host = host
        self.delay_s = 0.0

        self.requests: list[RecordedRequest] = []
        self.violations: list[ContractViolation] = []
        self.socket_messages: list[str | bytes] = []
        self.playlists: dict[str, FakePlaylist] = {}
        self.library = _Library(
            make_guid("CollectionFolder", "music"), "Music", datetime(2020, 1, 1, tzinfo=UTC)
        )

        self._tracks: dict[str, FakeTrack] = {}
        self._albums: dict[str, _Album] = {}
        self._artists: dict[str, _Artist] = {}
        self._genres: dict[str, _Genre] = {}
        self._failures: list[_Failure] = []
        self._mutators: list[tuple[re.Pattern[str] | None, Callable[[Any], Any]]] = []
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.port: int | None = None
        self.add_tracks(tracks)

    # ---- library

    @property
    def tracks(self) -> list[FakeTrack]:
        return list(self._tracks.values())

    def add_tracks(self, tracks: Iterable[FakeTrack]) -> None:
        for track in tracks:
            if track.id in self._tracks:
                raise ValueError(f"duplicate track id {track.id}")
            self._tracks[track.id] = track
        self._reindex()

    def remove_track(self, track_id: str) -> None:
        del self._tracks[track_id]
        self._reindex()

    def artist_id(self, name: str) -> str:
        return make_guid("MusicArtist", name.casefold())

    def genre_id(self, name: str) -> str:
        return make_guid("MusicGenre", name.casefold())

    def _reindex(self) -> None:
        by_album: dict[str, list[FakeTrack]] = {}
        by_artist: dict[str, list[FakeTrack]] = {}
        genres: dict[str, _Genre] = {}
        for t in self._tracks.values():
            by_album.setdefault(t.album_id, []).append(t)
            for name in dict.fromkeys([*(t.artists or []), t.album_artist]):
                by_artist.setdefault(name, []).append(t)
            for g in t.genres:
                genres.setdefault(g.casefold(), _Genre(self.genre_id(g), g))
        albums = {}
        for album_id, tracks in by_album.items():
            first = tracks[0]
            for t in tracks:
                if (t.album, t.album_artist) != (first.album, first.album_artist):
                    raise ValueError(
                        f"tracks of album {album_id} disagree on album name/album artist: "
                        f"{(first.album, first.album_artist)} vs {(t.album, t.album_artist)}"
                    )
            tracks.sort(key=lambda t: (t.disc_number or 0, t.index_number or 0, t.name.casefold()))
            albums[album_id] = _Album(
                id=album_id,
                name=first.album,
                album_artist=first.album_artist,
                year=next((t.year for t in tracks if t.year), None),
                tracks=tracks,
                date_created=min(t.date_created for t in tracks),
                genres=list(dict.fromkeys(g for t in tracks for g in t.genres)),
                path=first.path.parent,
            )
        self._albums = albums
        self._artists = {
            self.artist_id(name): _Artist(
                self.artist_id(name),
                name,
                tracks,
                list(dict.fromkeys(g for t in tracks for g in t.genres)),
                min(t.date_created for t in tracks),
            )
            for name, tracks in by_artist.items()
        }
        self._genres = {g.id: g for g in genres.values()}

    def _lookup(self, item_id: str | None) -> Any:
        if item_id is None:
            return None
        for table in (self._tracks, self._albums, self._artists, self.playlists, self._genres):
            if item_id in table:
                return table[item_id]
        return self.library if item_id == self.library.id else None

    # ---- lifecycle

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeJellyfin is not started")
        return f"http://{self.host}:{self.port}{self.base_path}"

    async def start(self) -> str:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self.base_url

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeJellyfin:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- test knobs and assertions

    def fail_next(
        self,
        n: int | None = 1,
        status: int = 503,
        *,
        mode: str = "status",
        path: str | None = None,
        method: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Fail the next ``n`` requests (``None``: all, until :meth:`clear_failures`) whose path matches
        the regex ``path`` (searched in the path below the base path) and ``method``.

        ``mode``: ``"status"`` answers ``status`` (text/html, like Jellyfin's 503 page, with
        ``Retry-After`` if given); ``"drop"`` closes the connection without an answer;
        ``"truncate"`` sends the real status and headers but only half the body, then closes."""
        if mode not in ("status", "drop", "truncate"):
            raise ValueError(f"unknown failure mode {mode!r}")
        self._failures.append(
            _Failure(n, status, mode, re.compile(path) if path else None, method, retry_after)
        )

    def clear_failures(self) -> None:
        self._failures.clear()

    def mutate_next_response(self, fn: Callable[[Any], Any], *, path: str | None = None) -> None:
        """Pass the next JSON payload (PascalCase, before validation) whose path matches the regex
        ``path`` through ``fn`` (which returns the new payload). For proving the validator fails."""
        self._mutators.append((re.compile(path) if path else None, fn))

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path (below the base path) fully matches regex ``path``, case-insensitively."""
        pattern = re.compile(path, re.IGNORECASE)
        return [
            r
            for r in self.requests
            if pattern.fullmatch(r.path[len(self.base_path) :] or "/")
            and (method is None or r.method == method.upper())
        ]

    def clear_log(self) -> None:
        self.requests.clear()

    def clear_violations(self) -> None:
        self.violations.clear()

    def assert_no_violations(self) -> None:
        if self.violations:
            lines = "\n  ".join(str(v) for v in self.violations)
            raise AssertionError(f"{len(self.violations)} Jellyfin contract violation(s):\n  {lines}")

    # ---- dispatch

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=MultiDict(request.query),
            headers=CIMultiDict(request.headers),
            body=await request.read(),
        )
        self.requests.append(record)
        try:
            response = await self._handle(request, record)
        except _Violation as v:
            response = self._violation(record, v.kind, v.detail)
        record.status = response.status if record.injected not in ("drop",) else None
        return response

    def _violation(self, record: RecordedRequest, kind: str, detail: str) -> web.Response:
        self.violations.append(ContractViolation(kind, record.method, record.path, detail))
        return web.Response(status=500, text=f"fake Jellyfin contract violation [{kind}]: {detail}\n")

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.matches(method, path):
                if failure.remaining is not None:
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                return failure
        return None

    async def _handle(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        raw_path = request.rel_url.raw_path
        if self.base_path:
            if not raw_path.lower().startswith(self.base_path.lower()):
                raise _Violation(
                    "outside-base-path", f"path is outside the server's base path {self.base_path!r}"
                )
            raw_path = raw_path[len(self.base_path) :] or "/"
        if len(raw_path) > 1:
            raw_path = raw_path.rstrip("/")

        failure = self._take_failure(request.method, unquote(raw_path))
        if failure is not None and failure.mode != "truncate":
            return await self._inject(request, record, failure)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)

        if raw_path.lower() == "/socket":  # websocket: not part of the OpenAPI document
            return await self._socket(request, record)

        path_params: dict[str, str] = {}
        legacy = re.fullmatch(r"/users/([^/]+)/items", raw_path, re.IGNORECASE)
        if legacy and self.legacy_routes and request.method == "GET":
            op = self.contract.operation("GET", "/Items")
        else:
            found = self.contract.match(request.method, raw_path)
            if found is None:
                full = self.contract.in_full_document(request.method, raw_path)
                hint = (
                    f"; it is {full} in Jellyfin {self.contract.version} but not in the fake's contract "
                    "subset: add it to tests/contracts/jellyfin/extract.py OPERATIONS"
                    if full
                    else f"; no such operation in Jellyfin {self.contract.version}"
                )
                if legacy:
                    hint += " (the /Users/{userId}/Items alias is gone from 12.0: use /Items?userId=)"
                raise _Violation("unknown-path", f"no operation matches {raw_path!r}{hint}")
            route, path_params = found
            op = route.operations.get(request.method)  # type: ignore[assignment]
            if op is None:
                raise _Violation(
                    "method-not-allowed",
                    f"{route.template} declares {sorted(route.operations)}, not {request.method}",
                )
        record.operation = op.operation_id

        problems = self.contract.check_request(
            op, path_params, record.query, request.headers.get("Content-Type", ""), record.body
        )
        if problems:
            kind = problems[0][0]
            raise _Violation(kind, "; ".join(detail for _, detail in problems))

        form, token = self._credentials(request)
        record.auth = form
        if op.requires_auth and token != self.token:
            return web.Response(status=401)

        handler = getattr(self, f"_op_{op.operation_id}", None)
        if handler is None:
            raise _Violation("unimplemented", f"the fake does not implement {op}")
        static = CIMultiDict(record.query).get("static", "").lower() == "true"
        if self.strict and not (op.operation_id in _STREAM_OPERATIONS and static):
            # (with static=true Jellyfin ignores every transcoding parameter, and so does the fake)
            allowed = _SUPPORTED_PARAMS.get(op.operation_id, set())
            unsupported = sorted(
                {k for k in record.query.keys() if k.lower() in op.query_params and k.lower() not in allowed}
            )
            if unsupported:
                raise _Violation(
                    "unsupported-by-fake",
                    f"declared parameter(s) {unsupported} of {op} are not modelled by the fake; "
                    "extend tests/fakes/jellyfin.py or pass strict=False",
                )

        ctx = _Ctx(
            self.contract,
            op,
            path_params,
            record.query,
            self._wants_camel(request),
            user_id=normalize_guid(unquote(legacy.group(1))) if legacy and self.legacy_routes else None,
        )
        result = await handler(request, ctx)
        response = await self._render(request, record, ctx, result)
        if failure is not None:  # truncate
            return await self._truncate(request, record, response, result)
        return response

    async def _render(
        self, request: web.Request, record: RecordedRequest, ctx: _Ctx, result: Any
    ) -> web.StreamResponse:
        op = ctx.op
        if isinstance(result, _Json):
            payload = result.payload
            for i, (pattern, fn) in enumerate(self._mutators):
                if pattern is None or pattern.search(request.path):
                    del self._mutators[i]
                    payload = fn(payload)
                    break
            payload = _drop_nulls(payload)
            body = _camelize(payload) if ctx.camel else payload
            problems = self.contract.check_json_response(op, result.status, body, ctx.camel)
            if problems:
                raise _Violation(
                    "response-schema",
                    f"{op} status {result.status} body does not match the contract: " + "; ".join(problems),
                )
            return web.Response(
                status=result.status,
                body=json.dumps(body).encode(),
                content_type="application/json",
                charset="utf-8",
            )
        if isinstance(result, _Empty):
            problems = self.contract.check_bodyless_response(op, result.status, "empty")
            if problems:
                raise _Violation("undeclared-status", "; ".join(problems))
            return web.Response(status=result.status)
        if isinstance(result, _File):
            problems = self.contract.check_bodyless_response(op, 200, "binary")
            if problems:
                raise _Violation("undeclared-status", "; ".join(problems))
            headers = {"Content-Type": result.content_type}
            if result.attachment:
                headers["Content-Disposition"] = f'attachment; filename="{result.attachment}"'
            return web.FileResponse(result.path, headers=headers)
        raise TypeError(f"handler returned {result!r}")

    async def _inject(
        self, request: web.Request, record: RecordedRequest, failure: _Failure
    ) -> web.StreamResponse:
        if failure.mode == "drop":
            record.injected = "drop"
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=499)
        record.injected = f"status:{failure.status}"
        headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else None
        reason = "Service Unavailable" if failure.status == 503 else f"Injected failure {failure.status}"
        return web.Response(
            status=failure.status,
            text=f"<html><body>{reason}</body></html>",
            content_type="text/html",
            headers=headers,
        )

    async def _truncate(
        self, request: web.Request, record: RecordedRequest, response: web.StreamResponse, result: Any
    ) -> web.StreamResponse:
        record.injected = "truncate"
        if isinstance(result, _File):
            body = result.path.read_bytes()
        else:
            body = getattr(response, "body", b"") or b""
        partial = web.StreamResponse(status=response.status)
        partial.content_type = response.content_type
        partial.content_length = len(body)
        await partial.prepare(request)
        await partial.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.abort()
        return partial

    # ---- auth

    def _credentials(self, request: web.Request) -> tuple[str | None, str | None]:
        """(form, token) the way Jellyfin's AuthorizationContext finds them."""
        headers = request.headers
        fields: dict[str, str] | None = None
        form = None
        if self.legacy_auth and headers.get("X-Emby-Authorization"):
            fields, form = (
                _parse_mediabrowser(headers["X-Emby-Authorization"], allow_emby=True),
                "X-Emby-Authorization",
            )
        elif headers.get("Authorization"):
            fields, form = (
                _parse_mediabrowser(headers["Authorization"], allow_emby=self.legacy_auth),
                "Authorization",
            )
        token = (fields or {}).get("token")
        if token:
            return form, token
        candidates: list[tuple[str, str | None]] = []
        if self.legacy_auth:
            candidates += [
                ("X-Emby-Token", headers.get("X-Emby-Token")),
                ("X-MediaBrowser-Token", headers.get("X-MediaBrowser-Token")),
            ]
        query = CIMultiDict(request.query)
        candidates.append(("ApiKey", query.get("ApiKey")))
        if self.legacy_auth:
            candidates.append(("api_key", query.get("api_key")))
        for name, value in candidates:
            if value:
                return name, value
        return None, None

    @staticmethod
    def _wants_camel(request: web.Request) -> bool:
        accept = request.headers.get("Accept", "")
        return bool(re.search(r'profile\s*=\s*"?camelcase"?', accept, re.IGNORECASE))

    # ---- websocket

    async def _socket(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        record.operation = "WebSocket"
        form, token = self._credentials(request)
        record.auth = form
        if token != self.token:
            return web.Response(status=401)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=400, text="expected a websocket upgrade")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        record.status = 101
        self._sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.socket_messages.append(msg.data)
                    await ws.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self.socket_messages.append(msg.data)
                    await ws.send_bytes(msg.data)
        finally:
            self._sockets.discard(ws)
        return ws

    # ---- DTOs

    def _dto(self, item: Any, fields: set[str], user_data: bool = False) -> dict[str, Any]:
        if isinstance(item, FakeTrack):
            dto = self._track_dto(item, fields)
        elif isinstance(item, _Album):
            dto = self._folder_dto(
                item.id,
                item.name,
                "MusicAlbum",
                item.date_created,
                fields,
                item.tracks,
                item.genres,
                item.path,
                self.library.id,
            )
            dto.update(
                {
                    "ProductionYear": item.year,
                    "AlbumArtist": item.album_artist,
                    "AlbumArtists": [self._pair(item.album_artist)],
                    "Artists": [item.album_artist],
                    "ArtistItems": [self._pair(item.album_artist)],
                }
            )
        elif isinstance(item, _Artist):
            dto = self._folder_dto(
                item.id,
                item.name,
                "MusicArtist",
                item.date_created,
                fields,
                item.tracks,
                item.genres,
                None,
                None,
            )
        elif isinstance(item, FakePlaylist):
            tracks = [self._tracks[i] for i in item.item_ids if i in self._tracks]
            dto = self._folder_dto(
                item.id,
                item.name,
                "Playlist",
                item.date_created,
                fields,
                tracks,
                [],
                Path("/config/data/playlists") / item.name / "playlist.xml",
                None,
            )
            dto["MediaType"] = item.media_type
        elif isinstance(item, _Genre):
            tracks = [
                t for t in self._tracks.values() if item.name.casefold() in {g.casefold() for g in t.genres}
            ]
            dto = self._folder_dto(item.id, item.name, "MusicGenre", None, fields, tracks, [], None, None)
            dto.pop("ChildCount", None)
        elif isinstance(item, _Library):
            dto = self._folder_dto(
                item.id,
                item.name,
                "CollectionFolder",
                item.date_created,
                fields,
                list(self._tracks.values()),
                [],
                None,
                None,
            )
            dto["CollectionType"] = "music"
        else:
            raise TypeError(item)
        if user_data:
            dto["UserData"] = {
                "PlaybackPositionTicks": 0,
                "PlayCount": 0,
                "IsFavorite": False,
                "Played": False,
                "Key": item.id,
                "ItemId": item.id,
            }
        return dto

    def _pair(self, artist: str) -> dict[str, str]:
        return {"Name": artist, "Id": self.artist_id(artist)}

    def _track_dto(self, t: FakeTrack, fields: set[str]) -> dict[str, Any]:
        dto: dict[str, Any] = {
            "Name": t.name,
            "ServerId": self.server_id,
            "Id": t.id,
            "Container": t.container or None,
            "RunTimeTicks": t.run_time_ticks,
            "ProductionYear": t.year,
            "IndexNumber": t.index_number,
            "ParentIndexNumber": t.disc_number,
            "IsFolder": False,
            "Type": "Audio",
            "MediaType": "Audio",
            "LocationType": "FileSystem",
            "Artists": list(t.artists or []),
            "ArtistItems": [self._pair(a) for a in t.artists or []],
            "Album": t.album,
            "AlbumId": t.album_id,
            "AlbumArtist": t.album_artist,
            "AlbumArtists": [self._pair(t.album_artist)],
            "ImageTags": {},
            "BackdropImageTags": [],
        }
        if "DateCreated" in fields:
            dto["DateCreated"] = format_date(t.date_created)
        if "Path" in fields:
            dto["Path"] = str(t.path)
        if "Genres" in fields:
            dto["Genres"] = list(t.genres)
            dto["GenreItems"] = [{"Name": g, "Id": self.genre_id(g)} for g in t.genres]
        if "ParentId" in fields:
            dto["ParentId"] = t.album_id
        if "SortName" in fields:
            dto["SortName"] = t.name.casefold()
        if "MediaSources" in fields:
            dto["MediaSources"] = [self._media_source(t)]
        if "MediaStreams" in fields:
            dto["MediaStreams"] = [self._audio_stream(t)]
        return dto

    def _audio_stream(self, t: FakeTrack) -> dict[str, Any]:
        return {
            "Codec": {"m4a": "aac", "ogg": "vorbis", "wav": "pcm_s16le"}.get(t.container, t.container),
            "Type": "Audio",
            "Index": 0,
            "IsDefault": False,
            "IsForced": False,
            "IsExternal": False,
            "IsInterlaced": False,
            "IsHearingImpaired": False,
            "SupportsExternalStream": False,
            "IsTextSubtitleStream": False,
        }

    def _media_source(self, t: FakeTrack) -> dict[str, Any]:
        try:
            size: int | None = t.path.stat().st_size
        except OSError:
            size = None
        return {
            "Protocol": "File",
            "Id": t.id,
            "Path": str(t.path),
            "Type": "Default",
            "Container": t.container,
            "Size": size,
            "Name": t.path.stem,
            "IsRemote": False,
            "RunTimeTicks": t.run_time_ticks,
            "ReadAtNativeFramerate": False,
            "IgnoreDts": False,
            "IgnoreIndex": False,
            "GenPtsInput": False,
            "SupportsTranscoding": True,
            "SupportsDirectStream": True,
            "SupportsDirectPlay": True,
            "IsInfiniteStream": False,
            "RequiresOpening": False,
            "RequiresClosing": False,
            "RequiresLooping": False,
            "SupportsProbing": True,
            "MediaStreams": [self._audio_stream(t)],
            "MediaAttachments": [],
            "Formats": [],
            "RequiredHttpHeaders": {},
            "HasSegments": False,
        }

    def _folder_dto(
        self,
        item_id: str,
        name: str,
        kind: str,
        created: datetime | None,
        fields: set[str],
        tracks: list[FakeTrack],
        genres: list[str],
        path: Path | None,
        parent_id: str | None,
    ) -> dict[str, Any]:
        dto: dict[str, Any] = {
            "Name": name,
            "ServerId": self.server_id,
            "Id": item_id,
            "IsFolder": True,
            "Type": kind,
            "MediaType": "Unknown",
            "LocationType": "FileSystem",
            "ChildCount": len(tracks),
            "RunTimeTicks": sum(t.run_time_ticks for t in tracks) or None,
            "ImageTags": {},
            "BackdropImageTags": [],
        }
        if "DateCreated" in fields and created is not None:
            dto["DateCreated"] = format_date(created)
        if "Path" in fields and path is not None:
            dto["Path"] = str(path)
        if "Genres" in fields:
            dto["Genres"] = list(genres)
            dto["GenreItems"] = [{"Name": g, "Id": self.genre_id(g)} for g in genres]
        if "ParentId" in fields and parent_id:
            dto["ParentId"] = parent_id
        if "SortName" in fields:
            dto["SortName"] = name.casefold()
        return dto

    @staticmethod
    def _kind(item: Any) -> str:
        return {
            FakeTrack: "Audio",
            _Album: "MusicAlbum",
            _Artist: "MusicArtist",
            FakePlaylist: "Playlist",
            _Genre: "MusicGenre",
            _Library: "CollectionFolder",
        }[type(item)]

    def _result(
        self,
        items: list[Any],
        ctx: _Ctx,
        total: int | None = None,
        start: int = 0,
        entries: list[str] | None = None,
    ) -> _Json:
        fields = set(ctx.enums("fields"))
        user_data = bool(ctx.get_bool("enableUserData", False))
        dtos = [self._dto(i, fields, user_data) for i in items]
        if entries is not None:
            for dto, entry_id in zip(dtos, entries, strict=True):
                dto["PlaylistItemId"] = entry_id
        return _Json(
            {"Items": dtos, "TotalRecordCount": len(items) if total is None else total, "StartIndex": start}
        )

    # ---- sorting / filtering helpers

    def _sort_key(self, key: str, item: Any) -> Any:
        return self._sort_value(item, key)

    def _sort_value(self, item: Any, key: str) -> Any:
        if key in ("SortName", "Name"):
            return item.name.casefold()
        if key == "DateCreated":
            created = getattr(item, "date_created", None)
            return created.replace(tzinfo=created.tzinfo or UTC).timestamp() if created else 0.0
        if key == "ProductionYear":
            return getattr(item, "year", None) or 0
        if key == "IndexNumber":
            return getattr(item, "index_number", None) or 0
        if key == "ParentIndexNumber":
            return getattr(item, "disc_number", None) or 0
        if key == "Album":
            return (item.album if isinstance(item, FakeTrack) else item.name).casefold()
        if key == "AlbumArtist":
            return (getattr(item, "album_artist", "") or "").casefold()
        if key == "Artist":
            return ((item.artists or [""])[0] if isinstance(item, FakeTrack) else item.name).casefold()
        if key == "Runtime":
            return item.run_time_ticks if isinstance(item, FakeTrack) else 0
        if key == "Random":
            return _mix_rank("random", item.id)
        if key == "IsFolder":
            return not isinstance(item, FakeTrack)
        return 0  # Default, PlayCount, DatePlayed, IsPlayed, ...: equal for every item here

    def _sort(self, items: list[Any], sort_by: list[str], sort_order: list[str]) -> list[Any]:
        # RequestHelpers.GetOrderBy: the n-th SortOrder applies to the n-th SortBy, the rest use the first.
        unsupported = [k for k in sort_by if k not in _SORT_KEYS]
        if unsupported and self.strict:
            raise _Violation("unsupported-by-fake", f"SortBy {unsupported} is not modelled by the fake")
        orders = [
            sort_order[i] if i < len(sort_order) else (sort_order[0] if sort_order else "Ascending")
            for i in range(len(sort_by))
        ]
        out = sorted(items, key=lambda i: (i.name.casefold(), i.id))
        for key, order in reversed(list(zip(sort_by, orders, strict=True))):
            out.sort(key=functools.partial(self._sort_key, key), reverse=order == "Descending")
        return out

    def _all_items(self) -> list[Any]:
        return [
            *self._tracks.values(),
            *self._albums.values(),
            *self._artists.values(),
            *self.playlists.values(),
        ]

    def _children(self, parent: Any, recursive: bool) -> list[Any]:
        if isinstance(parent, _Album):
            return list(parent.tracks)
        if isinstance(parent, FakePlaylist):
            return [self._tracks[i] for i in parent.item_ids if i in self._tracks]
        if isinstance(parent, _Library):
            return (
                [*self._tracks.values(), *self._albums.values(), *self._artists.values()]
                if recursive
                else list(self._albums.values())
            )
        return []

    # ---- operations: library

    async def _op_GetItems(self, request: web.Request, ctx: _Ctx) -> _Json:
        ids = ctx.guids("ids")
        parent_id = ctx.guid("parentId")
        recursive = bool(ctx.get_bool("recursive", False))
        if ids:
            items = [
                i for i in (self._lookup(x) for x in ids) if i is not None and not isinstance(i, _Library)
            ]
        elif parent_id:
            parent = self._lookup(parent_id)
            items = self._children(parent, recursive) if parent is not None else []
        elif recursive:
            items = self._all_items()
        else:
            # Not recursive, no parent, no ids: Jellyfin returns the user's views and ignores the filters.
            return self._result([self.library], ctx)

        include, exclude = set(ctx.enums("includeItemTypes")), set(ctx.enums("excludeItemTypes"))
        media_types = set(ctx.enums("mediaTypes"))
        genres = {g.casefold() for g in ctx.get_list("genres", sep="|")}
        years = {int(y) for y in ctx.get_list("years")}
        artist_ids, album_artist_ids = set(ctx.guids("artistIds")), set(ctx.guids("albumArtistIds"))
        contributing = set(ctx.guids("contributingArtistIds"))
        album_ids, excluded = set(ctx.guids("albumIds")), set(ctx.guids("excludeItemIds"))
        term = (ctx.get("searchTerm") or "").casefold()
        starts = (ctx.get("nameStartsWith") or "").casefold()
        filters = set(ctx.enums("filters"))
        unsupported_filters = filters - {"IsFolder", "IsNotFolder", "IsUnplayed", "IsPlayed", "IsFavorite"}
        if unsupported_filters and self.strict:
            raise _Violation("unsupported-by-fake", f"Filters {sorted(unsupported_filters)} are not modelled")

        def keep(item: Any) -> bool:
            kind = self._kind(item)
            track = item if isinstance(item, FakeTrack) else None
            if include and kind not in include or kind in exclude or item.id in excluded:
                return False
            if (
                media_types
                and ("Audio" if track or isinstance(item, FakePlaylist) else "Unknown") not in media_types
            ):
                return False
            item_genres = item.genres if isinstance(item, (FakeTrack, _Album, _Artist)) else []
            if genres and not genres & {g.casefold() for g in item_genres}:
                return False
            if years and getattr(item, "year", None) not in years:
                return False
            performers = {self.artist_id(a) for a in (track.artists or [])} if track else set()
            album_artist = getattr(item, "album_artist", None)
            album_artists = {self.artist_id(album_artist)} if album_artist else set()
            if artist_ids and not artist_ids & (performers | album_artists):
                return False
            if album_artist_ids and not album_artist_ids & album_artists:
                return False
            if contributing and not contributing & (performers - album_artists):
                return False
            if album_ids and not (track and track.album_id in album_ids):
                return False
            if (
                term
                and term not in item.name.casefold()
                or starts
                and not item.name.casefold().startswith(starts)
            ):
                return False
            if "IsFolder" in filters and track or "IsNotFolder" in filters and not track:
                return False
            if (
                "IsPlayed" in filters
                or "IsFavorite" in filters
                or ctx.get_bool("isPlayed")
                or ctx.get_bool("isFavorite")
            ):
                return False  # nothing is played or a favourite in the fake
            if ctx.get_bool("isMissing"):
                return False
            return True

        items = [i for i in items if keep(i)]
        sort_by = [k for k in ctx.enums("sortBy")]
        if sort_by:
            items = self._sort(items, sort_by, ctx.enums("sortOrder"))
        elif not ids:
            if isinstance(self._lookup(parent_id), _Album):
                items = self._sort(items, ["ParentIndexNumber", "IndexNumber"], [])
            elif not isinstance(self._lookup(parent_id), FakePlaylist):
                items = self._sort(items, ["SortName"], [])
        total = len(items)
        start = max(ctx.get_int("startIndex") or 0, 0)
        limit = ctx.get_int("limit")
        page = items[start:] if limit is None else items[start : start + max(limit, 0)]
        return self._result(page, ctx, total=total, start=start)

    async def _op_GetItem(self, request: web.Request, ctx: _Ctx) -> _Json:
        item = self._lookup(normalize_guid(ctx.path_params["itemId"]))
        if item is None:
            return _problem(404, "Not Found")
        all_fields = {"DateCreated", "Path", "Genres", "ParentId", "SortName", "MediaSources", "MediaStreams"}
        return _Json(self._dto(item, all_fields))

    async def _op_DeleteItem(self, request: web.Request, ctx: _Ctx) -> _Json | _Empty:
        item_id = normalize_guid(ctx.path_params["itemId"])
        item = self._lookup(item_id)
        if item is None:
            return _problem(404, "Not Found")
        if not isinstance(item, FakePlaylist):  # media stays: the fake's user may not delete library items
            return _problem(401, "Unauthorized", "Unauthorized access")
        del self.playlists[item.id]
        return _Empty(204)

    # ---- operations: media

    def _track_file(self, ctx: _Ctx) -> FakeTrack | _Json:
        track = self._tracks.get(normalize_guid(ctx.path_params["itemId"]) or "")
        if track is None or not track.path.is_file():
            return _problem(404, "Not Found")
        return track

    async def _op_GetDownload(self, request: web.Request, ctx: _Ctx) -> _Json | _File:
        track = self._track_file(ctx)
        if isinstance(track, _Json):
            return track
        mime = AUDIO_MIME_TYPES.get(track.path.suffix.lower(), "application/octet-stream")
        return _File(track.path, mime, attachment=track.path.name)

    async def _op_GetAudioStream(self, request: web.Request, ctx: _Ctx) -> _Json | _File:
        track = self._track_file(ctx)
        if isinstance(track, _Json):
            return track
        container = ctx.path_params.get("container") or ctx.get("container")
        static = bool(ctx.get_bool("static", False))
        if not static and (container or "").lower() != track.container:
            raise _Violation(
                "unsupported-by-fake",
                f"without static=true Jellyfin would transcode/remux to {container or 'a default'!r}; "
                "the fake only serves the original file (static=true, or the file's own container)",
            )
        return _File(track.path, AUDIO_MIME_TYPES.get(track.path.suffix.lower(), "application/octet-stream"))

    _op_HeadAudioStream = _op_GetAudioStream
    _op_GetAudioStreamByContainer = _op_GetAudioStream
    _op_HeadAudioStreamByContainer = _op_GetAudioStream

    # ---- operations: playlists

    def _playlist(self, ctx: _Ctx, key: str = "playlistId") -> FakePlaylist | None:
        return self.playlists.get(normalize_guid(ctx.path_params[key]) or "")

    async def _op_CreatePlaylist(self, request: web.Request, ctx: _Ctx) -> _Json:
        body = await request.read()
        dto = (
            self.contract.normalize_member_names(
                json.loads(body), {"$ref": "#/components/schemas/CreatePlaylistDto"}
            )
            if body.strip()
            else {}
        )
        # PlaylistsController: the (obsolete) query parameters win over the body.
        name = ctx.get("name") or dto.get("Name")
        ids = ctx.guids("ids") or [g for g in (normalize_guid(i) for i in dto.get("Ids") or []) if g]
        owner = ctx.guid("userId") or normalize_guid(dto.get("UserId")) or self.user_id
        media_type = ctx.get("mediaType") or dto.get("MediaType") or "Audio"
        if not name:
            return _problem(400, "Bad Request", "The playlist name is required")
        playlist = FakePlaylist(
            id=uuid.uuid4().hex,
            name=name,
            owner_id=owner,
            media_type=media_type,
            entries=[(uuid.uuid4().hex, i) for i in ids if i in self._tracks],
            date_created=datetime.now(UTC),
            is_public=bool(dto.get("IsPublic", False)),
        )
        self.playlists[playlist.id] = playlist
        return _Json({"Id": playlist.id})

    async def _op_GetPlaylist(self, request: web.Request, ctx: _Ctx) -> _Json:
        playlist = self._playlist(ctx)
        if playlist is None:
            return _problem(404, "Not Found", "Playlist not found")
        return _Json(
            {
                "OpenAccess": playlist.is_public,
                "Shares": [{"UserId": playlist.owner_id, "CanEdit": True}],
                "ItemIds": playlist.item_ids,
            }
        )

    async def _op_UpdatePlaylist(self, request: web.Request, ctx: _Ctx) -> _Json | _Empty:
        playlist = self._playlist(ctx)
        if playlist is None:
            return _problem(404, "Not Found", "Playlist not found")
        body = await request.read()
        dto = (
            self.contract.normalize_member_names(
                json.loads(body), {"$ref": "#/components/schemas/UpdatePlaylistDto"}
            )
            if body.strip()
            else {}
        )
        if dto.get("Name") is not None:
            playlist.name = dto["Name"]
        if dto.get("Ids") is not None:
            ids = [g for g in (normalize_guid(i) for i in dto["Ids"]) if g and g in self._tracks]
            playlist.entries = [(uuid.uuid4().hex, i) for i in ids]
        if dto.get("IsPublic") is not None:
            playlist.is_public = bool(dto["IsPublic"])
        return _Empty(204)

    async def _op_GetPlaylistItems(self, request: web.Request, ctx: _Ctx) -> _Json:
        playlist = self._playlist(ctx)
        if playlist is None:
            return _problem(404, "Not Found", "Playlist not found")
        entries = [(e, self._tracks[i]) for e, i in playlist.entries if i in self._tracks]
        start = max(ctx.get_int("startIndex") or 0, 0)
        limit = ctx.get_int("limit")
        page = entries[start:] if limit is None else entries[start : start + max(limit, 0)]
        return self._result(
            [t for _, t in page], ctx, total=len(entries), start=start, entries=[e for e, _ in page]
        )

    async def _op_AddItemToPlaylist(self, request: web.Request, ctx: _Ctx) -> _Json | _Empty:
        playlist = self._playlist(ctx)
        if playlist is None:
            return _problem(404, "Not Found", "Playlist not found")
        new = [(uuid.uuid4().hex, i) for i in ctx.guids("ids") if i in self._tracks]
        position = ctx.get_int("position")
        if position is None or position >= len(playlist.entries):
            playlist.entries.extend(new)
        else:
            playlist.entries[max(position, 0) : max(position, 0)] = new
        return _Empty(204)

    async def _op_RemoveItemFromPlaylist(self, request: web.Request, ctx: _Ctx) -> _Json | _Empty:
        playlist = self._playlist(ctx)
        if playlist is None:
            return _problem(404, "Not Found", "Playlist not found")
        gone = {normalize_guid(e) or e for e in ctx.get_list("entryIds")}
        playlist.entries = [(e, i) for e, i in playlist.entries if e not in gone]
        return _Empty(204)

    # ---- operations: Jellyfin's own mixes (MusicManager) and similar items

    def _mix_from_genres(self, genres: Iterable[str], seed: str) -> list[FakeTrack]:
        wanted = {g.casefold() for g in genres}
        tracks = [t for t in self._tracks.values() if wanted & {g.casefold() for g in t.genres}]
        tracks.sort(key=lambda t: _mix_rank(seed, t.id))
        return tracks[:MIX_LIMIT]

    def _mix_result(self, tracks: list[FakeTrack], ctx: _Ctx) -> _Json:
        limit = ctx.get_int("limit")
        page = tracks if limit is None else tracks[: max(limit, 0)]
        return self._result(page, ctx, total=len(tracks), start=0)

    def _mix_for(self, item: Any) -> list[FakeTrack]:
        if isinstance(item, FakeTrack):
            return [item, *(t for t in self._mix_from_genres(item.genres, item.id) if t.id != item.id)]
        if isinstance(item, (_Album, _Artist)):
            return self._mix_from_genres(item.genres, item.id)
        if isinstance(item, FakePlaylist):
            tracks = [self._tracks[i] for i in item.item_ids if i in self._tracks]
            return self._mix_from_genres((g for t in tracks for g in t.genres), item.id)
        if isinstance(item, _Genre):
            return self._mix_from_genres([item.name], item.id)
        if isinstance(item, _Library):
            return self._mix_from_genres((g for t in self._tracks.values() for g in t.genres), item.id)
        return []

    async def _mix_typed(self, ctx: _Ctx, kind: type | None) -> _Json:
        item = self._lookup(normalize_guid(ctx.path_params["itemId"]))
        if item is None or (kind is not None and not isinstance(item, kind)):
            return _problem(404, "Not Found")
        return self._mix_result(self._mix_for(item), ctx)

    async def _op_GetInstantMixFromItem(self, request: web.Request, ctx: _Ctx) -> _Json:
        return await self._mix_typed(ctx, None)

    async def _op_GetInstantMixFromSong(self, request: web.Request, ctx: _Ctx) -> _Json:
        return await self._mix_typed(ctx, FakeTrack)

    async def _op_GetInstantMixFromAlbum(self, request: web.Request, ctx: _Ctx) -> _Json:
        return await self._mix_typed(ctx, _Album)

    async def _op_GetInstantMixFromArtists(self, request: web.Request, ctx: _Ctx) -> _Json:
        return await self._mix_typed(ctx, _Artist)

    async def _op_GetInstantMixFromPlaylist(self, request: web.Request, ctx: _Ctx) -> _Json:
        return await self._mix_typed(ctx, FakePlaylist)

    async def _op_GetInstantMixFromMusicGenreByName(self, request: web.Request, ctx: _Ctx) -> _Json:
        name = ctx.path_params["name"]
        return self._mix_result(self._mix_from_genres([name], self.genre_id(name)), ctx)

    async def _op_GetInstantMixFromMusicGenreById(self, request: web.Request, ctx: _Ctx) -> _Json:
        item = self._lookup(normalize_guid(ctx.get("id")))
        if not isinstance(item, _Genre):
            return _problem(404, "Not Found")
        return self._mix_result(self._mix_from_genres([item.name], item.id), ctx)

    # Jellyfin 12 routes /Albums/{id}/Similar and /Artists/{id}/Similar to the same handler as
    # /Items/{id}/Similar (the item's own type decides what is similar).
    async def _op_GetSimilarAlbums(self, request: web.Request, ctx: _Ctx) -> _Json:
        return await self._op_GetSimilarItems(request, ctx)

    async def _op_GetSimilarArtists(self, request: web.Request, ctx: _Ctx) -> _Json:
        return await self._op_GetSimilarItems(request, ctx)

    async def _op_GetSimilarItems(self, request: web.Request, ctx: _Ctx) -> _Json:
        item = self._lookup(normalize_guid(ctx.path_params["itemId"]))
        if item is None:
            return _problem(404, "Not Found")
        if not isinstance(item, (FakeTrack, _Album, _Artist)):
            return self._result([], ctx)
        excluded = set(ctx.guids("excludeArtistIds"))
        seed = {g.casefold() for g in item.genres}
        pools: dict[type, list[Any]] = {
            FakeTrack: list(self._tracks.values()),
            _Album: list(self._albums.values()),
            _Artist: list(self._artists.values()),
        }
        pool = pools[type(item)]

        def artists_of(x: Any) -> set[str]:
            if isinstance(x, FakeTrack):
                return {self.artist_id(a) for a in [*(x.artists or []), x.album_artist]}
            return {self.artist_id(x.album_artist)} if isinstance(x, _Album) else {x.id}

        scored = [
            (len(seed & {g.casefold() for g in x.genres}), x)
            for x in pool
            if x.id != item.id and not (excluded & artists_of(x))
        ]
        scored = [(s, x) for s, x in scored if s > 0]
        scored.sort(key=lambda sx: (-sx[0], _mix_rank(item.id, sx[1].id)))
        limit = ctx.get_int("limit")
        items = [x for _, x in scored][: limit if limit is not None else None]
        return self._result(items, ctx)

    # ---- operations: system

    async def _op_GetPublicSystemInfo(self, request: web.Request, ctx: _Ctx) -> _Json:
        return _Json(
            {
                "LocalAddress": self.base_url,
                "ServerName": self.server_name,
                "Version": self.version,
                "ProductName": "Jellyfin Server",
                "Id": self.server_id,
                "StartupWizardCompleted": True,
            }
        )

    async def _op_GetSystemInfo(self, request: web.Request, ctx: _Ctx) -> _Json:
        info = (await self._op_GetPublicSystemInfo(request, ctx)).payload
        info.update(
            {
                "PackageName": "fake",
                "HasPendingRestart": False,
                "IsShuttingDown": False,
                "SupportsLibraryMonitor": True,
                "WebSocketPortNumber": self.port or 0,
                "CompletedInstallations": [],
                "CanSelfRestart": True,
                "CanLaunchWebBrowser": False,
                "CastReceiverApplications": [],
                "HasUpdateAvailable": False,
            }
        )
        return _Json(info)

    async def _op_GetUserById(self, request: web.Request, ctx: _Ctx) -> _Json:
        user_id = request.match_info.get("userId") or request.path.rstrip("/").rsplit("/", 1)[-1]
        if normalize_guid(user_id) != self.user_id:
            raise web.HTTPNotFound(text="User not found")
        return _Json(
            {
                "Name": "fake-user",
                "ServerId": self.server_id,
                "Id": self.user_id,
                "HasPassword": True,
                "HasConfiguredPassword": True,
                "HasConfiguredEasyPassword": False,
                "EnableAutoLogin": False,
            }
        )

    async def _op_GetPingSystem(self, request: web.Request, ctx: _Ctx) -> _Json:
        return _Json("Jellyfin Server")

    _op_PostPingSystem = _op_GetPingSystem


def _parse_mediabrowser(header: str, allow_emby: bool) -> dict[str, str] | None:
    """``MediaBrowser Client="x", Device="y", DeviceId="z", Version="1", Token="t"`` -> lower-cased dict."""
    scheme, _, rest = header.strip().partition(" ")
    if not rest or scheme.lower() not in ({"mediabrowser", "emby"} if allow_emby else {"mediabrowser"}):
        return None
    out = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if sep and key:
            out[key.strip().lower()] = unquote(value.strip().strip('"'))
    return out


DEFAULT_TOKEN = make_guid("fake-jellyfin", "token")
DEFAULT_USER_ID = make_guid("fake-jellyfin", "user")
DEFAULT_SERVER_ID = make_guid("fake-jellyfin", "server")
