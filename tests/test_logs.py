"""LOG_FORMAT: readable lines or one JSON object per line, with the task id set by the worker's
job wrapper and the route set by the web app's middleware."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sidecar.jobs.worker import task_job
from sidecar.logs import TRACK_ID, setup_logging
from sidecar.web.metrics import web_middleware


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, Any]]:
    """The root logger set up as the commands do; yields its stream and a setter of the format."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handlers: list[logging.Handler] = []

    def use(log_format: str) -> None:
        handlers.append(setup_logging("DEBUG", log_format, stream))

    yield stream, use
    for h in handlers:
        root.removeHandler(h)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_context_and_exception(captured: Any) -> None:
    stream, use = captured
    use("json")
    log = logging.getLogger("sidecar.test")
    token = TRACK_ID.set("track-42")
    try:
        log.info("analysed %s in %.1f s\nsecond line", "Song", 1.25)
    finally:
        TRACK_ID.reset(token)
    try:
        raise ValueError("bad frame")
    except ValueError:
        log.exception("decoding failed", extra={"task_id": "task-7"})
    first, second = lines(stream)
    assert set(first) == {"time", "level", "logger", "message", "track_id"}
    assert first["level"] == "INFO" and first["logger"] == "sidecar.test"
    assert first["message"] == "analysed Song in 1.2 s\nsecond line" and first["track_id"] == "track-42"
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert second["task_id"] == "task-7" and "track_id" not in second
    assert second["level"] == "ERROR" and "ValueError: bad frame" in second["exception"]


def test_text_is_the_readable_default(captured: Any) -> None:
    stream, use = captured
    use("text")
    logging.getLogger("sidecar.test").warning("hello %s", "there")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith(" WARNING sidecar.test: hello there") and not line.startswith("{")


async def test_a_jobs_records_carry_its_task_id(captured: Any) -> None:
    stream, use = captured
    use("json")

    async def job(ctx: dict[str, Any], task_id: str) -> dict[str, Any]:
        logging.getLogger("sidecar.jobs.test").info("working")
        return {"status": "SUCCESS"}

    wrapped = task_job(job)
    assert await wrapped({}, "task-a") == {"status": "SUCCESS"}
    assert await wrapped({}, "task-b") == {"status": "SUCCESS"}
    logging.getLogger("sidecar.test").info("outside any job")
    a, b, outside = lines(stream)
    assert (a["task_id"], b["task_id"]) == ("task-a", "task-b")
    assert "task_id" not in outside


async def test_a_requests_records_carry_its_route(captured: Any) -> None:
    stream, use = captured
    use("json")

    async def handler(request: web.Request) -> web.Response:
        logging.getLogger("sidecar.routes.test").info("answering")
        return web.json_response({})

    app = web.Application(middlewares=[web_middleware()])
    app.router.add_get("/api/things/{thing_id}", handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        assert (await client.get("/api/things/123")).status == 200
    finally:
        await client.close()
    records = [r for r in lines(stream) if r["logger"] == "sidecar.routes.test"]
    assert [r["route"] for r in records] == ["/api/things/{thing_id}"]


def test_the_command_line_logs_json_when_asked(tmp_path: Any) -> None:
    """A real command (an invalid LOG_FORMAT is refused like any setting; json is obeyed)."""
    env = {"AUDIOMUSE_DATA_DIR": str(tmp_path), "LOG_FORMAT": "yaml", "PATH": "/usr/bin:/bin"}
    bad = subprocess.run(
        [sys.executable, "-m", "sidecar", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "LOG_FORMAT" in bad.stderr
    code = (
        "import logging, sys; from sidecar.cli import _setup_logging; from sidecar.config import load_settings;"
        "_setup_logging(load_settings()); logging.getLogger('audiomuse').info('started')"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    (record,) = [json.loads(line) for line in run.stderr.splitlines()]
    assert record["message"] == "started" and record["logger"] == "audiomuse" and record["level"] == "INFO"
