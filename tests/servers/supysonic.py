"""Run a REAL Subsonic server (supysonic 0.7.9, API 1.12.0) on loopback for tests.

Usage::

    from servers.supysonic import SupysonicServer, running_supysonic

    with running_supysonic(music_dir, workdir) as srv:   # users, folder, scan, serve
        srv.base_url            # "http://127.0.0.1:PORT"
        srv.get_json("getAlbumList2", type="newest")       # -> inner "subsonic-response" dict
        srv.libsonic()          # a py-sonic Connection (legacyAuth=True)

    # session fixture (in conftest.py or a test module):
    @pytest.fixture(scope="session")
    def supysonic(tmp_path_factory):
        root = tmp_path_factory.mktemp("supysonic")
        make_library(root / "music")
        with running_supysonic(root / "music", root / "work") as srv:
            yield srv

How it is isolated:

* Everything (``supysonic.conf``, SQLite DB, cache, logs, daemon socket path) lives in
  ``workdir``. The subprocesses run with ``cwd=workdir``.
* supysonic reads its INI config from ``/etc/supysonic``, ``~/.supysonic``,
  ``~/.config/supysonic/supysonic.conf`` and ``./supysonic.conf`` (there is no
  ``SUPYSONIC_CONFIG`` variable in 0.7.9). The harness starts the same entry points as the
  ``supysonic-cli`` / ``supysonic-server`` console scripts (``supysonic.cli:main`` and
  ``supysonic.server:main``) with ``sys.executable`` (so: the same venv), but first pins
  ``IniConfig.common_paths`` to ``workdir/supysonic.conf`` only. It also sets ``HOME`` and
  ``XDG_CONFIG_HOME`` to a directory inside ``workdir``. A developer's home or ``/etc``
  config is therefore never read.
* The daemon/watcher is not run. Scans run in the foreground via the CLI
  (``folder scan NAME --foreground``).

Facts about supysonic 0.7.9 (checked by tests/test_servers_supysonic.py):

* Auth: only ``p=`` (clear text or ``enc:HEX``) or HTTP Basic auth. A wrong password gives
  HTTP 200 with ``status="failed"`` and error code 40. Token auth (``t``+``s``, no ``p``)
  gives HTTP 200 with error **code 10** ("A required parameter is missing.") because ``p``
  is missing. It does NOT give 41 or 40.
* Unknown methods (e.g. ``getSimilarSongs2``, ``getSimilarSongs``, ``getTopSongs``,
  ``getArtistInfo2``) give **HTTP 404** with ``status="failed"`` and error code 0, message
  "Unknown method" (still in the requested format, JSON with ``f=json``).
* The ``v`` parameter is not checked.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

__all__ = [
    "API_VERSION",
    "ScanResult",
    "SupysonicError",
    "SupysonicServer",
    "find_free_port",
    "running_supysonic",
    "supysonic_available",
]

API_VERSION = "1.12.0"
DEFAULT_PASSWORD = "wonderland-42"

# Runs a supysonic entry point with the config search path pinned to one file.
# argv: [python, -c, BOOT, <conf path>, <"cli"|"server">, <prog args...>]
_BOOT = r"""
import sys
conf, which = sys.argv[1], sys.argv[2]
import supysonic.config as _c
_c.IniConfig.common_paths = [conf]
if which == "cli":
    from supysonic.cli import main
    sys.argv = ["supysonic-cli"] + sys.argv[3:]
else:
    from supysonic.server import main
    sys.argv = ["supysonic-server"] + sys.argv[3:]
sys.exit(main())
"""


class SupysonicError(RuntimeError):
    """The server or a CLI step failed; the message includes the relevant output/log tail."""


def supysonic_available() -> bool:
    """True if supysonic and waitress are importable by ``sys.executable``."""
    try:
        import supysonic  # noqa: F401
        import waitress  # noqa: F401
    except ImportError:
        return False
    return True


def find_free_port(host: str = "127.0.0.1") -> int:
    """An ephemeral TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class ScanResult:
    """Parsed output of ``supysonic-cli folder scan``."""

    added_artists: int = 0
    added_albums: int = 0
    added_tracks: int = 0
    deleted_artists: int = 0
    deleted_albums: int = 0
    deleted_tracks: int = 0
    errors: list[str] = field(default_factory=list)  # paths the scanner could not read
    output: str = ""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


