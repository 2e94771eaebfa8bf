"""Reading an analysis backup into this library (format: :mod:`sidecar.backup.format`).

Each record is matched to a track this library already lists (run a sync first), by, in order:
its content fingerprint (analysed tracks store theirs; the local provider's files are
fingerprinted on demand, narrowed by size first), its item id when the title/artist/album or
the path confirms it (a media server may re-use ids for other songs), the last three
components of its path, and its title + artist + album (with the duration within 3 s).  A
level that finds several tracks narrows the next one; what stays ambiguous is not imported.

The whole import is one transaction: a file that turns out corrupt, truncated or of another
format anywhere is refused with the line and the reason, and nothing is changed.  A track
already analysed by the record's model version is left as it is, so importing the same file
twice changes nothing the second time.  Records of another model version than this
installation's are not imported (their embeddings live in another space).  Once stored, the
imported tracks are placed in the similarity space (refitting it when the library grew), so
mixes find them at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from sidecar.backup import format as fmt
from sidecar.backup.fingerprint import LocalFingerprints
from sidecar.db import backup as backup_db
from sidecar.similarity.refit import AT_REST, keep_fitted

log = logging.getLogger(__name__)

BATCH = 500
EXAMPLES = 5
#: matching levels, most reliable first
LEVELS = ("fingerprint", "item_id", "path", "tags")
REASONS = {
    "no_match": "no track of this library has its fingerprint, path or title + artist + album",
    "ambiguous": "several tracks of this library fit it equally",
    "duplicate_target": "an earlier record of the file was matched to the same track",
    "other_model_version": "analysed by another model version than this installation's",
}


class ImportBusy(Exception):
    """Another import is running."""


class Rollback(Exception):
    """Ends a dry run's transaction."""


@dataclass
class ImportReport:
    model_version: str | None
    file: dict[str, Any] = field(default_factory=dict)
    records: int = 0
    imported: int = 0
    unchanged: int = 0
    matched_by: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    tracks_in_library: int = 0
    dry_run: bool = False
    similarity: str | None = None
    #: seconds spent matching (the file read included), storing, placing in the similarity space
    timings: dict[str, float] = field(default_factory=dict)

    def skip(self, reason: str, record: fmt.Record) -> None:
        self.skipped[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES:
            shown.append({**record.describe(), "line": record.line})

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format_version": self.file.get("version"),
            "file_created_at": self.file.get("created_at"),
            "file_provider": self.file.get("provider"),
            "file_model_version": self.file.get("model_version"),
            "model_version": self.model_version,
            "dry_run": self.dry_run,
            "records": self.records,
            "imported": self.imported,
            "unchanged": self.unchanged,
            "matched_by": {level: self.matched_by[level] for level in LEVELS},
            "not_imported": sum(self.skipped.values()),
            "reasons": [
                {"reason": r, "count": n, "meaning": REASONS[r], "examples": self.examples[r]}
                for r, n in self.skipped.most_common()
            ],
            "tracks_in_library": self.tracks_in_library,
            "similarity": self.similarity,
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
        }
        if self.tracks_in_library == 0:
            out["hint"] = "this library lists no tracks yet: run `audiomuse sync` first, then import again"
        return out


def choose(found: dict[str, set[str]]) -> tuple[str, str] | str:
    """(level, track id) of the one track the candidates point at, or the reason there is none:
    each level in order; several tracks at a level are narrowed by the levels after it."""
    for i, level in enumerate(LEVELS):
        ids = found.get(level, set())
        for later in LEVELS[i + 1 :]:
            if len(ids) <= 1:
                break
            narrowed = ids & found.get(later, set())
            ids = narrowed or ids
        if len(ids) == 1:
            return level, next(iter(ids))
    return "ambiguous" if any(found.values()) else "no_match"


