"""Recording a system's topics from the real broker: selection, windows, exact bytes, order, errors."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer

from infra.bench.common import create_topics
from infra.kafka import free_port
from infra.kafka.acls import OPERATOR
from infra.stack import Stack
from services.replay.record import main, record
from services.replay.recording import RecordedRecord, read_header, read_records
from services.runtime.kafka_access import KafkaAccess

pytestmark = pytest.mark.real

BINARY = b"\x00\xff\xfe binary \x80"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass(frozen=True)
class System:
    """A little system on the session's broker: its prefix, its start time and what it holds."""

    access: KafkaAccess
    """The operator's: the recorder is an operator's tool."""
    prefix: str
    t0: datetime
    sent: tuple[RecordedRecord, ...]

    @property
    def bootstrap(self) -> str:
        return self.access.bootstrap_servers

    def at(self, seconds: float) -> datetime:
        return self.t0 + timedelta(seconds=seconds)


def keys(records: list[RecordedRecord]) -> list[bytes | None]:
    return [r.key for r in records]


@pytest.fixture(scope="module")
async def system(stack: Stack) -> System:
    prefix = f"rec{uuid4().hex[:6]}."
    # An hour ago: old enough to be "the past", young enough for the broker's 7-day retention.
    t0 = datetime.fromtimestamp(int(time.time()) - 3600, UTC)
    base = int(t0.timestamp() * 1000)
    await create_topics(stack.superuser, [prefix + "intake.events"], partitions=2)
    await create_topics(
        stack.superuser,
        # The last one is another system's: same start, but not under the prefix.
        [prefix + "handoffs.tax", prefix + "tax.events", prefix.rstrip(".") + "-other.events"],
        partitions=1,
    )
    # (topic, partition, seconds after t0, key, headers, value); offsets follow from the order.
    plan: list[tuple[str, int, int, bytes | None, tuple[tuple[str, bytes], ...], bytes | None]] = [
        (
            "intake.events",
            0,
            0,
            b"i0-0",
            (("ce_type", b"dossier.received.v1"),),
            b'{"n": "Nguy\xe1\xbb\x85n"}',
        ),
        ("intake.events", 1, 5, b"i1-0", (), b"{}"),
        ("intake.events", 0, 10, b"i0-1", (), b"{}"),
        ("handoffs.tax", 0, 10, b"h0-0", (("traceparent", TRACEPARENT.encode()),), b"{}"),
        ("handoffs.tax", 0, 12, BINARY, (("sig", BINARY), ("sig", b"second")), BINARY),
        ("intake.events", 1, 15, b"i1-1", (), b"{}"),
        ("intake.events", 0, 20, b"i0-2", (), b"{}"),
        # The producer refuses a record with neither key nor value, so one of each.
        ("tax.events", 0, 30, None, (), b"no key"),
        ("tax.events", 0, 31, b"t0-1", (), None),
    ]
    producer = AIOKafkaProducer(**stack.superuser.client_kwargs())
    await producer.start()
    sent = []
    try:
        for topic, partition, seconds, key, headers, value in plan:
            meta = await producer.send_and_wait(
                prefix + topic,
                key=key,
                value=value,
                partition=partition,
                headers=list(headers),
                timestamp_ms=base + seconds * 1000,
            )
            sent.append(
                RecordedRecord(topic, partition, meta.offset, base + seconds * 1000, key, headers, value)
            )
        await producer.send_and_wait(prefix.rstrip(".") + "-other.events", b"not ours")
    finally:
        await producer.stop()
    return System(stack.kafka_access(OPERATOR), prefix, t0, tuple(sent))