# Servers still running at interpreter exit are stopped (e.g. after a crashed session).
_LIVE: weakref.WeakSet[SupysonicServer] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:  # pragma: no cover - safety net
    for srv in list(_LIVE):
        with contextlib.suppress(Exception):
            srv.stop()


class SupysonicServer:
    """A supysonic instance serving ``music_dir``, with state kept in ``workdir``.

    ``start()`` creates the config, the users (``user`` plus ``extra_users``), the music
    folder (named ``folder_name``), scans it, starts ``supysonic-server -S waitress`` on
    ``host:port`` (a free port if ``port`` is None), waits until ``ping`` answers and
    returns :attr:`base_url`. ``stop()`` terminates the whole process group and reaps it.
    ``start()`` may be called again after ``stop()`` (the DB is kept, the port may change).
    """

    def __init__(
        self,
        music_dir: str | os.PathLike[str],
        workdir: str | os.PathLike[str],
        user: str = "alice",
        password: str = DEFAULT_PASSWORD,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        folder_name: str = "music",
        extra_users: Mapping[str, str] | None = None,
        admin: bool = False,
        scan: bool = True,
        startup_timeout: float = 30.0,
        client_name: str = "test",
        log_level: str = "INFO",
    ) -> None:
        self.music_dir = Path(music_dir).resolve()
        self.workdir = Path(workdir).resolve()
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self._fixed_port = port is not None
        self.folder_name = folder_name
        self.extra_users = dict(extra_users or {})
        self.admin = admin
        self.scan_on_start = scan
        self.startup_timeout = startup_timeout
        self.client_name = client_name
        self.log_level = log_level

        self.conf_path = self.workdir / "supysonic.conf"
        self.db_path = self.workdir / "supysonic.db"
        self.cache_dir = self.workdir / "cache"
        self.home_dir = self.workdir / "home"
        self.log_path = self.workdir / "supysonic.log"  # supysonic's own webapp logger
        self.stdout_path = self.workdir / "server.stdout.log"
        self.stderr_path = self.workdir / "server.stderr.log"
        self.socket_path = self.workdir / "daemon.sock"  # never listened on (no daemon)

        self.last_scan: ScanResult | None = None
        self.startup_seconds: float | None = None  # spawn -> first successful ping
        self._proc: subprocess.Popen[bytes] | None = None
        self._initialized = False

    # ------------------------------------------------------------------ properties

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise SupysonicError("server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return self.base_url + "/rest"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def auth_params(
        self, *, fmt: str | None = "json", user: str | None = None, password: str | None = None
    ) -> dict[str, str]:
        """``u``, ``p``, ``v``, ``c`` (and ``f``) query parameters for password auth."""
        params = {
            "u": user or self.user,
            "p": self.password if password is None else password,
            "v": API_VERSION,
            "c": self.client_name,
        }
        if fmt:
            params["f"] = fmt
        return params

    def url(self, method: str, *, auth: bool = True, **params: Any) -> str:
        """Full URL for ``/rest/<method>.view`` with auth params (JSON) and ``params``.

        Params with value ``None`` are dropped; list values are repeated (``id=a&id=b``).
        """
        q: dict[str, Any] = self.auth_params() if auth else {}
        q.update({k: v for k, v in params.items() if v is not None})
        return f"{self.rest_url}/{method}.view?{urllib.parse.urlencode(q, doseq=True)}"

    # ------------------------------------------------------------------ HTTP helpers

    def request(
        self, method: str, *, auth: bool = True, timeout: float = 10.0, **params: Any
    ) -> tuple[int, dict[str, str], bytes]:
        """GET ``method``: returns (HTTP status, headers, body); never raises on 4xx/5xx."""
        req = urllib.request.Request(self.url(method, auth=auth, **params))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers.items()), e.read()

    def get_json(self, method: str, *, check: bool = True, **params: Any) -> dict[str, Any]:
        """GET ``method`` with ``f=json``; returns the inner ``subsonic-response`` dict.

        With ``check`` (default) a ``status != "ok"`` raises :class:`SupysonicError`.
        """
        status, _, body = self.request(method, **params)
        try:
            data = json.loads(body)["subsonic-response"]
        except (ValueError, KeyError) as e:
            raise SupysonicError(
                f"{method}: HTTP {status}, not a Subsonic JSON answer: {body[:300]!r}"
            ) from e
        if check and data.get("status") != "ok":
            raise SupysonicError(f"{method}: HTTP {status}: {data.get('error')}")
        return data

    def libsonic(self, **kwargs: Any):
        """A ``libsonic.Connection`` (py-sonic) to this server, password (legacy) auth."""
        import libsonic

        kw: dict[str, Any] = {"appName": self.client_name, "legacyAuth": True}
        kw.update(kwargs)
        return libsonic.Connection(f"http://{self.host}", self.user, self.password, port=self.port, **kw)

    # ------------------------------------------------------------------ subprocesses

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPYSONIC")}
        env["HOME"] = str(self.home_dir)
        env["XDG_CONFIG_HOME"] = str(self.home_dir / ".config")
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONSTARTUP", None)
        return env

    def _argv(self, which: str, *args: str) -> list[str]:
        return [sys.executable, "-c", _BOOT, str(self.conf_path), which, *args]

    def cli(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run ``supysonic-cli ARGS`` against this instance's config (cwd=workdir)."""
        self._write_config()
        proc = subprocess.run(
            self._argv("cli", *args),
            check=False,
            cwd=self.workdir,
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise SupysonicError(
                f"supysonic-cli {' '.join(args)} failed (exit {proc.returncode}):\n"
                f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
            )
        return proc

    def _write_config(self) -> None:
        for d in (self.workdir, self.cache_dir, self.home_dir):
            d.mkdir(parents=True, exist_ok=True)
        if self.conf_path.exists():
            return
        # RawConfigParser: no interpolation, so '%' in paths is fine.
        self.conf_path.write_text(
            "[base]\n"
            f"database_uri = sqlite:///{self.db_path}\n"
            "follow_symlinks = no\n"
            "\n[webapp]\n"
            f"cache_dir = {self.cache_dir}\n"
            "mount_webui = no\n"
            "mount_api = yes\n"
            f"log_file = {self.log_path}\n"
            "log_rotate = no\n"
            f"log_level = {self.log_level}\n"
            "online_lyrics = no\n"
            "\n[daemon]\n"
            f"socket = {self.socket_path}\n"
            "run_watcher = no\n"
            "wait_delay = 1\n"
            f"log_file = {self.workdir / 'daemon.log'}\n"
            "log_rotate = no\n"
        )

    def init(self) -> None:
        """Create config, DB, users and the music folder (idempotent per instance)."""
        if self._initialized:
            return
        if not self.music_dir.is_dir():
            raise SupysonicError(f"music_dir {self.music_dir} is not a directory")
        self._write_config()
        users = {self.user: self.password, **self.extra_users}
        existing = self.cli("user", "list").stdout
        for name, pw in users.items():
            if not re.search(rf"^{re.escape(name)}\s", existing, re.MULTILINE):
                self.cli("user", "add", name, "-p", pw)
        if self.admin:
            self.cli("user", "setroles", self.user, "--admin")
        if self.folder_name not in self.cli("folder", "list").stdout.split():
            self.cli("folder", "add", self.folder_name, str(self.music_dir))
        self._initialized = True

    def add_user(self, name: str, password: str) -> None:
        self._write_config()
        self.cli("user", "add", name, "-p", password)

    def scan(self, *, force: bool = False) -> ScanResult:
        """Scan the music folder in the foreground (works while the server runs)."""
        self.init()
        args = ["folder", "scan", self.folder_name, "--foreground"]
        if force:
            args.append("--force")
        out = self.cli(*args).stdout
        res = ScanResult(output=out)
        m = re.search(r"Added: (\d+) artists, (\d+) albums, (\d+) tracks", out)
        if m:
            res.added_artists, res.added_albums, res.added_tracks = map(int, m.groups())
        m = re.search(r"Deleted: (\d+) artists, (\d+) albums, (\d+) tracks", out)
        if m:
            res.deleted_artists, res.deleted_albums, res.deleted_tracks = map(int, m.groups())
        if "Errors in:" in out:
            res.errors = [ln[2:] for ln in out.split("Errors in:", 1)[1].splitlines() if ln.startswith("- ")]
        self.last_scan = res
        return res

    def start(self) -> str:
        """Initialize (first time), scan, start serving; returns :attr:`base_url`."""
        if self.running:
            return self.base_url
        self.init()
        if self.scan_on_start:
            self.scan()
        attempts = 1 if self._fixed_port else 3
        last_err: Exception | None = None
        for _ in range(attempts):
            if not self._fixed_port:
                self.port = find_free_port(self.host)
            try:
                self._spawn_and_wait()
                _LIVE.add(self)
                return self.base_url
            except SupysonicError as e:  # e.g. port taken between probe and bind: retry
                last_err = e
                self.stop()
        assert last_err is not None
        raise last_err

    def _spawn_and_wait(self) -> None:
        assert self.port is not None
        args = ["-S", "waitress", "-h", self.host, "-p", str(self.port), "--threads", "8"]
        t0 = time.monotonic()
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self._proc = subprocess.Popen(
                self._argv("server", *args),
                cwd=self.workdir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # own process group -> killpg in stop()
            )
        ping = self.url("ping")
        deadline = t0 + self.startup_timeout
        last = "no answer yet"
        while True:
            rc = self._proc.poll()
            if rc is not None:
                raise SupysonicError(
                    f"supysonic-server exited with code {rc} before answering ping\n" + self.log_tails()
                )
            try:
                with urllib.request.urlopen(ping, timeout=2.0) as resp:
                    body = json.loads(resp.read())["subsonic-response"]
                if body.get("status") == "ok":
                    self.startup_seconds = time.monotonic() - t0
                    return
                raise SupysonicError(f"ping answered but failed: {body}\n" + self.log_tails())
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError, KeyError) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise SupysonicError(
                    f"supysonic-server did not answer ping at {ping} within "
                    f"{self.startup_timeout}s (last: {last})\n" + self.log_tails()
                )
            time.sleep(0.05)

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for label, p in (
            ("stderr", self.stderr_path),
            ("stdout", self.stdout_path),
            ("supysonic.log", self.log_path),
        ):
            t = _tail(p, lines)
            if t:
                parts.append(f"--- {label} ({p}) ---\n{t}")
        return "\n".join(parts) or "(no server output)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server's process group, SIGKILL after ``timeout``, and reap it."""
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        else:
            proc.wait()
            # The leader is gone; make sure nothing else of its group survives.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    def restart(self) -> str:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop and delete ``workdir`` (never touches ``music_dir``)."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        self._initialized = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running at {self.base_url}" if self.running else "stopped"
        return f"<SupysonicServer {self.music_dir} {state}>"


@contextlib.contextmanager
def running_supysonic(
    music_dir: str | os.PathLike[str],
    workdir: str | os.PathLike[str],
    user: str = "alice",
    password: str = DEFAULT_PASSWORD,
    **kwargs: Any,
) -> Iterator[SupysonicServer]:
    """Context manager: a started :class:`SupysonicServer`, stopped on exit.

    Suited to a session fixture: ``with running_supysonic(music, work) as srv: yield srv``.
    """
    srv = SupysonicServer(music_dir, workdir, user, password, **kwargs)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - manual use
    """``python tests/servers/supysonic.py MUSIC_DIR WORKDIR``: serve until Ctrl-C."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print(_main.__doc__)
        return 2
    with running_supysonic(args[0], args[1]) as srv:
        print(
            f"{srv.base_url}  user={srv.user} password={srv.password} (started in {srv.startup_seconds:.2f}s)"
        )
        with contextlib.suppress(KeyboardInterrupt):
            while srv.running:
                time.sleep(0.5)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
