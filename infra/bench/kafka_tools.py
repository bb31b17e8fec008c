"""The broker's own limit: Kafka's ``ProducerPerformance`` and ``ConsumerPerformance`` tools.

Both are in ``kafka-tools``, one of the jars ``infra.kafka`` fetches, so they run on the same
classpath as the broker. The producer uses its defaults (``acks=all``, idempotence on, as the
services' relays) and records the size of one of our real events.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from infra.bench.common import create_topics, say
from infra.kafka import libs_dir
from infra.trust import write_private
from services.runtime.kafka_access import KafkaAccess

_LOG4J = (Path(__file__).resolve().parent.parent / "kafka" / "log4j.properties").as_uri()
_PRODUCER_SUMMARY = re.compile(r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)")


class KafkaToolError(RuntimeError):
    """A Kafka tool failed or printed nothing we could read; the message has its output."""


@dataclass(frozen=True)
class KafkaToolResults:
    """What the two tools measured."""

    records: int
    record_size: int
    producer_msgs_per_s: float
    producer_mb_per_s: float
    consumer_msgs_per_s: float
    """``fetch.nMsg.sec``: records per second once the consumer joined its group."""
    consumer_msgs_per_s_with_join: float
    """``nMsg.sec``: the same including the group join (dominates for small runs)."""


async def _run_tool(main_class: str, args: list[str], *, timeout: float) -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaToolError("'java' is not on PATH")
    cmd = [java, "-Xmx256m", f"-Dlog4j.configuration={_LOG4J}", "-cp", f"{libs_dir()}/*", main_class, *args]
    process = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with asyncio.timeout(timeout):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:  # timed out, cancelled (Ctrl-C) or failed: do not leave it
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise KafkaToolError(f"{main_class} exited with {process.returncode}:\n{text[-3000:]}")
    return text


def parse_producer(output: str) -> tuple[float, float]:
    """``(records/s, MB/s)`` from ProducerPerformance's final summary line."""
    matches = _PRODUCER_SUMMARY.findall(output)
    if not matches:
        raise KafkaToolError(f"no summary in ProducerPerformance output:\n{output[-3000:]}")
    _, per_s, mb_s = matches[-1]  # the last line is the whole run; earlier ones are 5 s windows
    return float(per_s), float(mb_s)


def parse_consumer(output: str) -> tuple[float, float]:
    """``(fetch.nMsg.sec, nMsg.sec)`` from ConsumerPerformance's CSV-like output."""
    lines = [line for line in output.splitlines() if line.count(",") >= 9]
    header = next((i for i, line in enumerate(lines) if line.startswith("start.time")), None)
    if header is None or header + 1 >= len(lines):
        raise KafkaToolError(f"no result line in ConsumerPerformance output:\n{output[-3000:]}")
    row = dict(
        zip(
            (c.strip() for c in lines[header].split(",")),
            (v.strip() for v in lines[header + 1].split(",")),
            strict=False,
        )
    )
    return float(row["fetch.nMsg.sec"]), float(row["nMsg.sec"])


async def measure(
    access: KafkaAccess, *, topic: str, records: int, record_size: int, work_dir: Path
) -> KafkaToolResults:
    """Produce ``records`` records of ``record_size`` bytes as fast as possible, then consume them.

    The tools authenticate as ``access`` does (a client properties file in ``work_dir``, mode 0600).
    """
    await create_topics(access, [topic])
    client_config = work_dir / "kafka-tools.properties"
    write_private(client_config, access.java_properties())
    say(f"Kafka ProducerPerformance: {records} records of {record_size} B to {topic}")
    produced = await _run_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        [
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--record-size",
            str(record_size),
            "--throughput",
            "-1",
            "--producer.config",
            str(client_config),
        ],
        timeout=600,
    )
    producer_per_s, producer_mb_s = parse_producer(produced)
    say(f"Kafka ProducerPerformance: {producer_per_s:,.0f} records/s ({producer_mb_s:.1f} MB/s)")
    say(f"Kafka ConsumerPerformance: {records} records from {topic}")
    consumed = await _run_tool(
        "org.apache.kafka.tools.ConsumerPerformance",
        [
            "--bootstrap-server",
            access.bootstrap_servers,
            "--consumer.config",
            str(client_config),
            "--topic",
            topic,
            "--messages",
            str(records),
            "--group",
            f"{topic}.consumer-perf",
            "--timeout",
            "60000",
        ],
        timeout=600,
    )
    consumer_per_s, with_join = parse_consumer(consumed)
    say(f"Kafka ConsumerPerformance: {consumer_per_s:,.0f} records/s ({with_join:,.0f} with the group join)")
    return KafkaToolResults(
        records=records,
        record_size=record_size,
        producer_msgs_per_s=producer_per_s,
        producer_mb_per_s=producer_mb_s,
        consumer_msgs_per_s=consumer_per_s,
        consumer_msgs_per_s_with_join=with_join,
    )
