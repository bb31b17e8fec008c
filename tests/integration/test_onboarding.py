"""One command onboards an agency: it can then do its job on Kafka, and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from contracts.agencies import source_uri
from contracts.envelope import CloudEvent
from contracts.events import StepCompleted
from contracts.signing import KeyRegistry, SigningKey, registry_paths
from infra.agencies import main
from infra.stack import Stack
from services.runtime.kafka_access import KafkaAccess
from tests.kafka_probe import poll_once

pytestmark = pytest.mark.real

AGENCY = "urban_planning"
WHEN = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def onboarded(stack: Stack) -> dict[str, str]:
    argv = ["--run-dir", str(stack.run_dir), "--bootstrap-servers", stack.bootstrap_servers]
    return await asyncio.to_thread(_run_json, [*argv, "add", AGENCY, "--json"])


def _run_json(argv: list[str]) -> dict[str, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    settings: dict[str, str] = json.loads(out.getvalue())
    return settings


async def test_the_agency_reads_its_handoffs_and_answers_signed(onboarded: dict[str, str]) -> None:
    access = KafkaAccess.from_env(onboarded)
    key = SigningKey.load(Path(onboarded["SIGNING_KEY_FILE"]))
    answer = CloudEvent.wrap(
        StepCompleted(
            dossier_id="HS-URBAN-1",
            step_index=1,
            agency=AGENCY,
            action="approve_plan",
            outcome="done",
            received_at=WHEN,
            completed_at=WHEN,
        ),
        source=source_uri(AGENCY),
        time=WHEN,
    )
    headers = key.sign(answer.headers(), answer.value())
    producer = AIOKafkaProducer(**access.client_kwargs(), enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(f"{AGENCY}.events", answer.value(), key=answer.key, headers=headers)
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(producer.send_and_wait("intake.events", b"{}", key=b"HS-URBAN-1"), 15)
    finally:
        await producer.stop()
    # What it signed verifies against the registry every service reads, found without a restart.
    registry = KeyRegistry(registry_paths(onboarded["SIGNING_KEY_REGISTRY"]))
    assert registry.verify({n: v.decode() for n, v in headers}, answer.value()).agency == AGENCY

    consumer = AIOKafkaConsumer(
        f"handoffs.{AGENCY}",
        **access.client_kwargs(),
        group_id=f"{AGENCY}.handoffs",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=1000)  # allowed: joins its group, reads its topic
    finally:
        await consumer.stop()
    snoop = AIOKafkaConsumer(
        "handoffs.tax", **access.client_kwargs(), group_id=f"{AGENCY}.snoop", auto_offset_reset="earliest"
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await poll_once(snoop)
    finally:
        await snoop.stop()


def test_what_the_agency_receives_is_kept_for_its_owner_only(stack: Stack, onboarded: dict[str, str]) -> None:
    env_file = stack.secrets.root / "agencies" / f"{AGENCY}.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert f"KAFKA_SASL_USERNAME={AGENCY}" in env_file.read_text()
    assert stat.S_IMODE(Path(onboarded["SIGNING_KEY_FILE"]).stat().st_mode) == 0o600
    assert AGENCY in stack.secrets.agencies()  # granted again whenever the deployment provisions


def test_a_service_name_cannot_be_taken(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--run-dir", str(stack.run_dir), "--bootstrap-servers", stack.bootstrap_servers]
    assert main([*argv, "add", "intake"]) == 2
    assert "deployment's own principals" in capsys.readouterr().err
    assert main([*argv, "add", "Bad-Name"]) == 2


def test_rotating_keeps_the_old_key_for_what_it_signed(stack: Stack, onboarded: dict[str, str]) -> None:
    argv = ["--run-dir", str(stack.run_dir), "rotate-key", AGENCY]
    old = SigningKey.load(Path(onboarded["SIGNING_KEY_FILE"]))
    assert main(argv) == 0
    statuses = {k.key_id: k.status for k in stack.secrets.registry() if k.agency == AGENCY}
    assert statuses[old.key_id] == "retired"
    assert sorted(statuses.values()).count("active") == 1
