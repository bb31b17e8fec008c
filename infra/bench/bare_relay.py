"""The floor under our services: a bare FastStream relay on the same broker, no database.

One ``KafkaBroker`` subscriber reads topic A and republishes every record (key, value, headers) to
topic B, with FastStream's defaults except the ack policy, which is ours (``NACK_ON_ERROR``: the
offset is committed after the handler returned, i.e. after B acknowledged the record) and the raw
body decoder ours use. It runs as its own process, like each service, and logs at INFO as the
services do.

With ``batch`` > 0 it is the batched relay instead: FastStream's batch subscriber (up to
``batch`` records per poll, the size our services use), every record of a batch published
without waiting, then all acknowledgements awaited, then one offset commit: the same shape as
our consumers, so "ours / batched relay" compares like with like.

``measure`` pre-produces N copies of one of our real records to A, starts the relay process and
reports the rate from its first record received to its N-th record acknowledged by Kafka on B.

With ``signing`` (a key registry and a private key, as files) it is the signed relay: every
record is verified first, as our consumers do (``KeyRegistry.verify`` on its ``ce_*`` headers and
value), and re-signed before it is republished, as our outboxes do (``SigningKey``): the same
relay plus exactly the crypto our services add to a hop, so "signed / bare" is its cost.

``python -m infra.bench.bare_relay --bootstrap … --source A --target B --group G --count N
--result out.json [--batch 200] [--key-registry keys.json --signing-key key.jwk.json]`` is the
relay process itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from contracts.signing import KeyRegistry, SignatureRefused, SigningKey
from infra.bench.common import create_topics, memory_mb, say
from services.runtime.kafka_access import KafkaAccess

RELAY_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class SampleRecord:
    """A record as it travels on our topics: key, value and headers."""

    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def size(self) -> int:
        """Bytes of key, value and header names and values (what one record carries)."""
        return len(self.key) + len(self.value) + sum(len(n.encode()) + len(v) for n, v in self.headers)


@dataclass(frozen=True)
class RelayResults:
    """What the bare relay achieved."""

    records: int
    msgs_per_s: float
    """From the first record received to the N-th acknowledged on the target topic."""
    seconds: float
    seconds_with_start: float
    """From the process start (connect, group join) to the N-th acknowledged."""
    landed: int
    """Records found on the target topic afterwards (should equal ``records``)."""
    peak_rss_mb: float | None


@dataclass(frozen=True)
class RelaySigning:
    """The files the signed relay verifies against and signs with."""

    key_registry: Path
    """A JWKS with the public key of whoever signed the records to relay."""
    signing_key: Path
    """The private key the relay signs what it forwards with (of the agency in the records' source)."""


class _Resigner:
    """Verify a record as our consumers do, then sign it again as our outboxes do."""

    def __init__(self, keys: KeyRegistry, signer: SigningKey) -> None:
        self._keys = keys
        self._signer = signer
        self.refused: str | None = None

    def __call__(self, record: ConsumerRecord) -> dict[str, str] | None:
        """The headers to publish with, re-signed; None (and ``refused`` set) if it does not verify."""
        attributes = {name: raw.decode() for name, raw in record.headers}
        value = record.value or b""
        try:
            self._keys.verify(attributes, value)
        except SignatureRefused as exc:
            self.refused = str(exc)
            return None
        return attributes | self._signer.signature_headers(attributes, value)


async def _raw_record(message: StreamMessage[ConsumerRecord]) -> ConsumerRecord:
    return message.raw_message


async def _raw_records(message: StreamMessage[tuple[ConsumerRecord, ...]]) -> tuple[ConsumerRecord, ...]:
    return message.raw_message


async def relay(
    access: KafkaAccess,
    *,
    source: str,
    target: str,
    group: str,
    count: int,
    batch: int = 0,
    signing: RelaySigning | None = None,
) -> dict[str, Any]:
    """Run the relay until ``count`` records went from ``source`` to ``target``; return timings.

    ``signing``: verify every record and re-sign it; a record that does not verify stops the relay
    (the bench's records are all signed, so that is a fault of the bench) and is reported.
    """
    started = time.perf_counter()
    resign = (
        _Resigner(KeyRegistry([signing.key_registry]), SigningKey.load(signing.signing_key))
        if signing is not None
        else None
    )
    broker = KafkaBroker(access.bootstrap_servers, security=access.security(), client_id="bare-relay")
    done = asyncio.Event()
    seen = 0
    first = 0.0
    last = 0.0

    def counted(records: int) -> None:
        nonlocal seen, first, last
        if seen == 0:
            first = time.perf_counter()
        seen += records
        if seen >= count:
            last = time.perf_counter()
            done.set()

    def headers_of(record: ConsumerRecord) -> dict[str, str] | None:
        if resign is None:
            return {name: value.decode() for name, value in record.headers}
        headers = resign(record)
        if headers is None:
            done.set()  # stop: the result says why
        return headers

    if batch:

        @broker.subscriber(
            source,
            group_id=group,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            batch=True,
            max_records=batch,
            decoder=_raw_records,
        )
        async def republish_batch(records: Any) -> None:
            sends = []
            for record in records:
                headers = headers_of(record)
                if headers is None:
                    return
                sends.append(
                    await broker.publish(
                        record.value, topic=target, key=record.key, headers=headers, no_confirm=True
                    )
                )
            await asyncio.gather(*sends)  # all acknowledged before the offsets are committed
            counted(len(records))

    else:

        @broker.subscriber(
            source,
            group_id=group,
            ack_policy=AckPolicy.NACK_ON_ERROR,
            auto_offset_reset="earliest",
            decoder=_raw_record,
        )
        async def republish(record: Any) -> None:
            # As the services do it: the record itself as the body, no `message: KafkaMessage`
            # parameter (resolved in a thread-pool hop per record).
            headers = headers_of(record)
            if headers is None:
                return
            await broker.publish(record.value, topic=target, key=record.key, headers=headers)
            counted(1)

    await broker.start()
    try:
        async with asyncio.timeout(RELAY_TIMEOUT_SECONDS):
            await done.wait()
    finally:
        await broker.stop()
    return {
        "records": seen,
        "seconds": last - first,
        "seconds_with_start": last - started,
        "refused": resign.refused if resign is not None else None,
    }


def _read_result(code: int, result_path: Path, log_path: Path) -> dict[str, Any]:
    if code != 0 or not result_path.exists():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"the bare relay exited with {code}:\n{tail}")
    result: dict[str, Any] = json.loads(result_path.read_text())
    if result.get("refused"):
        raise RuntimeError(f"the signed relay refused a record: {result['refused']}")
    return result


