"""The one way a service runs work in the background: again and again, surviving failures.

The outbox relay, the deadline watcher and the delivery worker each do one pass of their work
(which may itself wait for a notification or the clock) and must outlive a Postgres or Kafka
outage: a failed pass is logged and tried again after a pause, nothing it left undone is lost
(the work waits in the database). Only cancellation, at shutdown, ends the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

log = logging.getLogger(__name__)


async def keep_running(
    name: str, one_pass: Callable[[], Awaitable[object]], *, retry_seconds: float = 1.0
) -> NoReturn:
    """Await ``one_pass()`` forever; an exception is logged and the pass retried after ``retry_seconds``."""
    while True:
        try:
            await one_pass()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; retrying in %s s", name, retry_seconds)
            await asyncio.sleep(retry_seconds)
