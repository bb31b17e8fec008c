"""A real SMTP server for development and tests: every message received lands as an .eml file.

Built on ``aiosmtpd`` and bound to 127.0.0.1. Use it in-process::

    async with Mailbox(Path("mail"), port=0) as mailbox:   # port 0: any free port
        ...                                                  # send to mailbox.port
        messages = mailbox.messages()                        # parsed, in arrival order

or as a process (``make run`` starts one unless ``SMTP_HOST`` is set)::

    python -m infra.mailbox --dir .run/mail --port 8025

Each message is stored as received, with ``Return-Path``, ``Delivered-To`` and ``X-Peer``
headers added on top the way a mail server records the envelope, one file per message
(``<arrival-ns>-<n>.eml``, written to a temporary name and renamed, so a reader never sees half
a message). Nothing is relayed anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.policy
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType

from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"
DEFAULT_PORT = 8025


class MaildirHandler:
    """aiosmtpd handler: writes each accepted message to ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._sequence = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the message; the client gets 250 only once it is on disk."""
        content = envelope.original_content or b""
        trace = (
            f"Return-Path: <{envelope.mail_from or ''}>\r\n"
            f"Delivered-To: {', '.join(envelope.rcpt_tos)}\r\n"
            f"X-Peer: {session.peer!r}\r\n"
        ).encode()
        name = f"{time.time_ns():020d}-{next(self._sequence):06d}.eml"
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{name}.part"
        partial.write_bytes(trace + content)
        partial.replace(self.directory / name)
        return f"250 OK stored as {name}"


def read_messages(directory: Path) -> list[EmailMessage]:
    """Every message stored in ``directory``, oldest first."""
    if not directory.exists():
        return []
    parser = BytesParser(policy=email.policy.default)
    messages = []
    for path in sorted(directory.glob("[!.]*.eml")):
        message = parser.parsebytes(path.read_bytes())
        assert isinstance(message, EmailMessage)  # what policy.default produces
        messages.append(message)
    return messages


class Mailbox:
    """The SMTP server on the running event loop: async start and stop, messages read from disk."""

    def __init__(self, directory: Path, *, host: str = HOST, port: int = DEFAULT_PORT) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self._handler = MaildirHandler(directory)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0 picks a free one, then ``port`` tells which)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self._handler, hostname="mailbox.localhost", enable_SMTPUTF8=True),
            self.host,
            self.port,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening; messages stay on disk. The same port can be started again."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def running(self) -> bool:
        """True while listening."""
        return self._server is not None

    def messages(self) -> list[EmailMessage]:
        """Every message received so far, oldest first."""
        return read_messages(self.directory)

    async def __aenter__(self) -> Mailbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


@dataclass
class MailboxProcess:
    """The mailbox as a child process (for ``make run`` and the stack the tests start)."""

    directory: Path
    port: int
    log_path: Path
    host: str = HOST
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, *, timeout: float = 20) -> None:
        """Start it and wait until it accepts connections."""
        if _accepting(self.host, self.port):
            raise RuntimeError(
                f"port {self.port} is already in use; set SMTP_PORT to another port,"
                " or SMTP_HOST to use an existing mail server"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "infra.mailbox", "--dir", str(self.directory)]
        command += ["--host", self.host, "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=Path(__file__).resolve().parent.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not _accepting(self.host, self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mailbox did not start on {self.host}:{self.port}:\n{tail}")
            time.sleep(0.1)

    def is_alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the process (messages stay in ``directory``)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def messages(self) -> list[EmailMessage]:
        """Every message received so far, oldest first."""
        return read_messages(self.directory)


def _accepting(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


async def serve(directory: Path, *, host: str, port: int) -> None:
    """Run the mailbox until SIGINT or SIGTERM."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    async with Mailbox(directory, host=host, port=port) as mailbox:
        print(f"mailbox: smtp://{mailbox.host}:{mailbox.port} -> {directory}", flush=True)
        await stopping.wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.mailbox --dir .run/mail --port 8025``."""
    parser = argparse.ArgumentParser(
        prog="python -m infra.mailbox", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--dir", type=Path, default=Path(".run/mail"), help="where messages are stored")
    parser.add_argument("--host", default=HOST, help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SMTP_PORT", DEFAULT_PORT)))
    parser.add_argument("--list", action="store_true", help="print the stored messages' headers and exit")
    args = parser.parse_args(argv)
    if args.list:
        for message in read_messages(args.dir):
            print(f"{message['Date']}  {message['To']}  {message['Subject']}  {message['Message-ID']}")
        return 0
    asyncio.run(serve(args.dir, host=args.host, port=args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
