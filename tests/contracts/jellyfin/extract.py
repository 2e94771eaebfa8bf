#!/usr/bin/env python3
"""Regenerate the trimmed Jellyfin OpenAPI subset used by ``tests/fakes/jellyfin.py``.

Usage (from the repository root)::

    python tests/contracts/jellyfin/extract.py ../shared/contracts/jellyfin-openapi-12.0.0.json

The full document is Jellyfin's published OpenAPI 3 description of the server API
(https://api.jellyfin.org, ``jellyfin-openapi-stable.json`` for the release). The subset keeps:

* the operations listed in :data:`OPERATIONS` (verbatim),
* every ``$ref`` they reach, resolved transitively (component schemas, parameters, ...),
* ``openapi``, ``info``, ``servers`` and ``components.securitySchemes``,
* ``x-source``: where it came from (file name, sha256, Jellyfin version),
* ``x-all-operations``: every ``METHOD /path`` of the *full* document, so the fake can tell
  "not in Jellyfin 12.0 at all" apart from "in Jellyfin, but not in this subset yet".

To support another endpoint in the fake, add it to :data:`OPERATIONS`, rerun this script and
implement the handler. Output is deterministic (sorted keys, 1-space indent).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2].parent / "shared" / "contracts" / "jellyfin-openapi-12.0.0.json"
DEFAULT_OUTPUT = HERE / "jellyfin-openapi-12.0.0.subset.json"

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# (method, path template) exactly as in the document.
OPERATIONS: list[tuple[str, str]] = [
    # library browsing
    ("get", "/Items"),
    ("get", "/Items/{itemId}"),
    ("delete", "/Items/{itemId}"),
    # media
    ("get", "/Items/{itemId}/Download"),
    ("get", "/Audio/{itemId}/stream"),
    ("head", "/Audio/{itemId}/stream"),
    ("get", "/Audio/{itemId}/stream.{container}"),
    ("head", "/Audio/{itemId}/stream.{container}"),
    # playlists
    ("post", "/Playlists"),
    ("get", "/Playlists/{playlistId}"),
    ("post", "/Playlists/{playlistId}"),
    ("get", "/Playlists/{playlistId}/Items"),
    ("post", "/Playlists/{playlistId}/Items"),
    ("delete", "/Playlists/{playlistId}/Items"),
    # Jellyfin's own (genre based) mixes and similar items
    ("get", "/Items/{itemId}/InstantMix"),
    ("get", "/Songs/{itemId}/InstantMix"),
    ("get", "/Albums/{itemId}/InstantMix"),
    ("get", "/Artists/{itemId}/InstantMix"),
    ("get", "/MusicGenres/{name}/InstantMix"),
    ("get", "/Playlists/{itemId}/InstantMix"),
    ("get", "/MusicGenres/InstantMix"),
    ("get", "/Items/{itemId}/Similar"),
    ("get", "/Albums/{itemId}/Similar"),
    ("get", "/Artists/{itemId}/Similar"),
    # users (the provider checks JELLYFIN_USER_ID)
    ("get", "/Users/{userId}"),
    # system
    ("get", "/System/Info/Public"),
    ("get", "/System/Info"),
    ("get", "/System/Ping"),
    ("post", "/System/Ping"),
]


def _resolve_pointer(doc: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $refs are supported: {ref}")
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _collect_refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref)
        for value in node.values():
            _collect_refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _collect_refs(value, out)


def _set_pointer(doc: dict[str, Any], ref: str, value: Any) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]
    node = doc
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def extract(full: dict[str, Any], source_name: str, source_sha256: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path in OPERATIONS:
        try:
            op = full["paths"][path][method]
        except KeyError:
            raise SystemExit(f"{method.upper()} {path} is not in the source document") from None
        item = paths.setdefault(path, {})
        if "parameters" in full["paths"][path]:  # path-level parameters, if any
            item["parameters"] = full["paths"][path]["parameters"]
        item[method] = op

    out: dict[str, Any] = {
        "openapi": full["openapi"],
        "info": full["info"],
        "servers": full.get("servers", []),
        "paths": paths,
        "components": {"securitySchemes": full.get("components", {}).get("securitySchemes", {})},
    }

    # transitive closure of $refs
    pending: set[str] = set()
    _collect_refs(paths, pending)
    done: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in done:
            continue
        done.add(ref)
        target = _resolve_pointer(full, ref)
        _set_pointer(out, ref, target)
        _collect_refs(target, pending)

    # deterministic component order
    for key, section in list(out["components"].items()):
        out["components"][key] = dict(sorted(section.items()))

    out["x-source"] = {
        "file": source_name,
        "sha256": source_sha256,
        "project": "Jellyfin server (https://github.com/jellyfin/jellyfin), GPL-2.0",
        "version": full["info"].get("version"),
        "extracted-by": "tests/contracts/jellyfin/extract.py",
    }
    out["x-all-operations"] = sorted(
        f"{m.upper()} {p}" for p, item in full["paths"].items() for m in item if m in HTTP_METHODS
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source",
        nargs="?",
        type=Path,
        default=DEFAULT_SOURCE,
        help=f"full Jellyfin OpenAPI document (default: {DEFAULT_SOURCE})",
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the output file is out of date"
    )
    args = parser.parse_args(argv)

    raw = args.source.read_bytes()
    full = json.loads(raw)
    subset = extract(full, args.source.name, hashlib.sha256(raw).hexdigest())
    text = json.dumps(subset, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; rerun {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text, encoding="utf-8")
    n_ops = sum(1 for item in subset["paths"].values() for m in item if m in HTTP_METHODS)
    n_schemas = len(subset["components"].get("schemas", {}))
    print(f"wrote {args.output} ({n_ops} operations, {n_schemas} schemas, {len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
