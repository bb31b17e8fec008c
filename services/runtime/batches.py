"""How records reach a subscription: in batches, undecoded, and promptly.

FastStream's batch subscriber, parser and decoder, adjusted so that no record can block its
partition, a record on a quiet topic is not left waiting, and a busy subscription does not
commit offsets after every batch.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import StreamMessage

# FastStream parses and decodes a record before the handler runs; a failure there is raised
# again on every redelivery (NACK_ON_ERROR re-seeks), so one poison record would block its
# partition for good. These two never fail: the handler gets the record as it came and
# RecordProcessor decides, dead-lettering what it cannot read.


async def tolerant_parser(
    records: tuple[ConsumerRecord, ...],
    original: Callable[[tuple[ConsumerRecord, ...]], Awaitable[StreamMessage[tuple[ConsumerRecord, ...]]]],
) -> StreamMessage[tuple[ConsumerRecord, ...]]:
    """FastStream's batch parser, surviving header values that are not UTF-8."""
    try:
        return await original(records)
    except UnicodeDecodeError:
        readable = tuple(
            dataclasses.replace(
                record, headers=[(n, v.decode(errors="replace").encode()) for n, v in record.headers]
            )
            for record in records
        )
        message = await original(readable)
        message.raw_message = records  # the original bytes go to the dead-letter topic
        return message


async def raw_records(message: StreamMessage[tuple[ConsumerRecord, ...]]) -> tuple[ConsumerRecord, ...]:
    """No decoding in FastStream: the handler gets the Kafka records as they came.

    Malformed JSON must reach the dead-letter logic, with the topic, partition, offset, key and
    headers it came with.
    """
    return message.raw_message


log = logging.getLogger(__name__)

DEFAULT_COMMIT_INTERVAL_SECONDS = 0.1
"""While records keep coming, offsets are committed at most this often (``CONSUMER_COMMIT_MS``)."""


class Commits:
    """A subscription's offsets: FastStream's ``commit()`` notes them, Kafka gets them in bulk.

    FastStream commits after every batch it acks. Every commit is a request, a write to
    ``__consumer_offsets`` and a response; under load that was one commit per few records.
    Here an ack only notes the offsets of the records handled, and they go to Kafka when the
    subscription has nothing more to read (so a quiet group shows no lag: replays and
    ``/backlog`` see it caught up at once), when ``interval`` has passed since the last commit,
    before its partitions are revoked, and when it stops. Kafka Streams does the same
    (``commit.interval.ms``).

    What a crash loses is the last interval's commits: those records are read again and the
    inbox recognises them (:class:`~services.runtime.consumer.RecordProcessor`), as after any
    crash between a transaction and its commit. An offset is noted only when its batch was
    acked, i.e. after its transaction committed, so nothing is committed ahead of its work.
    """

    def __init__(self, consumer: AIOKafkaConsumer, *, interval: float) -> None:
        self._consumer = consumer
        self.interval = interval
        self._delivered: dict[TopicPartition, int] = {}
        """Per partition: past the last record handed to the handler (the batch in hand)."""
        self._handled: dict[TopicPartition, int] = {}
        """Per partition: past the last record of an acked batch."""
        self._committed: dict[TopicPartition, int] = {}
        """Per partition: what Kafka has from us."""
        self._last_commit = time.monotonic()
        self.closing = False
        """Set when the subscriber stops: the batch in hand, once acked, is committed at once."""

    def delivered(self, records: Iterable[ConsumerRecord]) -> None:
        """Note the records handed to the handler (the batch FastStream will ack or nack)."""
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            self._delivered[partition] = max(self._delivered.get(partition, 0), record.offset + 1)

    async def commit(self) -> None:
        """FastStream's ack: the batch in hand is handled; send its offsets if it is time."""
        self._handled.update(self._delivered)
        if self.closing or time.monotonic() - self._last_commit >= self.interval:
            await self.flush()

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """FastStream's nack: read again from ``offset``; what was handed out past it was not handled."""
        self._consumer.seek(partition, offset)
        self._delivered[partition] = offset

    async def flush(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Commit what was handled since the last commit (on ``partitions`` only, if given).

        Only partitions still assigned: a revoked one is another member's now. A failure (a
        rebalance under way, the coordinator moving) is logged and the offsets tried again at
        the next flush; lost, they would only make records be read again, which the inbox absorbs.
        """
        mine = self._consumer.assignment()
        offsets = {
            p: offset
            for p, offset in self._handled.items()
            if p in mine and self._committed.get(p) != offset and (partitions is None or p in partitions)
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed, tried again at the next flush: %r", exc)
            return
        self._last_commit = time.monotonic()
        self._committed.update(offsets)

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget what no longer belongs to us (after its last flush): another member reads it now."""
        for partition in partitions:
            for offsets in (self._delivered, self._handled, self._committed):
                offsets.pop(partition, None)


