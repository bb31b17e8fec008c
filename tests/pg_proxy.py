"""A TCP front for the test Postgres whose connections a test can cut: an outage on demand.

It listens on 127.0.0.1 and forwards each connection to the real server (its Unix socket, or
its host and port). ``cut()`` drops every open connection and refuses new ones until
``restore()``: to a service, exactly what a Postgres restart or a network partition looks like.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit, urlunsplit

from infra.kafka import free_port


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the Postgres of ``database_url``."""

    def __init__(self, database_url: str) -> None:
        self._target = urlsplit(database_url)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """``database_url`` with the proxy as its host."""
        user = self._target.username or ""
        password = f":{self._target.password}" if self._target.password else ""
        return urlunsplit(
            ("postgresql", f"{user}{password}@127.0.0.1:{self.port}", self._target.path, "", "")
        )

    async def restore(self) -> None:
        """Accept connections (again); nothing to do if it does."""
        if self._server is None:
            self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        socket_dir = parse_qs(self._target.query).get("host", [self._target.hostname or ""])[0]
        port = self._target.port or 5432
        if socket_dir.startswith("/"):
            return await asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.{port}")
        return await asyncio.open_connection(socket_dir, port)

    async def _forward(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await self._open_target()
        self._pipes |= {client_writer, server_writer}

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(pump(client_reader, server_writer), pump(server_reader, client_writer))
        self._pipes -= {client_writer, server_writer}