async def test_records_every_topic_of_the_system_exactly(system: System, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl.gz"
    count = await record(system.access, out, prefix=system.prefix, progress=False)

    assert count == 9
    header = read_header(out)
    assert header.topics == ("handoffs.tax", "intake.events", "tax.events")
    assert header.records == 9
    assert header.source == system.bootstrap
    assert system.prefix in header.note
    recorded = list(read_records(out))
    # Sorted by timestamp, then topic: h0-0 and i0-1 share a timestamp.
    assert keys(recorded) == [b"i0-0", b"i1-0", b"h0-0", b"i0-1", BINARY, b"i1-1", b"i0-2", None, b"t0-1"]
    assert sorted(recorded, key=lambda r: (r.topic, r.partition, r.offset)) == sorted(
        system.sent, key=lambda r: (r.topic, r.partition, r.offset)
    )
    binary = recorded[4]
    assert (binary.topic, binary.key, binary.value) == ("handoffs.tax", BINARY, BINARY)
    assert binary.headers == (("sig", BINARY), ("sig", b"second"))
    assert recorded[2].header("traceparent") == TRACEPARENT
    assert (recorded[-2].key, recorded[-2].value) == (None, b"no key")
    assert (recorded[-1].key, recorded[-1].value) == (b"t0-1", None)


async def test_records_only_the_topics_asked_for(system: System, tmp_path: Path) -> None:
    out = tmp_path / "tax.jsonl.gz"
    count = await record(
        system.access, out, topics=["tax.events", "handoffs.tax"], prefix=system.prefix, progress=False
    )
    assert count == 4
    assert read_header(out).topics == ("handoffs.tax", "tax.events")
    assert keys(list(read_records(out))) == [b"h0-0", BINARY, None, b"t0-1"]


async def test_time_window_is_from_inclusive_to_exclusive(system: System, tmp_path: Path) -> None:
    out = tmp_path / "window.jsonl.gz"
    count = await record(
        system.access,
        out,
        prefix=system.prefix,
        since=system.at(10),
        until=system.at(20),
        progress=False,
    )
    recorded = list(read_records(out))
    assert count == len(recorded) == 4
    assert keys(recorded) == [b"h0-0", b"i0-1", BINARY, b"i1-1"]
    assert all(system.at(10) <= r.time < system.at(20) for r in recorded)
    # Every topic is still named in the header, even one with nothing in the window.
    assert read_header(out).topics == ("handoffs.tax", "intake.events", "tax.events")


async def test_offset_window_applies_to_each_partition(system: System, tmp_path: Path) -> None:
    out = tmp_path / "offsets.jsonl.gz"
    count = await record(system.access, out, prefix=system.prefix, from_offset=1, to_offset=2, progress=False)
    recorded = list(read_records(out))
    assert count == 4
    assert [(r.topic, r.partition, r.offset) for r in recorded] == [
        ("intake.events", 0, 1),
        ("handoffs.tax", 0, 1),
        ("intake.events", 1, 1),
        ("tax.events", 0, 1),
    ]


async def test_command_line(
    system: System, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in system.access.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", system.prefix)
    out = tmp_path / "cli.jsonl.gz"
    argv = ["--topics", "intake.events,tax.events", "--from", system.at(5).isoformat(), "-o", str(out)]
    # main() runs its own event loop, which cannot nest in the test's.
    assert await asyncio.to_thread(main, argv) == 0

    assert keys(list(read_records(out))) == [b"i1-0", b"i0-1", b"i1-1", b"i0-2", None, b"t0-1"]
    err = capsys.readouterr().err
    assert f"recorded 6 records from 2 topics to {out} (" in err
    assert "KiB)" in err


async def test_unknown_topic_is_a_clear_error(
    system: System, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in system.access.env().items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "none.jsonl.gz"
    argv = ["--bootstrap-servers", system.bootstrap, "--topic-prefix", system.prefix, "-o", str(out)]
    status = await asyncio.to_thread(main, [*argv, "--topics", "intake.events,land_registry.events"])

    assert status == 2
    err = capsys.readouterr().err
    assert "no such topic 'land_registry.events'" in err
    assert "the topics there are: handoffs.tax, intake.events, tax.events" in err
    assert "Traceback" not in err
    assert not out.exists()

    status = await asyncio.to_thread(main, [*argv, "--topics", system.prefix + "tax.events"])
    assert status == 2
    assert f"without the prefix '{system.prefix}'" in capsys.readouterr().err


async def test_unreachable_broker_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "operator")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "not-needed-to-find-no-broker")
    bootstrap = f"127.0.0.1:{free_port()}"
    status = await asyncio.to_thread(
        main, ["--bootstrap-servers", bootstrap, "-o", str(tmp_path / "x.jsonl.gz")]
    )

    assert status == 2
    err = capsys.readouterr().err
    assert f"cannot reach Kafka at {bootstrap}" in err
    assert "Traceback" not in err
