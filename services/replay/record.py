"""Record a system's Kafka topics to a recording file (format: ``services.replay.recording``).

By default every topic of the system is recorded: each topic on the broker whose name starts
with the system's topic prefix (``KAFKA_TOPIC_PREFIX``), except Kafka's internal ``__*`` topics.
The file names topics without the prefix, so it can be replayed into a system with another one.

Each partition is read from its first record (or the window's start) up to its end as it was
when recording began, so recording a live system terminates; records that arrive meanwhile are
not included. No consumer group is used, so recording changes nothing on the broker.

Windows, per partition, each a contiguous run of offsets:

* ``--from TIME`` starts at the first record stamped at or after TIME; ``--to TIME`` stops
  before the first record stamped at or after TIME (Kafka record timestamps; TIME is ISO-8601
  with a time zone, e.g. ``2026-03-09T08:00:00+07:00`` or ``2026-03-09T01:00:00Z``).
* ``--from-offset N`` starts at offset N (inclusive), ``--to-offset N`` stops before offset N.

The file lists the records sorted by (timestamp, topic, partition, offset): the order they
happened in as far as Kafka can tell, and the same order every time. Sorting holds every
recorded record in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from tqdm import tqdm

from services.replay.recording import SUFFIX, RecordedRecord, RecordingHeader, write_recording
from services.runtime.kafka_access import KafkaAccess, KafkaAccessError

STALL_SECONDS: Final = 60.0
"""Give up when no partition has advanced for this long (the broker went away mid-recording)."""

_CLIENT_ID: Final = "dossier-record"
_PROG: Final = "python -m services.replay.record"


class RecordError(Exception):
    """A problem the user can fix (unknown topic, unreachable broker, bad output path)."""


@dataclass(frozen=True)
class _Range:
    """The offsets ``[start, stop)`` of one partition to record."""

    partition: TopicPartition
    topic: str
    """The logical topic name (prefix removed)."""
    start: int
    stop: int


async def record(
    access: KafkaAccess,
    out: Path,
    *,
    topics: Sequence[str] | None = None,
    prefix: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    from_offset: int | None = None,
    to_offset: int | None = None,
    progress: bool = True,
    note: str = "",
) -> int:
    """Record the system's topics on the brokers of ``access`` to ``out``; return how many records.

    ``topics`` are logical names (without ``prefix``); None means every topic of the system.
    ``since``/``until`` bound the record timestamps (``since`` inclusive, ``until`` exclusive),
    ``from_offset``/``to_offset`` the offsets of each partition (same); given both, both apply.
    ``progress`` shows a progress bar and a final summary line on stderr. Raises
    :class:`RecordError` for problems the user can fix.
    """
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise RecordError(f"{name} {moment.isoformat()} has no time zone")
    _check_output(out)
    recorded_at = datetime.now(UTC)
    bootstrap = access.bootstrap_servers
    try:
        logical, partitions = await _select_topics(access, prefix, topics)
        records = await _read(access, partitions, since, until, from_offset, to_offset, progress)
    except KafkaConnectionError as exc:
        raise RecordError(
            f"cannot reach Kafka at {bootstrap}; is it running, and is that the right"
            " --bootstrap-servers ($KAFKA_BOOTSTRAP_SERVERS)?"
        ) from exc
    except KafkaError as exc:
        raise RecordError(f"Kafka at {bootstrap} failed for {access.principal}: {exc!r}") from exc
    records.sort(key=lambda r: (r.timestamp_ms, r.topic, r.partition, r.offset))
    header = RecordingHeader(
        recorded_at=recorded_at,
        source=bootstrap,
        topics=tuple(logical),
        records=len(records),
        note=_note(prefix, since, until, from_offset, to_offset, note),
    )
    # Compressing a large recording takes a while; the file I/O stays off the event loop.
    count = await asyncio.to_thread(write_recording, out, header, records)
    if progress:
        size = (await asyncio.to_thread(out.stat)).st_size / 1024
        print(
            f"recorded {count} records from {len(logical)} topics to {out} ({size:.1f} KiB)",
            file=sys.stderr,
        )
    return count


def _check_output(out: Path) -> None:
    if out.is_dir():
        raise RecordError(f"output {out} is a directory; give a file name, e.g. {out / ('run' + SUFFIX)}")
    if not out.parent.is_dir():
        raise RecordError(f"output directory {out.parent} does not exist")


async def _select_topics(
    access: KafkaAccess, prefix: str, wanted: Sequence[str] | None
) -> tuple[list[str], dict[TopicPartition, str]]:
    """The logical names of the topics to record, sorted, and each of their partitions → name."""
    admin = AIOKafkaAdminClient(**access.client_kwargs(), client_id=_CLIENT_ID)
    await admin.start()
    try:
        # Listed first, described only if they exist: the broker auto-creates a topic described by name.
        chosen = _choose(access.bootstrap_servers, prefix, await admin.list_topics(), wanted)
        described = await admin.describe_topics(list(chosen.values()))
    finally:
        await admin.close()
    logical = {kafka: name for name, kafka in chosen.items()}
    partitions = {
        TopicPartition(d["topic"], p["partition"]): logical[d["topic"]]
        for d in described
        for p in d.get("partitions", [])
    }
    return list(chosen), dict(sorted(partitions.items()))


def _choose(
    bootstrap: str, prefix: str, on_broker: list[str], wanted: Sequence[str] | None
) -> dict[str, str]:
    """Logical name → Kafka name of the topics to record, sorted by logical name."""
    system = {
        name.removeprefix(prefix): name
        for name in on_broker
        if name.startswith(prefix) and not name.startswith("__") and name != prefix
    }
    where = f"on {bootstrap}" + (f" with prefix {prefix!r}" if prefix else "")
    if not system:
        raise RecordError(f"no topics {where}")
    if wanted is None:
        return dict(sorted(system.items()))
    unknown = [t for t in dict.fromkeys(wanted) if t not in system]
    if unknown:
        names = ", ".join(repr(t) for t in unknown)
        hint = ""
        if prefix and any(t.startswith(prefix) and t.removeprefix(prefix) in system for t in unknown):
            hint = f" (give topic names without the prefix {prefix!r})"
        raise RecordError(
            f"no such topic {names} {where}{hint}; the topics there are: {', '.join(sorted(system))}"
        )
    return {t: system[t] for t in sorted(set(wanted))}


async def _read(
    access: KafkaAccess,
    partitions: dict[TopicPartition, str],
    since: datetime | None,
    until: datetime | None,
    from_offset: int | None,
    to_offset: int | None,
    progress: bool,
) -> list[RecordedRecord]:
    consumer = AIOKafkaConsumer(
        **access.client_kwargs(),
        client_id=_CLIENT_ID,
        enable_auto_commit=False,
        # Should retention delete the start while we read, go on from what is left.
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        ranges = await _ranges(consumer, partitions, since, until, from_offset, to_offset)
        return await _fetch(consumer, ranges, progress)
    finally:
        await consumer.stop()


async def _ranges(
    consumer: AIOKafkaConsumer,
    partitions: dict[TopicPartition, str],
    since: datetime | None,
    until: datetime | None,
    from_offset: int | None,
    to_offset: int | None,
) -> list[_Range]:
    if not partitions:
        return []
    tps = list(partitions)
    begin = await consumer.beginning_offsets(tps)
    end = await consumer.end_offsets(tps)
    start = {tp: max(begin[tp], from_offset or 0) for tp in tps}
    stop = {tp: end[tp] if to_offset is None else min(end[tp], to_offset) for tp in tps}
    if since is not None:
        found = await consumer.offsets_for_times({tp: _epoch_ms(since) for tp in tps})
        start = {tp: max(start[tp], end[tp] if found[tp] is None else found[tp].offset) for tp in tps}
    if until is not None:
        found = await consumer.offsets_for_times({tp: _epoch_ms(until) for tp in tps})
        stop = {tp: min(stop[tp], end[tp] if found[tp] is None else found[tp].offset) for tp in tps}
    return [_Range(tp, partitions[tp], start[tp], stop[tp]) for tp in tps if start[tp] < stop[tp]]


def _epoch_ms(moment: datetime) -> int:
    # Kafka refuses negative lookup times; nothing is stamped before 1970 anyway.
    return max(0, int(moment.timestamp() * 1000))


async def _fetch(consumer: AIOKafkaConsumer, ranges: list[_Range], progress: bool) -> list[RecordedRecord]:
    """The records of every range; ends when each partition's position reaches its stop."""
    records: list[RecordedRecord] = []
    if not ranges:
        return records
    pending = {r.partition: r for r in ranges}
    done = {r.partition: r.start for r in ranges}
    consumer.assign(list(pending))
    for r in ranges:
        consumer.seek(r.partition, r.start)
    total = sum(r.stop - r.start for r in ranges)
    last_advance = time.monotonic()
    with tqdm(total=total, unit="rec", desc="recording", file=sys.stderr, disable=not progress) as bar:
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, batch in batches.items():
                wanted = pending.get(tp)
                if wanted is not None:
                    records.extend(
                        _recorded(wanted.topic, m) for m in batch if wanted.start <= m.offset < wanted.stop
                    )
            advanced = 0
            for tp, r in list(pending.items()):
                # The position, not the record count: compaction and transaction markers leave gaps.
                position = min(await consumer.position(tp), r.stop)
                advanced += position - done[tp]
                done[tp] = position
                if position >= r.stop:
                    del pending[tp]
                    # Paused, or the fetcher keeps prefetching records past the stop.
                    consumer.pause(tp)
            if advanced:
                bar.update(advanced)
                last_advance = time.monotonic()
            elif time.monotonic() - last_advance > STALL_SECONDS:
                stuck = ", ".join(f"{tp.topic}[{tp.partition}]@{done[tp]}" for tp in pending)
                raise RecordError(f"no progress for {STALL_SECONDS:.0f} s reading {stuck}; is Kafka up?")
    return records


