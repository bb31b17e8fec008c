"""The replayer's desk actions survive a connection the server closed under them."""

from __future__ import annotations

import httpx
import pytest

from services.replay.replay import post_idempotent


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
        response = await post_idempotent(client, "http://desk/dossiers", json={"a": 1}, key="replay:e-1")
    assert response.status_code == 201
    assert [r.headers["Idempotency-Key"] for r in seen] == ["replay:e-1", "replay:e-1"]
    assert seen[0].content == seen[1].content


async def test_it_gives_up_after_its_attempts() -> None:
    seen: list[httpx.Request] = []
    async with flaky(5, seen) as client:
        with pytest.raises(httpx.ReadError):
            await post_idempotent(client, "http://desk/dossiers", json={}, key="k", attempts=3)
    assert len(seen) == 3
