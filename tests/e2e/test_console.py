"""The operator console as a process, on the real system: its read model, traces, token and pages.

The console is started here (``python -m services.console``) against the session's Kafka and
Postgres, beside the four services; a land transfer filed over HTTP must show up in it. Spans
reach it over OTLP/HTTP from a separate process (``otlp_sender.py``), as from a service. The
last test drives Debian's Chromium through Playwright and keeps screenshots in
``test-artifacts/console/``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from infra.kafka import free_port
from infra.stack import Stack
from tests.dossier_samples import land_transfer, pay, signed_in, wait_for_status

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[2]
SENDER = Path(__file__).with_name("otlp_sender.py")
SCREENSHOTS = REPO / "test-artifacts" / "console"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = f"e2e-console-{secrets.token_hex(12)}"
T = TypeVar("T")


@dataclass
class Console:
    """The console process under test."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self, *, token: str | None = TOKEN) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30, follow_redirects=False)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def console(services: Stack) -> Iterator[Console]:
    """``python -m services.console`` on a free port, with a known token, beside the four services."""
    port = free_port()
    log_dir = services.run_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "console-e2e.log"
    env = {
        **services.service_env("console"),
        "CONSOLE_PORT": str(port),
        "CONSOLE_HOST": "127.0.0.1",
        "CONSOLE_TOKEN": TOKEN,
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.console"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Console(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        _wait_healthy(running)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _wait_healthy(console: Console, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if console.process.poll() is not None:
            raise AssertionError(f"console exited with {console.process.returncode}:\n{console.log_tail()}")
        try:
            with urllib.request.urlopen(f"{console.url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"console not healthy after {timeout:.0f}s:\n{console.log_tail()}")


async def eventually(
    read: Callable[[], Awaitable[T]], ok: Callable[[T], bool], *, what: str, timeout: float = 60
) -> T:
    """Poll ``read()`` until ``ok(value)``; fail with the last value (bounded, never a timed assertion)."""
    deadline = time.monotonic() + timeout
    value = await read()
    while not ok(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout:.0f}s; last value: {value!r}")
        await asyncio.sleep(0.3)
        value = await read()
    return value


@pytest.fixture(scope="module")
async def intake(services: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with signed_in(services, "intake") as client:
        yield client


@pytest.fixture(scope="module")
async def api(console: Console) -> AsyncIterator[httpx.AsyncClient]:
    async with console.client() as client:
        yield client


async def listed(api: httpx.AsyncClient, dossier_id: str, **params: str) -> list[dict[str, Any]]:
    response = await api.get("/api/dossiers", params={"q": dossier_id, **params})
    response.raise_for_status()
    return list(response.json())


async def status_in_console(api: httpx.AsyncClient, dossier_id: str) -> str | None:
    found = await listed(api, dossier_id)
    return found[0]["status"] if found else None


@pytest.fixture(scope="module")
async def returned_dossier(intake: httpx.AsyncClient, api: httpx.AsyncClient) -> dict[str, Any]:
    """A land transfer filed, paid and returned; the console's view of it at each stage is checked."""
    filed = land_transfer(31_001)
    response = await intake.post("/dossiers", json=filed)
    assert response.status_code == 201, response.text
    dossier_id = response.json()["id"]
    await wait_for_status(intake, dossier_id, "awaiting_payment")
    await eventually(
        lambda: status_in_console(api, dossier_id),
        lambda s: s == "awaiting_payment",
        what=f"console shows {dossier_id} awaiting payment",
    )
    assert (await pay(intake, dossier_id)).status_code == 200
    final = await wait_for_status(intake, dossier_id, "returned")
    await eventually(
        lambda: status_in_console(api, dossier_id),
        lambda s: s == "returned",
        what=f"console shows {dossier_id} returned",
    )
    return {"id": dossier_id, "filed": filed, "intake": final}


@pytest.fixture(scope="module")
def trace_id(console: Console, returned_dossier: dict[str, Any]) -> str:
    """A separate process exports the dossier's spans to the console over OTLP/HTTP (protobuf)."""
    result = _send_spans(console, returned_dossier["id"], TOKEN)
    assert result.returncode == 0, f"export refused:\n{result.stderr}\n{console.log_tail()}"
    return result.stdout.strip()


def _send_spans(console: Console, dossier_id: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    # As a service is configured to export to the console.
    env["OTEL_EXPORTER_OTLP_HEADERS"] = f"Authorization=Bearer%20{token}"
    return subprocess.run(
        [sys.executable, str(SENDER), f"{console.url}/v1/traces", dossier_id],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- the read model -----------------------------------------------------------------------------


async def test_console_lists_the_dossier_with_its_status_and_slip(
    api: httpx.AsyncClient, returned_dossier: dict[str, Any]
) -> None:
    dossier_id = returned_dossier["id"]
    [row] = await listed(api, dossier_id)
    assert row["id"] == dossier_id
    assert row["status"] == "returned"
    assert row["procedure_code"] == "LAND-TRANSFER"
    assert row["level"] == "city"
    assert row["applicant_name"] == returned_dossier["filed"]["applicant"]["full_name"]
    assert row["appointment_at"] == returned_dossier["intake"]["appointment_date"]
    assert (row["lateness"], row["late"]) == ("on_time", False)
    assert row["returned_at"].endswith("+07:00")

    # Found by the citizen's name without diacritics, and by id number.
    name = returned_dossier["filed"]["applicant"]["full_name"]  # "Nguyễn Văn An 31001"
    by_name = await api.get("/api/dossiers", params={"q": "nguyen van an 31001"})
    assert dossier_id in [d["id"] for d in by_name.json()], name
    by_id_number = await api.get(
        "/api/dossiers", params={"q": returned_dossier["filed"]["applicant"]["id_number"]}
    )
    assert dossier_id in [d["id"] for d in by_id_number.json()]
    # Filters.
    assert await listed(api, dossier_id, status="returned", late="false")
    assert await listed(api, dossier_id, late="true") == []
    assert await listed(api, dossier_id, status="processing") == []

    detail = (await api.get(f"/api/dossiers/{dossier_id}")).json()
    slip = detail["slip"]
    handoffs = returned_dossier["intake"]["handoffs"]
    assert [(r["from_agency"], r["to_agency"], r["action"]) for r in slip] == [
        (h["from"], h["to"], h["action"]) for h in handoffs
    ]
    assert [r["due_at"] for r in slip] == [h["due_at"] for h in handoffs]
    assert all(r["completed_at"] for r in slip)
    assert detail["applicant"]["id_number"] == returned_dossier["filed"]["applicant"]["id_number"]
    assert (await api.get("/api/dossiers/HS-NO-SUCH")).status_code == 404


async def test_on_time_rates_count_the_returned_dossier(
    api: httpx.AsyncClient, returned_dossier: dict[str, Any]
) -> None:
    by_procedure = (await api.get("/api/on-time", params={"by": "procedure"})).json()
    land = next(g for g in by_procedure["groups"] if g["key"] == "LAND-TRANSFER")
    assert land["total"] >= 1
    assert land["on_time"] >= 1
    assert by_procedure["overall"]["total"] >= land["total"]
    by_agency = (await api.get("/api/on-time", params={"by": "agency"})).json()
    assert {"land_registry", "tax", "one_stop"} <= {g["key"] for g in by_agency["groups"]}
    assert by_agency["measure"].startswith("share of the agency's steps")
    by_level = (await api.get("/api/on-time", params={"by": "level"})).json()
    assert "city" in {g["key"] for g in by_level["groups"]}

    returned_day = returned_dossier["intake"]["handoffs"][-1]["completed_at"][:10]
    that_day = (
        await api.get("/api/on-time", params={"by": "procedure", "from": returned_day, "to": returned_day})
    ).json()
    assert any(g["key"] == "LAND-TRANSFER" for g in that_day["groups"])
    long_ago = (await api.get("/api/on-time", params={"from": "2001-01-01", "to": "2001-12-31"})).json()
    assert (long_ago["overall"]["total"], long_ago["overall"]["percent"], long_ago["groups"]) == (0, None, [])
    assert (
        await api.get("/api/on-time", params={"from": "2026-02-01", "to": "2026-01-01"})
    ).status_code == 422
    assert (await api.get("/api/on-time", params={"by": "weather"})).status_code == 422
    for path in ("/api/overdue", "/api/apologies", "/api/escalations"):
        response = await api.get(path)
        assert response.status_code == 200, path
        assert isinstance(response.json(), list)


# --- traces -------------------------------------------------------------------------------------


async def test_spans_from_another_process_come_back_as_the_dossiers_trace(
    api: httpx.AsyncClient, returned_dossier: dict[str, Any], trace_id: str
) -> None:
    dossier_id = returned_dossier["id"]
    body = (await api.get(f"/api/dossiers/{dossier_id}/trace")).json()
    assert trace_id in body["trace_ids"]
    spans = {s["name"]: s for s in body["spans"] if s["trace_id"] == trace_id}
    assert set(spans) == {"POST /dossiers", "publish handoffs.land_registry", "appraise", "land price lookup"}
    root, produce, appraise, lookup = (
        spans[n]
        for n in ("POST /dossiers", "publish handoffs.land_registry", "appraise", "land price lookup")
    )
    assert (root["service_name"], produce["service_name"]) == ("probe-desk", "probe-desk")
    assert (appraise["service_name"], lookup["service_name"]) == ("probe-registry", "probe-registry")
    assert root["parent_span_id"] is None
    assert produce["parent_span_id"] == root["span_id"]
    assert appraise["parent_span_id"] == produce["span_id"]  # across "services", through traceparent
    assert lookup["parent_span_id"] == appraise["span_id"]
    assert lookup["dossier_id"] is None  # found through its trace, not its own attribute
    assert appraise["attributes"]["dossier.step"] == 1
    assert (root["kind"], appraise["kind"]) == ("SERVER", "CONSUMER")
    assert int(root["start_unix_nano"]) <= int(appraise["start_unix_nano"])
    assert root["start_at"].endswith("+07:00")


async def test_otlp_json_gzip_is_accepted_too(
    console: Console, api: httpx.AsyncClient, returned_dossier: dict[str, Any]
) -> None:
    dossier_id = returned_dossier["id"]
    json_trace = secrets.token_hex(16)
    export = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "probe-json"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": json_trace,
                                "spanId": secrets.token_hex(8),
                                "name": "deliver notice",
                                "kind": 4,
                                "startTimeUnixNano": str(time.time_ns()),
                                "endTimeUnixNano": str(time.time_ns() + 1_000_000),
                                "attributes": [{"key": "dossier.id", "value": {"stringValue": dossier_id}}],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    response = await api.post(
        "/v1/traces",
        content=gzip.compress(json.dumps(export).encode()),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {}
    body = (await api.get(f"/api/dossiers/{dossier_id}/trace")).json()
    assert json_trace in body["trace_ids"]
    [span] = [s for s in body["spans"] if s["trace_id"] == json_trace]
    assert (span["service_name"], span["name"], span["kind"]) == ("probe-json", "deliver notice", "PRODUCER")

    refused = await api.post("/v1/traces", content=b"{oops", headers={"content-type": "application/json"})
    assert refused.status_code == 400


# --- the token ----------------------------------------------------------------------------------


async def test_requests_without_the_token_are_refused(
    console: Console, returned_dossier: dict[str, Any]
) -> None:
    dossier_id = returned_dossier["id"]
    async with (
        console.client(token=None) as anonymous,
        console.client(token="wrong-token-0123456789") as wrong,
    ):
        for client in (anonymous, wrong):
            for path in (
                "/api/dossiers",
                f"/api/dossiers/{dossier_id}",
                f"/api/dossiers/{dossier_id}/trace",
                "/api/on-time",
                "/api/overdue",
                "/api/apologies",
            ):
                assert (await client.get(path)).status_code == 401, path
            for path in ("/", f"/dossiers/{dossier_id}", "/on-time", "/overdue", "/apologies"):
                response = await client.get(path)
                assert response.status_code == 303, path
                assert response.headers["location"].startswith("/login?next=")
        assert (await anonymous.get("/login")).status_code == 200
        assert (await anonymous.get("/health")).status_code == 200

        # A browser signs in with the token and then goes by cookie.
        refused = await anonymous.post("/login", data={"token": "not-it", "next": "/"})
        assert refused.status_code == 401
        signed_in = await anonymous.post("/login", data={"token": TOKEN, "next": f"/dossiers/{dossier_id}"})
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == f"/dossiers/{dossier_id}"
        page = await anonymous.get(f"/dossiers/{dossier_id}")
        assert page.status_code == 200
        assert dossier_id in page.text
        assert (await anonymous.get("/api/dossiers")).status_code == 200


def test_an_exporter_without_the_token_is_refused(console: Console, returned_dossier: dict[str, Any]) -> None:
    result = _send_spans(console, returned_dossier["id"], "wrong-token-0123456789")
    assert result.returncode == 1, result.stdout + result.stderr


# --- the pages in a real browser ----------------------------------------------------------------


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; its absence fails the test (never a silent skip)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `make browser` (apt-get install -y chromium) for the browser test"
        )
    return CHROMIUM


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


async def test_pages_in_headless_chromium(
    console: Console,
    intake: httpx.AsyncClient,
    returned_dossier: dict[str, Any],
    trace_id: str,
    chromium: Path,
    screenshots: Path,
) -> None:
    from playwright.async_api import async_playwright

    dossier_id = returned_dossier["id"]
    profile = Path(tempfile.mkdtemp(prefix="console-chromium-"))
    errors: list[str] = []
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(chromium),
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1400, "height": 900},
                locale="vi-VN",
            )
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))

            # Signed out: the list sends the browser to the sign-in form.
            await page.goto(f"{console.url}/")
            assert "/login" in page.url
            await page.screenshot(path=screenshots / "login.png")
            await page.fill("#token", TOKEN)
            await page.click("button[type=submit]")
            await page.wait_for_selector(f'tr[data-dossier="{dossier_id}"]')
            assert page.url == f"{console.url}/"
            row = page.locator(f'tr[data-dossier="{dossier_id}"]')
            assert "Đã trả kết quả" in await row.inner_text()
            assert "Đúng hạn" in await row.inner_text()

            # Live: a dossier filed now appears without a reload (the list refreshes itself).
            response = await intake.post("/dossiers", json=land_transfer(31_002))
            assert response.status_code == 201
            new_id = response.json()["id"]
            await page.wait_for_selector(f'tr[data-dossier="{new_id}"]', timeout=60_000)
            await page.screenshot(path=screenshots / "list.png", full_page=True)

            # Search by name without diacritics.
            await page.fill("input[name=q]", "nguyen van an 31001")
            await page.click("form.filters button")
            await page.wait_for_selector(f'tr[data-dossier="{dossier_id}"]')
            assert await page.locator(f'tr[data-dossier="{new_id}"]').count() == 0

            # The dossier page: the slip as a timeline, the trace as a waterfall.
            await page.click(f'a[href="/dossiers/{dossier_id}"]')
            await page.wait_for_selector("#timeline svg")
            await page.wait_for_selector("#waterfall svg rect.span")
            slip_rows = len(returned_dossier["intake"]["handoffs"])
            assert await page.locator("#slip tbody tr").count() == slip_rows
            assert await page.locator("#timeline svg rect").count() == slip_rows
            services_drawn = await page.locator("#waterfall svg rect.span").evaluate_all(
                "bars => [...new Set(bars.map(b => b.dataset.service))].sort()"
            )
            assert {"probe-desk", "probe-registry"} <= set(services_drawn)
            await page.screenshot(path=screenshots / "dossier.png", full_page=True)

            # On-time charts per agency, procedure and level over a chosen period.
            await page.click('nav a[href="/on-time"]')
            await page.wait_for_selector("#rates-agency svg")
            await page.wait_for_selector("#rates-procedure svg")
            await page.wait_for_selector("#rates-level svg")
            assert "%" in await page.locator("#overall .big").inner_text()
            await page.screenshot(path=screenshots / "on-time.png", full_page=True)
            await page.fill("input[name=from]", "2001-01-01")
            await page.fill("input[name=to]", "2001-12-31")
            await page.click("form.filters button")
            await page.wait_for_selector("#rates-agency .empty")

            await page.goto(f"{console.url}/overdue")
            await page.wait_for_selector("table#overdue")
            await page.screenshot(path=screenshots / "overdue.png", full_page=True)
            await page.goto(f"{console.url}/apologies")
            await page.wait_for_selector("table#apologies")
            await page.screenshot(path=screenshots / "apologies.png", full_page=True)

            # Signing out ends the session.
            await page.click("nav a.logout")
            await page.wait_for_url("**/login")
            await page.goto(f"{console.url}/on-time")
            assert "/login" in page.url
            await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert errors == [], errors
