"""Notices rendered and their letters signed, on worker processes when the service has them.

A signed letter is CPU in Python (render 6.5 ms, sign 12 ms, ``make bench``'s ``letters`` rows),
and a Python process runs Python on one core at a time: in the service's own process, letters
are the notification service's ceiling and it falls behind whatever feeds it (a replay, a
morning at the desk). With ``LETTER_WORKERS`` > 0 the press renders and signs in that many
worker processes, the letters of a batch side by side (:meth:`NoticeWriter.prepared
<services.notification.handlers.NoticeWriter.prepared>`), while the service's event loop goes
on with Kafka, Postgres and deliveries.

The workers load the agencies' keys themselves from ``LETTER_SIGNING_DIR`` (a key does not
cross a pipe), exit when the service does (even on SIGKILL), and a worker that dies is replaced:
the letters it held are made again on a fresh pool, up to :data:`ATTEMPTS` times.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from contracts.events import DossierEvent
from services.notification.document_signing import LetterSigner
from services.notification.domain.notices import DEFAULT_PLACE, Notice, render

log = logging.getLogger(__name__)

ATTEMPTS = 3
"""Pools a letter may break (a worker killed under it) before its event is dead-lettered."""


class LetterPress:
    """Renders an event's notice and signs its letter by the issuing agency."""

    def __init__(
        self,
        signer: LetterSigner,
        *,
        place: str = DEFAULT_PLACE,
        issuers: Mapping[str, str] | None = None,
        workers: int = 0,
        signing_dir: Path | None = None,
    ) -> None:
        """``workers`` > 0 needs ``signing_dir``, the directory ``signer`` was loaded from."""
        if workers < 0:
            raise ValueError("workers must be 0 (in this process) or more")
        if workers and signing_dir is None:
            raise ValueError("letter workers load their keys from a signing directory: give signing_dir")
        self.signer = signer
        self.place = place
        self.issuers = dict(issuers or {})
        self.workers = workers
        self._signing_dir = signing_dir
        self._pool: ProcessPoolExecutor | None = None

    @property
    def parallel(self) -> bool:
        """True when letters are made on worker processes (so a batch's are worth starting together)."""
        return self.workers > 0

    async def notice(self, event: DossierEvent) -> Notice | None:
        """The notice ``event`` calls for, its letter signed; None when it concerns no citizen.

        Raises :class:`~services.notification.document_signing.NoSigningCertificate` when the
        issuing agency has no certificate.
        """
        if not self.parallel:
            return await asyncio.to_thread(self.notice_now, event)
        for attempt in range(1, ATTEMPTS + 1):
            pool = self._started()
            try:
                return await asyncio.get_running_loop().run_in_executor(pool, _make, event)
            except BrokenProcessPool:
                # A worker died (killed, out of memory): every letter on the pool fails with it.
                log.error("a letter worker died (attempt %d of %d); starting a new pool", attempt, ATTEMPTS)
                self._replace(pool)
        raise BrokenProcessPool(f"letter workers died {ATTEMPTS} times making the letter of {event.TYPE}")

    def notice_now(self, event: DossierEvent) -> Notice | None:
        """:meth:`notice` in this process, on the calling thread."""
        notice = render(event, place=self.place, issuers=self.issuers)
        letter = notice.attachment if notice is not None else None
        if notice is None or letter is None or letter.signed_by is None:
            return notice
        data = self.signer.sign_now(letter.data, agency=letter.signed_by, location=self.place)
        return dataclasses.replace(notice, attachment=dataclasses.replace(letter, data=data))

    async def run(self) -> None:
        """Hold the workers from the service's start to its stop (a background task).

        The workers are started at once, not at the first letter: starting one imports the PDF
        and signing libraries and loads the keys (1 to 2 s of CPU), which the first citizen's
        letter, or the first minute of a replay, should not wait for.
        """
        try:
            if self.parallel:
                pool = self._started()
                # As many tasks as workers at once: the pool starts a worker for each.
                loop = asyncio.get_running_loop()
                await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(self.workers)))
            await asyncio.Event().wait()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the workers (letters in hand are abandoned: their events are redelivered)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def worker_pids(self) -> list[int]:
        """The worker processes alive now (for tests and the benchmark's memory figures)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return [pid for pid, process in processes.items() if process.is_alive()]

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            assert self._signing_dir is not None  # checked in __init__
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                # Not fork: the service has threads (asyncio's, OpenTelemetry's) a fork would copy mid-step.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(str(self._signing_dir), self.place, self.issuers),
            )
        return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._pool is broken:
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = None


# In a worker process: the press it serves, set up once by _start_worker.
_worker: LetterPress | None = None


def _start_worker(signing_dir: str, place: str, issuers: dict[str, str]) -> None:
    global _worker
    _worker = LetterPress(LetterSigner.from_directory(Path(signing_dir)), place=place, issuers=issuers)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), name="exit-with-service", daemon=True).start()


def _exit_with(parent: multiprocessing.process.BaseProcess) -> None:
    # A pool's workers wait on a queue their parent also holds: a SIGKILLed service would leave them.
    parent.join()
    os._exit(0)


def _ready() -> int:
    assert _worker is not None, "not a letter worker"
    return os.getpid()


def _make(event: DossierEvent) -> Notice | None:
    assert _worker is not None, "not a letter worker"
    return _worker.notice_now(event)
