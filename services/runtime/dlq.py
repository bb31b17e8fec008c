"""List and re-drive dead letters: ``python -m services.runtime.dlq {list,redrive} SERVICE``.

A dead letter is the original record (key, value, headers untouched) plus ``dlq_*`` headers
saying why it was parked and where it came from. Re-driving publishes the original record
back to its source topic once the cause is fixed; the consumer's inbox makes a record that
is re-driven twice count once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict, dataclass

from aiokafka import AIOKafkaProducer

from contracts import topics
from services.runtime.kafka_access import KafkaAccess, KafkaAccessError
from services.runtime.topic_reader import read_topic


@dataclass(frozen=True)
class DeadLetter:
    """One parked record and why it was parked."""

    dlq_partition: int
    dlq_offset: int
    reason: str
    detail: str
    consumer: str
    source_topic: str
    source_partition: int
    source_offset: int
    parked_at: str
    event_id: str
    event_type: str
    key: str

    @property
    def ref(self) -> str:
        """How the CLI names it: ``<dlq partition>:<dlq offset>``."""
        return f"{self.dlq_partition}:{self.dlq_offset}"


async def _read_all(
    access: KafkaAccess, topic: str
) -> list[tuple[DeadLetter, bytes | None, bytes | None, list[tuple[str, bytes]]]]:
    out = []
    for record in await read_topic(access, topic):
        h = {n: v.decode(errors="replace") for n, v in record.headers}
        letter = DeadLetter(
            dlq_partition=record.partition,
            dlq_offset=record.offset,
            reason=h.get("dlq_reason", "?"),
            detail=h.get("dlq_detail", ""),
            consumer=h.get("dlq_consumer", "?"),
            source_topic=h.get("dlq_topic", "?"),
            source_partition=int(h.get("dlq_partition", "-1")),
            source_offset=int(h.get("dlq_offset", "-1")),
            parked_at=h.get("dlq_at", ""),
            event_id=h.get("ce_id", ""),
            event_type=h.get("ce_type", ""),
            key=(record.key or b"").decode(errors="replace"),
        )
        out.append((letter, record.key, record.value, list(record.headers)))
    return out


def _dlq_topic(service: str) -> str:
    """The service's dead-letter topic as Kafka knows it (with ``KAFKA_TOPIC_PREFIX``)."""
    return os.environ.get("KAFKA_TOPIC_PREFIX", "") + topics.dead_letters(service)


async def list_dead_letters(access: KafkaAccess, service: str) -> list[DeadLetter]:
    """Every dead letter ``service`` parked, oldest first per partition."""
    return [letter for letter, *_ in await _read_all(access, _dlq_topic(service))]


async def redrive(
    access: KafkaAccess, service: str, *, refs: set[str] | None = None, reason: str | None = None
) -> list[DeadLetter]:
    """Publish the selected dead letters back to their source topics; return what was sent.

    ``refs`` picks letters by ``partition:offset``; ``reason`` picks every letter with that
    reason; with neither, every letter is re-driven.
    """
    chosen = [
        entry
        for entry in await _read_all(access, _dlq_topic(service))
        if (refs is None or entry[0].ref in refs) and (reason is None or entry[0].reason == reason)
    ]
    if not chosen:
        return []
    producer = AIOKafkaProducer(**access.client_kwargs(), enable_idempotence=True)
    await producer.start()
    try:
        for letter, key, value, headers in chosen:
            original = [(n, v) for n, v in headers if not n.startswith("dlq_")]
            await producer.send_and_wait(letter.source_topic, key=key, value=value, headers=original)
    finally:
        await producer.stop()
    return [letter for letter, *_ in chosen]


def main(argv: list[str] | None = None) -> int:
    """The CLI."""
    parser = argparse.ArgumentParser(prog="python -m services.runtime.dlq", description=__doc__)
    parser.add_argument("--bootstrap", default=None, help="Kafka (default: $KAFKA_BOOTSTRAP_SERVERS)")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("list", help="show a service's dead letters")
    show.add_argument("service")
    show.add_argument("--json", action="store_true", help="one JSON object per line")
    again = commands.add_parser("redrive", help="publish dead letters back to their source topic")
    again.add_argument("service")
    pick = again.add_mutually_exclusive_group(required=True)
    pick.add_argument("--ref", action="append", help="partition:offset from `list` (repeatable)")
    pick.add_argument("--reason", help="every letter with this reason")
    pick.add_argument("--all", action="store_true", help="every letter")
    args = parser.parse_args(argv)
    try:
        access = KafkaAccess.for_tool(
            args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        )
    except KafkaAccessError as exc:
        parser.error(f"{exc} (the operator's: README, Security)")
    if args.command == "list":
        letters = asyncio.run(list_dead_letters(access, args.service))
        for letter in letters:
            if args.json:
                print(json.dumps(asdict(letter), ensure_ascii=False))
            else:
                print(
                    f"{letter.ref:>8}  {letter.parked_at[:19]}  {letter.reason:<18} {letter.source_topic}"
                    f"[{letter.source_partition}]@{letter.source_offset}  {letter.event_type or '-'}"
                    f"  key={letter.key}  {letter.detail[:100]}"
                )
        if not args.json:
            print(f"{len(letters)} dead letter(s) on {_dlq_topic(args.service)}", file=sys.stderr)
        return 0
    sent = asyncio.run(
        redrive(
            access,
            args.service,
            refs=None if args.all or args.reason else set(args.ref),
            reason=args.reason,
        )
    )
    for letter in sent:
        kind = letter.event_type or "no type"
        print(f"re-drove {letter.ref} -> {letter.source_topic} ({kind}, key={letter.key})")
    print(f"{len(sent)} record(s) re-driven", file=sys.stderr)
    return 0 if sent else 1


if __name__ == "__main__":
    sys.exit(main())
