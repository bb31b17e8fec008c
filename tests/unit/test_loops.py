"""The background loop: a failed pass is retried, cancellation ends it."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime.loops import keep_running


async def test_a_failed_pass_is_logged_and_retried_until_cancelled(caplog: pytest.LogCaptureFixture) -> None:
    passes: list[int] = []
    done = asyncio.Event()

    async def one_pass() -> None:
        passes.append(len(passes))
        if len(passes) == 1:
            raise ConnectionError("Postgres went away")
        if len(passes) == 3:
            done.set()
        await asyncio.sleep(0)

    loop = asyncio.create_task(keep_running("test loop", one_pass, retry_seconds=0.01))
    await asyncio.wait_for(done.wait(), 5)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert len(passes) >= 3
    assert "test loop failed; retrying in 0.01 s" in caplog.text
