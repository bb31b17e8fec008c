"""PostgreSQL for development and tests: an embedded server (``pgserver``) or DATABASE_URL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["EmbeddedPostgres", "database_url_or_embedded"]

MAX_CONNECTIONS = 300
"""initdb's default is 100; every service may open ``DB_POOL_SIZE`` (10) connections, and the
tests and the bench run a second system beside the first."""


class EmbeddedPostgres:
    """A real PostgreSQL server from the ``pgserver`` wheel, in a data directory of ours.

    The server stops when the last process holding a handle exits, so the process that
    starts it (``make run`` or the test session) owns it; services get its URL.
    """

    def __init__(self, data_dir: Path) -> None:
        # The server listens on a Unix socket inside data_dir, and socket paths are limited to
        # ~107 bytes: refuse a long path with a clear message instead of a cryptic failure.
        if len(str(data_dir.resolve())) > 80:
            raise ValueError(f"Postgres data dir path too long for its socket: {data_dir}")
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server; return its connection URL."""
        # Imported here: only the embedded path needs it (the Docker image leaves it out).
        from pgserver.postgres_server import get_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.data_dir, cleanup_mode="stop")
        if f"max_connections = '{MAX_CONNECTIONS}'" not in self._auto_conf():
            # A new data directory: raise the limit once; it takes effect on a restart.
            self._server.psql(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS};")
            self._server.cleanup()
            self._server = get_server(self.data_dir, cleanup_mode="stop")
        return str(self._server.get_uri())

    def _auto_conf(self) -> str:
        path = self.data_dir / "postgresql.auto.conf"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        """Release our handle; the server stops when no process holds one."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def database_url_or_embedded(data_dir: Path) -> tuple[str, EmbeddedPostgres | None]:
    """``DATABASE_URL`` if set, else a started embedded server (returned so it can be stopped)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url, None
    embedded = EmbeddedPostgres(data_dir)
    return embedded.start(), embedded
