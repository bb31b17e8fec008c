"""What signing and verifying every event costs: per operation, per dossier, and in dossiers/s.

The services cannot run unsigned (there is deliberately no switch), so the cost is measured from
its parts, in the same run as the rest:

1. **Per operation**, on the run's real ``handed_over`` record: the CPU time (of this thread) of
   one signature as the outbox makes it (:meth:`SigningKey.sign` on the record's headers and value)
   and of one verification as a consumer makes it (headers decoded, :meth:`KeyRegistry.verify`),
   each over many iterations, the median of a few repeats (:func:`time_crypto`).
2. **Per dossier**, counted in the saturation phase: *signatures* are the outbox rows written for
   the phase's dossiers (each event is signed once, at its outbox write); *verifications* are the
   records each service consumer group received, i.e. for every group the services declare, the
   growth of its topic's end offsets over the phase (every record on a topic is verified by every
   group reading it, including the records of types the group then ignores). Both divided by the
   dossiers.
3. **Share**: crypto CPU seconds per dossier over the CPU seconds per dossier the system used in
   that phase (services, Kafka, Postgres, mailbox; not the load generator), and from it the
   *derived* rate without signing, ``saturation rate / (1 − share)``: what the same machine would
   do if that CPU were free, assuming the system is CPU-bound (it is, on 2 cores) and nothing else
   changes. It is an estimate, never measured: the services always sign.

The signed relay (``bare_relay`` with ``RelaySigning``) measures the same cost directly on one
hop without a database: verify, re-sign, forward.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.agencies import agency_of
from contracts.signing import KEY_ID_HEADER, SIGNATURE_HEADER, KeyRegistry, SigningKey
from infra.bench.bare_relay import RelaySigning, SampleRecord
from infra.bench.common import cpu_per_call_us
from infra.kafka.acls import service_runtimes
from infra.trust import TrustStore
from services.runtime.kafka_access import KafkaAccess

LOAD_GENERATOR = "load generator"
"""The component of the CPU probe that is the bench itself, not the system."""


@dataclass(frozen=True)
class BenchKeys:
    """A fresh key and registry for the signed relay, and the sample signed with that key."""

    signing: RelaySigning
    signer: SigningKey
    registry: KeyRegistry
    sample: SampleRecord


def fresh_keys(sample: SampleRecord, directory: Path) -> BenchKeys:
    """A new key of the agency the sample's ``ce_source`` names, in a trust store under ``directory``.

    The sample is re-signed with it, so the relay verifies with the fresh registry alone (the
    run's own keys stay where they are).
    """
    headers = {name: raw.decode() for name, raw in sample.headers}
    agency = agency_of(headers.get("ce_source", ""))
    if agency is None:
        raise ValueError(f"the sample's ce_source {headers.get('ce_source')!r} names no agency")
    trust = TrustStore(directory)
    key_path = trust.signing_key_path(agency)
    signer = SigningKey.load(key_path)
    signed = SampleRecord(
        key=sample.key, value=sample.value, headers=tuple(signer.sign(sample.headers, sample.value))
    )
    registry = KeyRegistry([trust.key_registry_path])
    return BenchKeys(RelaySigning(trust.key_registry_path, key_path), signer, registry, signed)


@dataclass(frozen=True)
class CryptoTimings:
    """CPU microseconds per operation on one record."""

    sign_us: float
    verify_us: float
    iterations: int
    repeats: int


def time_crypto(keys: BenchKeys, *, iterations: int, repeats: int = 5) -> CryptoTimings:
    """µs of CPU per signature and per verification of ``keys.sample``, as the services make them."""
    sample = keys.sample
    unsigned = [(name, raw) for name, raw in sample.headers if name not in (SIGNATURE_HEADER, KEY_ID_HEADER)]

    def sign() -> object:
        # unit_of_work.write_outbox: signer.sign(event.headers(), event.value())
        return keys.signer.sign(unsigned, sample.value)

    def verify() -> object:
        # RecordProcessor._verify: headers decoded, then the registry verifies
        attributes = {name: raw.decode() for name, raw in sample.headers}
        return keys.registry.verify(attributes, sample.value)

    return CryptoTimings(
        sign_us=cpu_per_call_us(sign, iterations, repeats),
        verify_us=cpu_per_call_us(verify, iterations, repeats),
        iterations=iterations,
        repeats=repeats,
    )


def verifications(written: Mapping[str, int], group_topics: Mapping[str, Iterable[str]]) -> int:
    """Records verified: every record written to a topic, once per consumer group reading it."""
    return sum(written.get(topic, 0) for topics in group_topics.values() for topic in set(topics))


@dataclass(frozen=True)
class SigningCost:
    """Signing's share of the system's CPU at saturation, and the rate it costs (derived)."""

    sign_us: float
    verify_us: float
    signatures_per_dossier: float
    verifications_per_dossier: float
    crypto_cpu_ms_per_dossier: float
    system_cpu_ms_per_dossier: float
    share_of_system_cpu: float
    dossiers_per_s_signed: float
    """Measured: the saturation rate (every event signed and verified)."""
    dossiers_per_s_unsigned_estimated: float
    """Derived, not measured: ``dossiers_per_s_signed / (1 − share_of_system_cpu)``."""


def signing_cost(
    timings: CryptoTimings,
    *,
    dossiers: int,
    signatures: int,
    verified: int,
    cpu_seconds: Mapping[str, float],
    dossiers_per_s: float,
) -> SigningCost:
    """Put the per-operation times, the counts and the phase's CPU together (see the module doc).

    ``cpu_seconds``: CPU used by each component over the phase; the load generator's is left out.
    """
    if dossiers <= 0:
        raise ValueError("no dossiers: nothing to divide by")
    signatures_per = signatures / dossiers
    verifications_per = verified / dossiers
    crypto = (signatures_per * timings.sign_us + verifications_per * timings.verify_us) / 1e6
    system = sum(s for name, s in cpu_seconds.items() if name != LOAD_GENERATOR) / dossiers
    share = min(crypto / system, 0.99) if system > 0 else 0.0
    return SigningCost(
        sign_us=timings.sign_us,
        verify_us=timings.verify_us,
        signatures_per_dossier=signatures_per,
        verifications_per_dossier=verifications_per,
        crypto_cpu_ms_per_dossier=crypto * 1000,
        system_cpu_ms_per_dossier=system * 1000,
        share_of_system_cpu=share,
        dossiers_per_s_signed=dossiers_per_s,
        dossiers_per_s_unsigned_estimated=dossiers_per_s / (1 - share),
    )


def declared_group_topics(topic_prefix: str, services: Iterable[str]) -> dict[str, list[str]]:
    """Each consumer group of ``services`` and the topics it reads, as Kafka names them.

    From the services' own declarations (``ServiceRuntime.subscribe``), not from what the groups
    did: a group that ignores every record of its topic (``notification.intake`` since letters
    moved to ``intake.citizens``) still verifies each one, and leaves no inbox row to find it by.
    """
    found: dict[str, set[str]] = {}
    for runtime in service_runtimes(topic_prefix, names=tuple(services)):
        for subscription in runtime.subscriptions:
            group = found.setdefault(runtime.kafka_name(subscription.consumer), set())
            group.add(runtime.kafka_name(subscription.topic))
    return {group: sorted(topics) for group, topics in sorted(found.items())}


async def end_offsets(access: KafkaAccess, topics: Iterable[str]) -> dict[str, int]:
    """The sum of the end offsets of each topic's partitions: records ever written to it."""
    names = sorted(set(topics))
    if not names:
        return {}
    admin = AIOKafkaAdminClient(**access.client_kwargs(), client_id="bench-signing")
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    partitions = [
        TopicPartition(d["topic"], p["partition"]) for d in described for p in d.get("partitions", [])
    ]
    consumer = AIOKafkaConsumer(**access.client_kwargs(), client_id="bench-signing")
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions) if partitions else {}
    finally:
        await consumer.stop()
    totals = dict.fromkeys(names, 0)
    for tp, end in ends.items():
        totals[tp.topic] += end
    return totals


def written_between(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """Records written to each topic between two readings of :func:`end_offsets`."""
    return {topic: after[topic] - before.get(topic, 0) for topic in after}