async def _end_offsets_total(access: KafkaAccess, topic: str) -> int:
    admin = AIOKafkaAdminClient(**access.client_kwargs(), client_id="bench-count")
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for d in described for p in d.get("partitions", [])]
    consumer = AIOKafkaConsumer(**access.client_kwargs(), client_id="bench-count")
    await consumer.start()
    try:
        offsets = await consumer.end_offsets(partitions) if partitions else {}
        return sum(offsets.values())
    finally:
        await consumer.stop()


async def produce_copies(access: KafkaAccess, topic: str, sample: SampleRecord, count: int) -> None:
    """Write ``count`` copies of ``sample`` to ``topic``, each with its own key (spread over partitions)."""
    producer = AIOKafkaProducer(**access.client_kwargs(), enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, key=b"%s-%07d" % (sample.key, i), value=sample.value, headers=list(sample.headers)
            )
            for i in range(count)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def measure(
    access: KafkaAccess,
    *,
    sample: SampleRecord,
    count: int,
    prefix: str,
    log_path: Path,
    batch: int = 0,
    signing: RelaySigning | None = None,
) -> RelayResults:
    """Pre-produce ``count`` records to ``<prefix>.in``, relay them to ``<prefix>.out``, time it.

    ``batch`` > 0: the batched relay, up to that many records per poll. ``signing``: the signed
    relay (``sample`` must then be signed by a key of ``signing.key_registry``).
    """
    kind = f"batched relay ({batch} per poll)" if batch else "bare relay"
    if signing is not None:
        kind = f"signed {kind}"
    signing_args = (
        ["--key-registry", str(signing.key_registry), "--signing-key", str(signing.signing_key)]
        if signing is not None
        else []
    )
    source, target = f"{prefix}.in", f"{prefix}.out"
    await create_topics(access, [source, target])
    say(f"{kind}: producing {count} copies of a real record ({sample.size} B) to {source}")
    await produce_copies(access, source, sample, count)
    result_path = log_path.with_suffix(".json")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    say(f"{kind}: starting the FastStream relay process")
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "infra.bench.bare_relay",
            "--bootstrap",
            access.bootstrap_servers,
            "--source",
            source,
            "--target",
            target,
            "--group",
            f"{prefix}.relay",
            "--count",
            str(count),
            "--result",
            str(result_path),
            "--batch",
            str(batch),
            *signing_args,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **access.env()},
        )
        try:
            async with asyncio.timeout(RELAY_TIMEOUT_SECONDS + 60):
                code = await process.wait()
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
    result = _read_result(code, result_path, log_path)
    landed = await _end_offsets_total(access, target)
    rate = result["records"] / result["seconds"] if result["seconds"] > 0 else 0.0
    say(f"{kind}: {rate:,.0f} records/s ({landed} records on {target})")
    return RelayResults(
        records=result["records"],
        msgs_per_s=rate,
        seconds=result["seconds"],
        seconds_with_start=result["seconds_with_start"],
        landed=landed,
        peak_rss_mb=result.get("peak_rss_mb"),
    )


def main(argv: list[str] | None = None) -> int:
    """The relay process: relay ``--count`` records, write the timings to ``--result``."""
    parser = argparse.ArgumentParser(prog="python -m infra.bench.bare_relay")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=0, help="records per poll (0: one at a time)")
    parser.add_argument("--key-registry", type=Path, help="JWKS to verify every record against")
    parser.add_argument("--signing-key", type=Path, help="private key to re-sign every record with")
    args = parser.parse_args(argv)
    if (args.key_registry is None) != (args.signing_key is None):
        parser.error("--key-registry and --signing-key come together")
    signing = RelaySigning(args.key_registry, args.signing_key) if args.key_registry else None
    # Like the services: INFO, one line per record received and processed.
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s bare-relay %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    result: dict[str, Any] = dict(
        asyncio.run(
            relay(
                KafkaAccess.for_tool(args.bootstrap),
                source=args.source,
                target=args.target,
                group=args.group,
                count=args.count,
                batch=args.batch,
                signing=signing,
            )
        )
    )
    memory = memory_mb(os.getpid())
    result["peak_rss_mb"] = memory[1] if memory else None
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
