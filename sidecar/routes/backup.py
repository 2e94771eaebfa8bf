"""Backup and restore of the analysis over HTTP: GET /api/analysis/export streams the backup
file as it is made; POST /api/analysis/import reads one from the request body as it arrives
(gzip or plain JSON lines, any size: neither side holds the file in memory) and answers the
import's report once it is stored, in one transaction (see sidecar/backup/importer.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from sidecar.backup.export import export_analysis
from sidecar.backup.format import FormatError
from sidecar.backup.importer import ImportBusy, import_analysis
from sidecar.backup.model_version import installed_model_version
from sidecar.routes.params import bool_param
from sidecar.web.errors import ApiError
from sidecar.web.keys import DB, SETTINGS

routes = web.RouteTableDef()

CHUNK = 256 * 1024


@routes.get("/api/analysis/export")
async def export(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    name = f"audiomuse-analysis-{datetime.now(UTC):%Y%m%d-%H%M%S}.jsonl.gz"
    response = web.StreamResponse(
        headers={"Content-Type": "application/gzip", "Content-Disposition": f'attachment; filename="{name}"'}
    )
    await response.prepare(request)
    version = installed_model_version(settings.model_dir)
    count = await export_analysis(request.app[DB], settings.mediaserver_type.value, version, response.write)
    await response.write_eof()
    request.app.logger.info("analysis export: %d records", count)
    return response


@routes.post("/api/analysis/import")
async def import_(request: web.Request) -> web.Response:
    dry_run = bool_param(request, "dry_run", False)
    if not request.can_read_body:
        raise ApiError(400, "send the backup file as the request body", "gzip or plain JSON lines")
    version = installed_model_version(request.app[SETTINGS].model_dir)
    try:
        report = await import_analysis(
            request.app[DB], request.content.iter_chunked(CHUNK), version, dry_run=dry_run
        )
    except FormatError as exc:
        raise ApiError(
            400, "import refused, nothing was changed", {"line": exc.line, "problem": exc.problem}
        ) from None
    except ImportBusy:
        raise ApiError(
            409, "another import is running", "nothing was changed; try again when it ends"
        ) from None
    return web.json_response(report.as_json())
