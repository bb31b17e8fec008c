"""The bench's cost of signing: counts, arithmetic and the relay's fresh keys (no timing asserted)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.agencies import source_uri
from contracts.envelope import CloudEvent
from contracts.events import StepCompleted
from contracts.signing import KEY_ID_HEADER, KeyRegistry, SigningKey
from infra.bench.bare_relay import SampleRecord
from infra.bench.signing_cost import (
    CryptoTimings,
    declared_group_topics,
    fresh_keys,
    signing_cost,
    time_crypto,
    verifications,
    written_between,
)

WHEN = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)


def signed_sample() -> tuple[SampleRecord, SigningKey]:
    data = StepCompleted(
        dossier_id="HS-BENCH-1",
        step_index=1,
        agency="tax",
        action="assess",
        outcome="done",
        received_at=WHEN,
        completed_at=WHEN,
    )
    event = CloudEvent.wrap(data, source=source_uri("tax"), time=WHEN)
    original = SigningKey.generate("tax")
    headers = tuple(original.sign(event.headers(), event.value()))
    return SampleRecord(key=event.key, value=event.value(), headers=headers), original


def test_every_record_on_a_topic_is_verified_once_per_group_reading_it() -> None:
    written = written_between({"a": 10, "b": 5}, {"a": 16, "b": 9, "c": 3})
    assert written == {"a": 6, "b": 4, "c": 3}
    groups = {"desk": ["a"], "console": ["a"], "registry": ["b"], "idle": []}
    assert verifications(written, groups) == 6 + 6 + 4


def test_groups_come_from_the_declarations_even_those_that_ignore_every_record() -> None:
    groups = declared_group_topics("p.", ["notification", "console"])
    # Letters moved to intake.citizens: notification.intake skips every record it reads, but
    # verifies each one first (and leaves no inbox row).
    assert groups["p.notification.intake"] == ["p.intake.events"]
    assert groups["p.notification.citizens"] == ["p.intake.citizens"]
    assert groups["p.console.intake"] == ["p.intake.events"]


def test_crypto_share_and_the_derived_unsigned_rate() -> None:
    timings = CryptoTimings(sign_us=50.0, verify_us=100.0, iterations=1, repeats=1)
    cost = signing_cost(
        timings,
        dossiers=10,
        signatures=80,  # 8 per dossier: 0.4 ms
        verified=200,  # 20 per dossier: 2 ms
        cpu_seconds={"intake": 0.1, "kafka": 0.1, "postgres": 0.04, "load generator": 5.0},
        dossiers_per_s=38.0,
    )
    assert cost.signatures_per_dossier == 8
    assert cost.verifications_per_dossier == 20
    assert cost.crypto_cpu_ms_per_dossier == pytest.approx(2.4)
    # The load generator is not the system: 0.24 s over 10 dossiers.
    assert cost.system_cpu_ms_per_dossier == pytest.approx(24.0)
    assert cost.share_of_system_cpu == pytest.approx(0.1)
    assert cost.dossiers_per_s_signed == 38.0
    assert cost.dossiers_per_s_unsigned_estimated == pytest.approx(38.0 / 0.9)


def test_no_cpu_reading_means_no_share_and_no_dossiers_is_refused() -> None:
    timings = CryptoTimings(sign_us=50.0, verify_us=100.0, iterations=1, repeats=1)
    cost = signing_cost(timings, dossiers=1, signatures=1, verified=1, cpu_seconds={}, dossiers_per_s=2.0)
    assert cost.share_of_system_cpu == 0.0
    assert cost.dossiers_per_s_unsigned_estimated == 2.0
    with pytest.raises(ValueError, match="no dossiers"):
        signing_cost(timings, dossiers=0, signatures=0, verified=0, cpu_seconds={}, dossiers_per_s=0.0)


def test_the_relay_gets_a_fresh_key_of_the_samples_agency_and_a_sample_it_verifies(tmp_path: Path) -> None:
    sample, original = signed_sample()
    keys = fresh_keys(sample, tmp_path / "trust")

    attributes = {name: raw.decode() for name, raw in keys.sample.headers}
    assert keys.signer.agency == "tax"
    assert attributes[KEY_ID_HEADER] == keys.signer.key_id != original.key_id
    assert keys.sample.value == sample.value
    assert keys.sample.key == sample.key
    # The relay process reads the same files: they verify the re-signed sample.
    registry = KeyRegistry([keys.signing.key_registry])
    assert registry.verify(attributes, keys.sample.value).key_id == keys.signer.key_id
    assert SigningKey.load(keys.signing.signing_key).key_id == keys.signer.key_id

    timings = time_crypto(keys, iterations=3, repeats=2)
    assert timings.sign_us > 0
    assert timings.verify_us > 0