def _recorded(topic: str, message: Any) -> RecordedRecord:
    return RecordedRecord(
        topic=topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=message.timestamp,
        key=message.key,
        # Kafka allows a null header value; the format has none, and no producer of ours sends one.
        headers=tuple((name, b"" if value is None else value) for name, value in message.headers),
        value=message.value,
    )


def _note(
    prefix: str,
    since: datetime | None,
    until: datetime | None,
    from_offset: int | None,
    to_offset: int | None,
    note: str,
) -> str:
    parts = [note] if note else []
    if prefix:
        parts.append(f"topic prefix {prefix!r}")
    if since is not None:
        parts.append(f"from {since.isoformat()}")
    if until is not None:
        parts.append(f"to {until.isoformat()}")
    if from_offset is not None:
        parts.append(f"from offset {from_offset}")
    if to_offset is not None:
        parts.append(f"to offset {to_offset}")
    return "; ".join(parts)


# The command line


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 time, e.g. 2026-03-09T08:00:00+07:00"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no time zone; add one, as in 2026-03-09T08:00:00+07:00 or 2026-03-09T01:00:00Z"
        ) from None
    return moment


def _offset(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an offset (a whole number)") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: offsets are 0 or more")
    return value


def _topic_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one topic name")
    return names


_EXAMPLES = f"""\
examples:
  # every topic of the system on the default broker, to one file
  python -m services.replay.record -o run{SUFFIX}

  # two topics of the system with prefix "staging.", one morning (Vietnam time)
  python -m services.replay.record --bootstrap-servers kafka:9092 --topic-prefix staging. \\
      --topics intake.events,handoffs.tax \\
      --from 2026-03-09T08:00+07:00 --to 2026-03-09T12:00+07:00 -o morning{SUFFIX}

  # look inside
  zcat run{SUFFIX} | head -1 | jq .

exit status: 0 recorded (possibly 0 records), 1 could not write the file,
2 bad arguments, unknown topic or Kafka unreachable, 130 interrupted.
"""


