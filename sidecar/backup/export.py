"""Writing the analysis backup (format: :mod:`sidecar.backup.format`) as a stream of gzip
bytes: one snapshot of the database read a batch at a time, so memory stays flat for any
library size (the file goes to disk or to an HTTP response as it is made)."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from datetime import UTC, datetime

import asyncpg
import numpy as np

from sidecar.backup import format as fmt
from sidecar.backup.fingerprint import file_fingerprint
from sidecar.db import backup as backup_db

#: compressed bytes gathered before one write
FLUSH_BYTES = 256 * 1024


def _local_fingerprints(rows: list[asyncpg.Record]) -> list[str | None]:
    """The stored fingerprint of each row, else (tracks of the local provider analysed before
    fingerprints existed) the fingerprint of its file when it can be read."""
    out: list[str | None] = []
    for r in rows:
        fp = r["fingerprint"]
        if fp is None and r["provider"] == "local" and r["file_path"]:
            try:
                fp = file_fingerprint(r["file_path"])
            except OSError:
                fp = None
        out.append(fp)
    return out


def record_line(doc: str, fingerprint: str | None, embedding: np.ndarray, mtt: np.ndarray | None) -> bytes:
    """The record's JSON line: the database's JSON with the fingerprint and embeddings added."""
    head = doc.rstrip()
    if not head.endswith("}"):
        raise ValueError("record JSON must be an object")
    mtt_text = "null" if mtt is None else f'"{fmt.encode_embedding(mtt)}"'
    extra = (
        f', "fingerprint": {json.dumps(fingerprint)}, "embedding": "{fmt.encode_embedding(embedding)}", '
        f'"mtt_embedding": {mtt_text}}}'
    )
    return (head[:-1] + extra + "\n").encode()


async def export_analysis(
    db: asyncpg.Pool, provider: str, model_version: str | None, write: Callable[[bytes], Awaitable[None]]
) -> int:
    """Write every analysed track to ``write`` as a gzip backup; returns the number of records."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, 31)
    buffer: list[bytes] = []
    size = 0

    async def put(data: bytes) -> None:
        nonlocal size
        out = deflate.compress(data)
        if out:
            buffer.append(out)
            size += len(out)
        if size >= FLUSH_BYTES:
            await write(b"".join(buffer))
            buffer.clear()
            size = 0

    created = datetime.now(UTC).isoformat(timespec="seconds")
    await put((json.dumps(fmt.header(provider, model_version, created)) + "\n").encode())
    count = 0
    async with db.acquire() as conn:
        async with aclosing(backup_db.analysed_rows(conn)) as batches:
            async for rows in batches:
                fingerprints = await asyncio.to_thread(_local_fingerprints, rows)
                for r, fp in zip(rows, fingerprints, strict=True):
                    await put(record_line(r["doc"], fp, r["embedding"], r["mtt_embedding"]))
                count += len(rows)
    await put((json.dumps(fmt.trailer(count)) + "\n").encode())
    buffer.append(deflate.flush())
    await write(b"".join(buffer))
    return count
