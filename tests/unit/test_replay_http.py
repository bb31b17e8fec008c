"""The replayer's requests survive a connection the server closed under them, or a restart."""

from __future__ import annotations

import httpx
import pytest

from services.replay.replay import ReplayError, request_again, wait_until_idle


def flaky(failures: int, seen: list[httpx.Request]) -> httpx.AsyncClient:
    """A client whose first ``failures`` requests die on the wire (as on a closing keep-alive)."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= failures:
            raise httpx.ReadError("connection closed by the server", request=request)
        return httpx.Response(201, json={"id": "HS-1"})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_a_broken_connection_is_retried_with_the_same_idempotency_key() -> None:
    seen: list[httpx.Request] = []
    async with flaky(1, seen) as client:
        response = await request_again(
            client,
            "POST",
            "http://desk/dossiers",
            within=5,
            json={"a": 1},
            headers={"Idempotency-Key": "replay:e-1"},
        )
    assert response.status_code == 201
    assert [r.headers["Idempotency-Key"] for r in seen] == ["replay:e-1", "replay:e-1"]
    assert seen[0].content == seen[1].content


async def test_it_gives_up_with_a_clear_error_after_its_time() -> None:
    seen: list[httpx.Request] = []
    async with flaky(1000, seen) as client:
        with pytest.raises(ReplayError, match=r"no answer within 0\.2s"):
            await request_again(client, "GET", "http://desk/clock", within=0.2)
    assert 2 <= len(seen) < 10


def backlogs(totals: list[int]) -> httpx.AsyncClient:
    """A notification service whose ``/backlog`` answers ``totals`` in turn, then its last one."""
    answers = iter(totals)
    last = totals[-1]

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal last
        last = next(answers, last)
        return httpx.Response(200, json={"unconsumed": last, "outbox": 0})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_a_long_catch_up_is_waited_for_while_the_backlog_keeps_falling() -> None:
    # Forty polls of falling work take far longer than the 50 ms allowed without progress.
    async with backlogs([40 - n for n in range(41)]) as client:
        await wait_until_idle(client, {"notification": "http://notification"}, timeout=0.05)


async def test_a_backlog_that_stops_falling_is_an_error_naming_it() -> None:
    async with backlogs([5, 4, 4]) as client:
        with pytest.raises(ReplayError, match=r"no progress for 0s: .*'notification': \{'unconsumed': 4"):
            await wait_until_idle(client, {"notification": "http://notification"}, timeout=0.1)