def _parser() -> argparse.ArgumentParser:
    summary, _, details = (__doc__ or "").partition("\n\n")
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description=f"{summary}\n\n{details}".replace("``", ""),
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        help="Kafka to record from (default: $KAFKA_BOOTSTRAP_SERVERS, else %(default)s)",
    )
    parser.add_argument(
        "--topic-prefix",
        metavar="PREFIX",
        default=os.environ.get("KAFKA_TOPIC_PREFIX", ""),
        help="the system's topic prefix, removed from the names in the file"
        " (default: $KAFKA_TOPIC_PREFIX, else none)",
    )
    parser.add_argument(
        "--topics",
        metavar="A,B,...",
        type=_topic_list,
        help="record only these topics, named without the prefix (default: every topic of the system)",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--from", dest="since", metavar="TIME", type=_time, help="first record stamped at or after TIME"
    )
    start.add_argument(
        "--from-offset", metavar="N", type=_offset, help="start each partition at offset N (inclusive)"
    )
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument(
        "--to",
        dest="until",
        metavar="TIME",
        type=_time,
        help="stop before the first record stamped at or after TIME",
    )
    stop.add_argument(
        "--to-offset", metavar="N", type=_offset, help="stop each partition before offset N (exclusive)"
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", type=Path, required=True, help=f"the recording to write (*{SUFFIX})"
    )
    parser.add_argument("--note", default="", help="free text to keep in the file's header")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary line")
    return parser


@contextlib.contextmanager
def _quiet_aiokafka() -> Iterator[None]:
    # aiokafka logs each failed connection attempt; the error message here already says it all.
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.since is not None and args.until is not None and args.since >= args.until:
        parser.error("--from must be before --to")
    if args.from_offset is not None and args.to_offset is not None and args.from_offset >= args.to_offset:
        parser.error("--from-offset must be below --to-offset")
    try:
        access = KafkaAccess.for_tool(args.bootstrap_servers)
    except KafkaAccessError as exc:
        parser.error(f"{exc} (the operator's: README, Security)")
    try:
        with _quiet_aiokafka():
            asyncio.run(
                record(
                    access,
                    args.output,
                    topics=args.topics,
                    prefix=args.topic_prefix,
                    since=args.since,
                    until=args.until,
                    from_offset=args.from_offset,
                    to_offset=args.to_offset,
                    progress=not args.quiet,
                    note=args.note,
                )
            )
    except RecordError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{_PROG}: error: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted; nothing written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
