"""Letters made on worker processes: signed by their agency, recovered when a worker dies, never orphaned.

Real worker processes (``spawn``), real keys (a test CA, as ``make run`` makes them), the
signatures checked by pyHanko's validator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.agencies import LAND_REGISTRY, TAX
from contracts.envelope import CloudEvent
from contracts.events import DossierEvent
from infra.letter_ca import catalog_agencies, issue
from services.notification.document_signing import LetterSigner, NoSigningCertificate
from services.notification.domain.notices import Notice
from services.notification.handlers import NoticeWriter
from services.notification.letter_press import LetterPress
from services.notification.settings import DeliverySettings
from services.runtime.settings import ConfigurationError
from tests.dossier_samples import eventually_equal
from tests.letter_signatures import trusting, validated
from tests.unit.test_letter_signing import unstarted_runtime
from tests.unit.test_letters import apology, pdf_text

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def signing_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("press")
    for agency in (TAX, LAND_REGISTRY):
        issue(root / "signing", root / "ca", agency, catalog_agencies()[agency])
    return root / "signing"


@pytest.fixture
def press(signing_dir: Path) -> Iterator[LetterPress]:
    press = LetterPress(LetterSigner.from_directory(signing_dir), workers=2, signing_dir=signing_dir)
    yield press
    press.close()


def letter_of(notice: Notice | None) -> bytes:
    assert notice is not None
    assert notice.attachment is not None
    return notice.attachment.data


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


async def test_a_letter_made_by_a_worker_is_signed_by_its_agency(
    press: LetterPress, signing_dir: Path
) -> None:
    notice = await press.notice(apology())
    workers = press.worker_pids()
    assert workers
    assert os.getpid() not in workers
    pdf = letter_of(notice)
    status = await validated(pdf, trusting(signing_dir, TAX))
    assert status.bottom_line
    # The same letter as the service's own process makes, signature aside.
    in_process = await LetterPress(press.signer).notice(apology())
    assert pdf_text(pdf) == pdf_text(letter_of(in_process))


async def test_an_agency_without_a_certificate_is_refused_by_the_worker_too(press: LetterPress) -> None:
    with pytest.raises(NoSigningCertificate, match="one_stop"):
        await press.notice(apology(issued_by_agency="one_stop", issuer_name="Bộ phận Một cửa"))


async def test_a_batch_is_made_side_by_side_and_each_event_gets_its_own_letter(press: LetterPress) -> None:
    writer = NoticeWriter(runtime=unstarted_runtime(), press=press)
    events = [enveloped(apology(letter_number=f"PXL-2026-{n:06d}")) for n in range(1, 7)]
    async with writer.prepared(events):
        notices = [await writer.notice(event) for event in events]
    for n, notice in enumerate(notices, start=1):
        assert f"PXL-2026-{n:06d}" in pdf_text(letter_of(notice))
    # After the batch the letters are gone: a redelivery makes its letter again.
    again = await writer.notice(events[0])
    assert "PXL-2026-000001" in pdf_text(letter_of(again))


async def test_a_killed_worker_is_replaced_and_the_letter_still_made(
    press: LetterPress, signing_dir: Path
) -> None:
    await press.notice(apology())
    killed = press.worker_pids()
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    notice = await press.notice(apology())
    assert (await validated(letter_of(notice), trusting(signing_dir, TAX))).bottom_line
    assert not set(press.worker_pids()) & set(killed)


def test_workers_exit_when_the_service_is_killed(signing_dir: Path) -> None:
    script = f"""
import asyncio, json, sys, time
from pathlib import Path
from services.notification.document_signing import LetterSigner
from services.notification.letter_press import LetterPress
from tests.unit.test_letters import apology
d = Path({str(signing_dir)!r})
press = LetterPress(LetterSigner.from_directory(d), workers=2, signing_dir=d)
asyncio.run(press.notice(apology()))
print(json.dumps(press.worker_pids()), flush=True)
time.sleep(600)
"""
    service = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert service.stdout is not None
        workers = json.loads(service.stdout.readline())
        assert workers
        assert all(alive(pid) for pid in workers)
    finally:
        service.send_signal(signal.SIGKILL)
        service.wait()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if alive(pid)], "letter workers outlived their service"


def test_letter_workers_default_to_one_per_core_and_are_bounded() -> None:
    assert DeliverySettings.from_env({}).letter_workers == (os.cpu_count() or 1)
    assert DeliverySettings.from_env({"LETTER_WORKERS": "0"}).letter_workers == 0
    for bad in ("-1", "65", "two"):
        with pytest.raises(ConfigurationError, match="LETTER_WORKERS"):
            DeliverySettings.from_env({"LETTER_WORKERS": bad})


def test_workers_need_the_directory_their_keys_come_from(signing_dir: Path) -> None:
    with pytest.raises(ValueError, match="signing_dir"):
        LetterPress(LetterSigner.from_directory(signing_dir), workers=2)


def enveloped(data: DossierEvent) -> CloudEvent:
    return CloudEvent.wrap(data, source="urn:test", time=datetime.now(UTC))


async def test_the_workers_start_with_the_service_not_at_the_first_letter(press: LetterPress) -> None:
    running = asyncio.create_task(press.run())
    try:

        async def started() -> int:
            return len(press.worker_pids())

        await eventually_equal(started, press.workers, timeout=60)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert press.worker_pids() == []  # stopped with the service