class _Importer:
    def __init__(
        self, conn: asyncpg.Connection, report: ImportReport, local: LocalFingerprints | None
    ) -> None:
        self.conn = conn
        self.report = report
        self.local = local
        self.taken: set[str] = set()

    async def batch(self, records: list[fmt.Record]) -> None:
        report = self.report
        usable = []
        for r in records:
            if report.model_version is not None and r.model_version != report.model_version:
                report.skip("other_model_version", r)
            else:
                usable.append(r)
        t0 = time.perf_counter()
        rows = await backup_db.candidates(self.conn, usable)
        found: list[dict[str, set[str]]] = [{} for _ in usable]
        state: dict[str, tuple[str, str | None]] = {}
        for row in rows:
            found[row["i"]].setdefault(row["how"], set()).add(row["item_id"])
            state[row["item_id"]] = (row["analysis_status"], row["model_version"])
        if self.local is not None:
            local = self.local
            on_disk = await asyncio.to_thread(
                lambda: [local.find(r.fingerprint) if r.fingerprint else [] for r in usable]
            )
            for where, ids in zip(found, on_disk, strict=True):
                if ids:
                    where.setdefault("fingerprint", set()).update(ids)
            missing = {i for ids in on_disk for i in ids} - state.keys()
            if missing:
                state.update(await backup_db.states(self.conn, sorted(missing)))
        writes: list[tuple[str, Any, str | None]] = []
        for r, where in zip(usable, found, strict=True):
            picked = choose(where)
            if isinstance(picked, str):
                report.skip(picked, r)
                continue
            level, target = picked
            if target in self.taken:
                report.skip("duplicate_target", r)
                continue
            self.taken.add(target)
            report.matched_by[level] += 1
            status, version = state[target]
            if status == "analyzed" and version == r.model_version:
                report.unchanged += 1
                continue
            writes.append((target, r, r.fingerprint if level == "fingerprint" else None))
        t1 = time.perf_counter()
        await backup_db.store_imported(self.conn, writes)
        report.imported += len(writes)
        report.timings["store_s"] = report.timings.get("store_s", 0.0) + time.perf_counter() - t1
        report.timings["match_s"] = report.timings.get("match_s", 0.0) + t1 - t0


async def import_analysis(
    db: asyncpg.Pool,
    chunks: AsyncIterator[bytes],
    model_version: str | None,
    *,
    dry_run: bool = False,
) -> ImportReport:
    """Import the backup given as ``chunks`` of bytes (gzip or plain); returns the report.

    Raises :class:`~sidecar.backup.format.FormatError` (nothing changed) for a file that is not
    a valid backup anywhere, :class:`ImportBusy` while another import runs."""
    report = ImportReport(model_version=model_version, dry_run=dry_run)
    async with db.acquire() as conn:
        try:
            async with conn.transaction():
                if not await backup_db.try_import_lock(conn):
                    raise ImportBusy
                report.tracks_in_library = await backup_db.track_count(conn)
                files = await backup_db.local_files(conn)
                local = LocalFingerprints(files) if files else None
                await _read(conn, chunks, report, local)
                if dry_run:
                    raise Rollback
        except Rollback:
            pass
    if report.imported and not dry_run:  # searchable at once: placed in (or refitting) the similarity space
        t0 = time.perf_counter()
        try:
            report.similarity = await keep_fitted(db, AT_REST)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:  # the import itself is stored
            log.warning("imported tracks not placed in the similarity space: %r", exc)
            report.similarity = (
                f"not placed in the similarity space yet ({type(exc).__name__}: {exc}); "
                "the next analysis run or worker start places them"
            )
        report.timings["similarity_s"] = time.perf_counter() - t0
    return report


async def _read(
    conn: asyncpg.Connection,
    chunks: AsyncIterator[bytes],
    report: ImportReport,
    local: LocalFingerprints | None,
) -> None:
    importer = _Importer(conn, report, local)
    pending: list[fmt.Record] = []
    ended: int | None = None
    async for number, raw in fmt.read_lines(chunks):
        if not raw.strip():
            continue
        obj = fmt.parse_line(raw, number)
        if number == 1:
            report.file = fmt.check_header(obj)
            continue
        if ended is not None:
            raise fmt.FormatError(number, f"data after the end line (line {ended})")
        if isinstance(obj, dict) and obj.get("end") is True:
            ended = number
            if obj.get("records") != report.records:
                raise fmt.FormatError(
                    number,
                    f"the end line counts {obj.get('records')!r} records, the file holds {report.records}",
                )
            continue
        pending.append(fmt.check_record(obj, number))
        report.records += 1
        if len(pending) >= BATCH:
            await importer.batch(pending)
            pending = []
    if not report.file:
        raise fmt.FormatError(None, "the file is empty")
    if ended is None:
        raise fmt.FormatError(None, "the file has no end line: it is truncated")
    if pending:
        await importer.batch(pending)
