"""Subsonic documents for the Subsonic bridge: the caller's format (XML by default, ``f=json``,
``f=jsonp``), the ``subsonic-response`` envelope, and parsing of the upstream server's answers.

Song entries are the upstream server's own ``Child`` objects: a ``dict`` when fetched with
``f=json``, an :class:`xml.etree.ElementTree.Element` (namespace stripped) when fetched as XML,
so an XML client gets exactly the attributes and child elements the server wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any
from xml.etree import ElementTree as ET

from aiohttp import web

XMLNS = "http://subsonic.org/restapi"
BRIDGE_TYPE = "AudioMuse-sidecar"
#: the OpenSubsonic extension the bridge adds (getSonicSimilarTracks, findSonicPath)
SONIC_EXTENSION: dict[str, Any] = {"name": "sonicSimilarity", "versions": [1]}
#: envelope fields copied from the upstream server's answers
ENVELOPE_FIELDS = ("version", "type", "serverVersion")
DEFAULT_API_VERSION = "1.16.1"
_CALLBACK = re.compile(r"^[A-Za-z_$][\w$.]*$")

try:
    SIDECAR_VERSION = package_version("audiomuse-sidecar")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    SIDECAR_VERSION = "0"

Entry = dict[str, Any] | ET.Element


class Fmt(StrEnum):
    XML = "xml"
    JSON = "json"
    JSONP = "jsonp"


@dataclass(frozen=True)
class Format:
    """The answer format a caller asked for (``f`` and, for JSONP, ``callback``)."""

    fmt: Fmt = Fmt.XML
    callback: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, str]) -> Format:
        f = (params.get("f") or "xml").lower()
        if f == "json":
            return cls(Fmt.JSON)
        if f == "jsonp":
            cb = params.get("callback") or ""
            return cls(Fmt.JSONP, cb) if _CALLBACK.match(cb) else cls(Fmt.JSON)
        return cls(Fmt.XML)

    @property
    def fetch(self) -> str:
        """The format in which to fetch entries from the upstream server."""
        return "xml" if self.fmt is Fmt.XML else "json"

    def query(self) -> list[tuple[str, str]]:
        """``f`` (and ``callback``) to ask the upstream server for this format."""
        out = [("f", self.fmt.value)]
        if self.callback:
            out.append(("callback", self.callback))
        return out


@dataclass
class Payload:
    """The content of a subsonic-response in both encodings (only one is filled per answer)."""

    json: dict[str, Any] = field(default_factory=dict)
    xml: list[ET.Element] = field(default_factory=list)


def envelope(info: Mapping[str, Any], status: str) -> dict[str, Any]:
    """The envelope of the bridge's own answers: the upstream's version, type and server
    version when it gave them, and ``openSubsonic: true`` (the bridge speaks an OpenSubsonic
    extension whatever the server behind it)."""
    return {
        "status": status,
        "version": str(info.get("version") or DEFAULT_API_VERSION),
        "type": str(info.get("type") or BRIDGE_TYPE),
        "serverVersion": str(info.get("serverVersion") or SIDECAR_VERSION),
        "openSubsonic": True,
    }


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(fmt: Format, info: Mapping[str, Any], payload: Payload, status: str = "ok") -> web.Response:
    env = envelope(info, status)
    headers = {"Access-Control-Allow-Origin": "*"}
    if fmt.fmt is Fmt.XML:
        root = ET.Element("subsonic-response", {"xmlns": XMLNS, **{k: _xml_value(v) for k, v in env.items()}})
        root.extend(payload.xml)
        text = '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")
        return web.Response(text=text, content_type="application/xml", charset="utf-8", headers=headers)
    doc = json.dumps(
        {"subsonic-response": {**env, **payload.json}}, ensure_ascii=False, separators=(",", ":")
    )
    if fmt.fmt is Fmt.JSONP:
        return web.Response(
            text=f"{fmt.callback}({doc});",
            content_type="application/javascript",
            charset="utf-8",
            headers=headers,
        )
    return web.Response(text=doc, content_type="application/json", charset="utf-8", headers=headers)


# -- payloads ----------------------------------------------------------------------------------


def songs(key: str, entries: Sequence[Entry]) -> Payload:
    """``similarSongs`` / ``similarSongs2``: ``{song: [Child...]}``."""
    out = Payload()
    out.json[key] = {"song": [e for e in entries if isinstance(e, dict)]}
    holder = ET.Element(key)
    for e in entries:
        if isinstance(e, ET.Element):
            e.tag = "song"
            holder.append(e)
    out.xml.append(holder)
    return out


def sonic_matches(matches: Sequence[tuple[Entry, float]]) -> Payload:
    """``sonicMatch: [{entry: Child, similarity}]`` (XML: ``<sonicMatch similarity><entry/>``)."""
    out = Payload()
    out.json["sonicMatch"] = [{"entry": e, "similarity": s} for e, s in matches if isinstance(e, dict)]
    for e, s in matches:
        if isinstance(e, ET.Element):
            e.tag = "entry"
            match = ET.Element("sonicMatch", {"similarity": repr(float(s))})
            match.append(e)
            out.xml.append(match)
    return out


def extensions(items: Sequence[Mapping[str, Any]]) -> Payload:
    out = Payload()
    out.json["openSubsonicExtensions"] = [dict(i) for i in items]
    for i in items:
        el = ET.Element("openSubsonicExtensions", {"name": str(i.get("name", ""))})
        for v in i.get("versions") or []:
            ET.SubElement(el, "versions").text = str(v)
        out.xml.append(el)
    return out


def error(code: int, message: str) -> Payload:
    out = Payload()
    out.json["error"] = {"code": code, "message": message}
    out.xml.append(ET.Element("error", {"code": str(code), "message": message}))
    return out


# -- upstream answers --------------------------------------------------------------------------


def parse_json(body: bytes) -> dict[str, Any] | None:
    """The inner ``subsonic-response`` of a JSON answer, or None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    inner = data.get("subsonic-response") if isinstance(data, dict) else None
    return inner if isinstance(inner, dict) else None


def parse_xml(body: bytes) -> ET.Element | None:
    """The ``subsonic-response`` root of an XML answer with namespaces stripped, or None."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.startswith("{"):
            el.tag = el.tag.split("}", 1)[1]
    return root if root.tag == "subsonic-response" else None


def entry_of(body: bytes, fetch: str, key: str = "song") -> Entry | None:
    """The ``key`` object of a successful answer (``getSong``), in the format it was fetched in."""
    if fetch == "xml":
        root = parse_xml(body)
        if root is None or root.get("status") != "ok":
            return None
        return root.find(key)
    inner = parse_json(body)
    if inner is None or inner.get("status") != "ok":
        return None
    value = inner.get(key)
    return value if isinstance(value, dict) else None


def upstream_info(inner: Mapping[str, Any]) -> dict[str, Any]:
    return {k: inner[k] for k in ENVELOPE_FIELDS if inner.get(k)}