class _CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits a subscription's handled offsets before a rebalance takes its partitions away.

    It also carries the subscription's commit interval to :meth:`PromptBatchSubscriber.start`
    (FastStream's subscribers have ``__slots__``: no room for a setting of ours).
    """

    def __init__(self, subscriber: PromptBatchSubscriber, *, interval: float) -> None:
        self.subscriber = subscriber
        self.interval = interval

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Flush the offsets of ``revoked`` while they are still ours."""
        commits = self.subscriber.commits
        if commits is not None:
            await commits.flush(revoked)
            commits.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Nothing to do: the group's committed offsets say where to start."""


class PromptBatchSubscriber(BatchSubscriber):
    """FastStream's batch subscriber, waiting for records the way its one-record subscriber does.

    FastStream 0.7's ``BatchSubscriber`` polls ``getmany(batch_timeout_ms)`` and, after an empty
    poll, sleeps as long again: a record reaching a quiet topic then waits out the sleep
    (measured with ``make bench``: handoff p50 12 → 24 ms at 5 dossiers/s with 20 ms polls; 2 ms
    polls cost that much in CPU instead). This one waits in ``getone()`` for the first record,
    as the one-record subscriber does (no polling when idle), then takes what else has already
    been fetched, without waiting, up to ``max_records``. Order within a partition is kept:
    ``getone`` returns the oldest fetched record of its partition and ``getmany`` the rest.
    """

    __slots__ = ()

    @classmethod
    def adopt(cls, subscriber: BatchSubscriber, *, commit_interval: float) -> PromptBatchSubscriber:
        """Make FastStream's ``subscriber`` (not started yet) one of these."""
        subscriber.__class__ = cls
        assert isinstance(subscriber, cls)
        subscriber._listener = _CommitBeforeRevoke(subscriber, interval=commit_interval)
        return subscriber

    @property
    def commits(self) -> Commits | None:
        """The subscription's offsets, once it has started."""
        committer = self.parser._consumer
        return committer if isinstance(committer, Commits) else None

    async def start(self) -> None:
        """FastStream's start, with acks going to :class:`Commits` instead of straight to Kafka."""
        listener = self._listener
        interval = DEFAULT_COMMIT_INTERVAL_SECONDS
        if isinstance(listener, _CommitBeforeRevoke):
            interval = listener.interval
        await super().start()
        # The consume loop is a task that has not run yet: it will see the Commits.
        assert self.consumer is not None
        self.parser._setup(Commits(self.consumer, interval=interval))

    async def stop(self) -> None:
        """Commit what was handled; the batch in hand (FastStream waits for it) commits at its ack."""
        commits = self.commits
        if commits is not None:
            commits.closing = True
            await commits.flush()
        await super().stop()

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
        """Every record fetched, up to ``max_records``; with none, commit and block for the next."""
        limit = self.max_records or 1
        fetched = await consumer.getmany(timeout_ms=0, max_records=limit)
        records: tuple[ConsumerRecord, ...] = tuple(itertools.chain.from_iterable(fetched.values()))
        if not records:
            commits = self.commits
            if commits is not None:
                await commits.flush()  # caught up: no lag left on the group while we wait
            first = await consumer.getone()
            more = await consumer.getmany(timeout_ms=0, max_records=limit - 1) if limit > 1 else {}
            records = (first, *itertools.chain.from_iterable(more.values()))
        if (commits := self.commits) is not None:
            commits.delivered(records)
        return records
