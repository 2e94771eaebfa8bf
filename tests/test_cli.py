"""The `audiomuse` command end to end: `up` on a temporary data dir (embedded PostgreSQL and
Valkey, web app, worker), Ctrl-C, start again with the data still there; `check`; bad config."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from audio_factory import DEFAULT_LIBRARY, make_library

#: every test here starts `audiomuse` as a child process with its own embedded servers
pytestmark = pytest.mark.slow

AUDIOMUSE = [sys.executable, "-m", "sidecar"]


def _env(data: Path, music: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POSTGRES_", "REDIS_", "DATABASE_", "JELLYFIN_", "NAVIDROME_", "MEDIASERVER_"))
    }
    env.update({"AUDIOMUSE_DATA_DIR": str(data), "LOCAL_MUSIC_DIR": str(music), "WEB_PORT": "0", **extra})
    return env


def _get(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Up:
    """`audiomuse up` as a child process; knows its URL once it prints it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [*AUDIOMUSE, "up"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output: list[str] = []
        self.url = ""
        deadline = time.monotonic() + 120
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                return
        self.stop()
        raise AssertionError("audiomuse up did not start:\n" + "".join(self.output))

    def wait_for(self, predicate: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.25)
        raise AssertionError(f"condition not met; last answer {last!r}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        try:
            out, _ = self.proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, _ = self.proc.communicate()
        self.output.append(out or "")
        return self.proc.returncode


@pytest.fixture
def music(tmp_path: Path) -> Path:
    root = tmp_path / "music"
    make_library(root, DEFAULT_LIBRARY, seconds=0.5)
    return root


def _no_server_left(data: Path) -> bool:
    pid_file = data / "postgres" / "postmaster.pid"
    return not pid_file.exists()


def test_up_runs_everything_stops_cleanly_and_keeps_data(tmp_path: Path, music: Path) -> None:
    data = tmp_path / "data"
    env = _env(data, music)
    up = Up(env)
    try:
        status, health = up.wait_for(
            lambda: (lambda r: r if r[1].get("redis", {}).get("worker") == "ok" else None)(
                _get(up.url + "/healthz")
            )
        )
        assert status == 200 and health["database"]["status"] == "ok" and health["redis"]["status"] == "ok"
        status, started = _get(up.url + "/api/library/sync", "POST", {})
        assert status == 202
        # the worker started by `up` runs the job
        done = up.wait_for(
            lambda: (lambda r: r if r[1]["status"] == "SUCCESS" else None)(
                _get(up.url + f"/api/status/{started['task_id']}")
            )
        )
        assert done[1]["details"]["tracks"] == 9
    finally:
        code = up.stop()
    text = "".join(up.output)
    assert code == 0, text
    assert "AudioMuse sidecar stopped" in text and "Traceback" not in text
    assert _no_server_left(data), "embedded PostgreSQL still running after Ctrl-C"

    again = Up(env)
    try:
        status, stats = _get(again.url + "/api/library/stats")
        assert status == 200 and stats["pending"] == 9, "data did not survive the restart"
        assert (again.url.rsplit(":", 1)[0]) == "http://127.0.0.1"
    finally:
        assert again.stop() == 0, "".join(again.output)


def test_check_prints_one_line_per_check(tmp_path: Path, music: Path) -> None:
    res = subprocess.run(
        [*AUDIOMUSE, "check"], env=_env(tmp_path / "data", music), capture_output=True, text=True, timeout=120
    )
    lines = res.stdout.strip().splitlines()
    assert res.returncode == 0, res.stdout + res.stderr
    assert [line.split(":")[0] for line in lines] == [
        "OK    configuration",
        "OK    database",
        "OK    redis",
        "OK    media server",
        "OK    models",
    ]
    assert lines[4].startswith("OK    models: musicnn-msd_musicnn@")
    assert "pgvector 0.8.6" in lines[1] and "Valkey" in lines[2] and str(music) in lines[3]
    assert _no_server_left(tmp_path / "data")


def test_check_reports_an_unreachable_media_server(tmp_path: Path, music: Path) -> None:
    env = _env(
        tmp_path / "data",
        music,
        MEDIASERVER_TYPE="navidrome",
        NAVIDROME_URL="http://127.0.0.1:9",
        NAVIDROME_USER="u",
        NAVIDROME_PASSWORD="p",
        MEDIA_HTTP_RETRIES="0",
    )
    res = subprocess.run([*AUDIOMUSE, "check"], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    line = next(x for x in res.stdout.splitlines() if "media server" in x)
    assert line.startswith("FAIL  media server: Subsonic: ping: cannot reach http://127.0.0.1:9")


def test_check_reports_a_damaged_model(tmp_path: Path, music: Path) -> None:
    import shutil

    models = tmp_path / "models"
    shutil.copytree(Path(__file__).resolve().parent.parent / "models", models)
    with (models / "mtt_musicnn.onnx").open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    res = subprocess.run(
        [*AUDIOMUSE, "check"],
        env=_env(tmp_path / "data", music, MODEL_DIR=str(models)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1
    line = next(x for x in res.stdout.splitlines() if "models" in x)
    assert line.startswith("FAIL  models:") and "mtt_musicnn.onnx" in line


def test_invalid_configuration_stops_with_one_message(tmp_path: Path, music: Path) -> None:
    env = _env(tmp_path / "data", music, MEDIASERVER_TYPE="jellyfin", JELLYFIN_URL="http://jf:8096")
    res = subprocess.run([*AUDIOMUSE, "up"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "audiomuse: invalid configuration: JELLYFIN_USER_ID: is required when MEDIASERVER_TYPE=jellyfin"
    )
    assert not (tmp_path / "data").exists()  # nothing was started or created


def test_db_migrate_is_idempotent(tmp_path: Path, music: Path) -> None:
    env = _env(tmp_path / "data", music)
    first = subprocess.run(
        [*AUDIOMUSE, "db", "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    second = subprocess.run(
        [*AUDIOMUSE, "db", "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    from sidecar.db.migrate import migrations

    versions = [m.version for m in migrations()]
    assert first.stdout.strip() == f"schema at version {versions[-1]} (applied {versions})", first.stderr
    assert second.stdout.strip() == f"schema at version {versions[-1]} (nothing to apply)", second.stderr


def test_sync_command(tmp_path: Path, music: Path) -> None:
    res = subprocess.run(
        [*AUDIOMUSE, "sync", "--recent", "2"],
        env=_env(tmp_path / "data", music),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "'albums_total': 2" in res.stdout and "'tracks': 4" in res.stdout


def _children(pid: int) -> dict[int, str]:
    """pid -> command line of the direct children of ``pid``."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
    return out


def _worker_pid(up: Up) -> int | None:
    return next((p for p, cmd in _children(up.proc.pid).items() if "sidecar worker" in cmd), None)


def test_up_restarts_a_worker_that_dies(tmp_path: Path, music: Path) -> None:
    up = Up(_env(tmp_path / "data", music))
    try:
        first = up.wait_for(lambda: _worker_pid(up))
        os.kill(first, signal.SIGKILL)
        second = up.wait_for(lambda: (lambda p: p if p and p != first else None)(_worker_pid(up)), timeout=30)
        assert second != first
        status, health = up.wait_for(
            lambda: (lambda r: r if r[1].get("status") == "ok" else None)(_get(up.url + "/healthz")),
            timeout=60,
        )
        assert status == 200 and health["redis"]["worker"] == "ok"
    finally:
        code = up.stop()
    text = "".join(up.output)
    assert code == 0, text
    assert re.search(r"worker exited with code -9 after \d+ s; restarting in 1 s", text), text
    assert "worker restarted" in text


def _valkey_answers(data: Path) -> bool:
    import socket

    try:
        port = int((data / "valkey" / "port").read_text())
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except (OSError, ValueError):
        return False


def test_servers_left_by_a_crashed_up_are_adopted_and_stopped(tmp_path: Path, music: Path) -> None:
    data = tmp_path / "data"
    env = _env(data, music)
    crashed = Up(env)
    worker = crashed.wait_for(lambda: _worker_pid(crashed))
    os.kill(crashed.proc.pid, signal.SIGKILL)  # the `up` process only: what a crash leaves behind
    crashed.proc.wait()
    assert crashed.wait_for(lambda: not Path(f"/proc/{worker}").exists() or None, timeout=60), (
        "the worker outlived its `up`"
    )
    assert not _no_server_left(data) and _valkey_answers(data), (
        "the crash should have left both servers running"
    )
    again = Up(env)
    try:
        status, health = _get(again.url + "/healthz")
        assert status == 200 and health["database"]["status"] == "ok"
    finally:
        code = again.stop()
    text = "".join(again.output)
    assert code == 0, text
    assert "left running by a process that is gone: adopting" in text
    assert _no_server_left(data), "the adopted PostgreSQL is still running"
    assert not _valkey_answers(data), "the adopted Valkey is still running"


def test_analyze_ctrl_c_cancels_cleanly(tmp_path: Path) -> None:
    music = tmp_path / "music"
    make_library(music, DEFAULT_LIBRARY, seconds=8)
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [*AUDIOMUSE, "analyze"],
        env=_env(data, music, WORKER_MAX_JOBS="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if re.search(r"\] \d+/\d+ tracks", line):
            break
    else:
        raise AssertionError("".join(seen))
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert proc.returncode == 130, (out, err)
    assert re.search(r"^cancelled: \d+ of 9 tracks analysed; run again to resume$", out, re.M), out
    assert "Traceback" not in err and "Error" not in err, err
    assert _no_server_left(data) and not _valkey_answers(data)
