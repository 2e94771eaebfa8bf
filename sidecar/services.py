"""Where the database and the queue are: external servers from the settings, or the embedded
default (PostgreSQL 18 + pgvector and Valkey in AUDIOMUSE_DATA_DIR) started on demand."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sidecar.config import Settings
from sidecar.embedded.postgres import EmbeddedPostgres
from sidecar.embedded.valkey import EmbeddedValkey

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoints:
    postgres_dsn: str
    redis_url: str
    embedded: tuple[str, ...] = ()


@dataclass
class Servers:
    """Starts the embedded servers the settings ask for; stops only what it started."""

    settings: Settings
    _pg: EmbeddedPostgres | None = field(default=None, init=False)
    _valkey: EmbeddedValkey | None = field(default=None, init=False)

    def start(self) -> Endpoints:
        s = self.settings
        embedded: list[str] = []
        dsn = s.postgres_dsn()
        if dsn is None:
            self._pg = EmbeddedPostgres(s.audiomuse_data_dir.resolve())
            dsn = self._pg.start()
            embedded.append("postgres")
        url = s.redis_url
        if url is None:
            self._valkey = EmbeddedValkey(s.audiomuse_data_dir.resolve())
            try:
                url = self._valkey.start()
            except Exception:
                self.stop()
                raise
            embedded.append("valkey")
        return Endpoints(dsn, url, tuple(embedded))

    def stop(self) -> None:
        if self._valkey is not None:
            self._valkey.stop()
            self._valkey = None
        if self._pg is not None:
            self._pg.stop()
            self._pg = None

    def __enter__(self) -> Endpoints:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
