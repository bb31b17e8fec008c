"""Replay a recording into a fresh system, on virtual time.

A recording holds everything a system published. Replaying it into a fresh system splits it
in two, by who wrote each record:

* **The world's records** (written by services *not* under replay: by default the agencies'
  answers on ``land_registry.events`` and ``tax.events``) are published again, byte for byte,
  with their CloudEvents ids. They are the inputs whose timing matters: an agency that answered
  four days late answers four days late again, so the same deadlines pass and the same apology
  letters go out.
* **The replayed services' own records** are *not* published: the fresh services write them
  again. The citizen's and the desk's actions among them (``dossier.received``,
  ``dossier.payment_received``, ``dossier.supplement_received``, a desk's
  ``dossier.supplement_requested``) are done again through intake's HTTP API, with the
  recorded dossier id and an ``Idempotency-Key`` derived from the recorded event id.

Time: the services run with ``CLOCK=virtual``, and time moves the way Temporal's test server
moves it, by skipping to where something can happen. Every input carries the moment it happened
(a record its ``ce_time``, a desk action an ``Event-Time`` header) and is handled at that moment,
whatever the service's clock says. The clock only fires timed work (intake's deadline alarms),
so it stops only where such work can fall due: each service with timed work reports a
*horizon* (``GET /clock``), the earliest moment anything can fall due, already scheduled or
set by any input from then on (for intake: its next alarm, or the shortest watched step's
budget ahead). The replayer hands over every input before the first recorded moment at or
after the horizon (a *window*) without waiting, then stops every clock at that moment (a
*barrier*): once the services have handled the window's records (``GET /consumed``), it moves
the clocks there and, if something fell due, waits until it has been done (``GET /backlog``).
So an alarm fires at the first recorded moment at or after it is due, before that moment's
inputs, exactly as when every moment was visited in turn; alarms fire in the watcher's order
(due time, dossier), so apology letters get the same numbers. Inside a window a dossier's inputs
go one after another: before the next, the replayer waits until every replayed service that
reads the previous record has handled it, so an answer is on the slip before the payment that
follows it. Different dossiers overlap freely: the replay runs at the system's throughput.

Replaying the same file again changes nothing: published records are recognised by their event
ids (the services' inboxes), desk actions by their idempotency keys, and clocks never go back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from contracts import topics
from contracts.agencies import ONE_STOP
from contracts.envelope import CloudEvent, EnvelopeError
from contracts.events import (
    DossierReceived,
    DossierReceivedV1,
    PaymentReceived,
    SupplementReceived,
    SupplementRequested,
)
from contracts.results import RESULTS, AssessmentResult
from contracts.upcasting import upcast
from services import manifest
from services.replay.recording import RecordedRecord, read_header, read_records
from services.runtime.kafka_access import KafkaAccess, KafkaAccessError


def service_agencies() -> dict[str, str]:
    """The agency each topic-owning service writes as (``contracts.topics.owner``), from the manifests."""
    return {m.name: m.agency for m in manifest.manifests() if m.agency is not None}


def default_services() -> tuple[str, ...]:
    """Replayed by default: the desk and what reacts to it; the agencies' answers are the world."""
    return tuple(m.name for m in manifest.manifests() if not m.answers_handoffs)


Kind = Literal["publish", "submit", "pay", "request_supplement", "supplement"]


class ReplayError(RuntimeError):
    """The replay cannot start or go on (a file it cannot use, a service that does not answer)."""


@dataclass(frozen=True)
class Input:
    """One thing the replay does: publish a record, or one desk action through the API."""

    at: datetime
    dossier: str
    kind: Kind
    record: RecordedRecord
    event: CloudEvent | None = None


@dataclass
class Plan:
    """A recording sorted into inputs (in order) and the records the system will write again."""

    inputs: list[Input]
    regenerated: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    marks: set[datetime] = field(default_factory=set)
    """Times of the records the services write again: recorded moments where the clock may
    stop too, so the deadline watcher fires at the moments it fired when the stream was recorded."""

    def moments(self) -> list[datetime]:
        """Every recorded moment, inputs' and regenerated records', in order."""
        return sorted({item.at for item in self.inputs} | self.marks)


@dataclass
class ReplayReport:
    """What a replay did, and how fast."""

    inputs: int = 0
    published: int = 0
    reenacted: int = 0
    already_done: int = 0
    regenerated: int = 0
    moments: int = 0
    """Clock stops (barriers)."""
    windows: int = 0
    """Runs of inputs handed over without a barrier between them."""
    waits: int = 0
    """Times a dossier's next input waited for its previous record to be handled."""
    refused: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Where the wall time went: handing windows over, and each part of the barriers."""

    @contextlib.contextmanager
    def timing(self, part: str) -> Iterator[None]:
        """Add the time the block takes to ``seconds[part]``."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[part] += time.monotonic() - started

    def profile(self) -> str:
        """Where the wall time went, one line."""
        parts = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        return "; ".join(f"{name} {seconds:.1f} s" for name, seconds in parts)

    @property
    def events_per_s(self) -> float:
        """Inputs replayed per wall-clock second."""
        return self.inputs / self.wall_seconds if self.wall_seconds else 0.0

    def summary(self) -> str:
        """One paragraph for the terminal."""
        return (
            f"replayed {self.inputs} inputs ({self.published} records published, {self.reenacted} desk"
            f" actions, {self.already_done} already done) in {self.windows} windows, the clock stopping"
            f" {self.moments} times;"
            f" {self.regenerated} records left for the services to write again;"
            f" {self.wall_seconds:.1f} s wall, {self.events_per_s:.0f} inputs/s;"
            f" {len(self.refused)} refused"
        )


def event_time(record: RecordedRecord) -> datetime:
    """When the event happened: its ``ce_time``, else the Kafka timestamp."""
    text = record.header("ce_time")
    if text:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(text)
    return datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)


def plan(records: Iterable[RecordedRecord], *, replayed: Sequence[str]) -> Plan:
    """Sort a recording's records into the replay's inputs, in the order to perform them."""
    agencies = service_agencies()
    own = {agencies[s] for s in replayed if s in agencies}
    numbered: list[tuple[datetime, int, int, Input]] = []
    result = Plan(inputs=[])
    for index, record in enumerate(records):
        owner = topics.owner(record.topic)
        if owner is None:  # dead letters and foreign topics: nothing a service consumes as input
            result.skipped[record.topic] = result.skipped.get(record.topic, 0) + 1
            continue
        at = event_time(record)
        dossier = (record.key or b"").decode(errors="replace")
        if owner not in own:
            numbered.append((at, record.timestamp_ms, index, Input(at, dossier, "publish", record)))
            continue
        action = _desk_action(record)
        if action is None:
            result.regenerated += 1
            result.marks.add(at)
            continue
        kind, event = action
        numbered.append((at, record.timestamp_ms, index, Input(at, dossier, kind, record, event)))
    numbered.sort(key=lambda item: item[:3])
    result.inputs = [item[3] for item in numbered]
    return result


def _desk_action(record: RecordedRecord) -> tuple[Kind, CloudEvent] | None:
    """The desk action a record of intake's stands for, or None for the desk's other output."""
    if record.header("ce_type") not in _DESK_TYPES:
        return None
    try:
        event = CloudEvent.from_record(key=record.key, value=record.value, headers=record.headers)
    except EnvelopeError as exc:
        raise ReplayError(f"{record.topic}@{record.partition}:{record.offset}: {exc}") from exc
    data = upcast(event.data)
    if isinstance(data, DossierReceived):
        return "submit", event
    if isinstance(data, PaymentReceived):
        return "pay", event
    if isinstance(data, SupplementReceived):
        return "supplement", event
    if isinstance(data, SupplementRequested) and data.requested_by_agency == ONE_STOP:
        return "request_supplement", event
    return None  # an agency's supplement request: the desk writes it again from the answer


_DESK_TYPES = {
    t.TYPE
    for t in (DossierReceived, DossierReceivedV1, PaymentReceived, SupplementReceived, SupplementRequested)
}


async def wait_until_idle(client: httpx.AsyncClient, services: dict[str, str], *, timeout: float) -> None:
    """Poll every service's ``GET /backlog`` until all counts are 0 twice in a row.

    Twice: a service can pass work on between two polls (intake publishes, notification has
    not fetched yet); two quiet rounds in a row mean nothing was in flight between them.
    ``timeout`` bounds a wait *without progress*: each time the total backlog reaches a new low,
    the system gets ``timeout`` again (the year's notices can take many minutes to catch up, and
    that is work being done, not a system stuck).
    """
    deadline = time.monotonic() + timeout
    lowest: int | None = None
    quiet = 0
    pause = 0.005
    while quiet < 2:
        counts = await asyncio.gather(*(_backlog(client, url) for url in services.values()))
        if all(not any(c.values()) for c in counts):
            quiet += 1
            continue
        quiet = 0
        total = sum(sum(c.values()) for c in counts)
        if lowest is None or total < lowest:
            lowest = total
            deadline = time.monotonic() + timeout
        if time.monotonic() > deadline:
            raise ReplayError(
                f"the system made no progress for {timeout:.0f}s: {dict(zip(services, counts, strict=True))}"
            )
        await asyncio.sleep(pause)
        # Quick polls while little is left; a big backlog takes a while whatever we do.
        pause = min(pause * 2, 0.02 if total < 1000 else 0.5)


async def _backlog(client: httpx.AsyncClient, url: str) -> dict[str, int]:
    try:
        response = await client.get(f"{url}/backlog")
    except httpx.TransportError as exc:  # restarting: busy until it answers again
        return {"unreachable": 1, type(exc).__name__: 1}
    if response.status_code != 200:
        raise ReplayError(f"{url}/backlog answered {response.status_code}: {response.text[:200]}")
    return dict(response.json())


@dataclass(frozen=True)
class Target:
    """The fresh system: its broker, topic prefix, and the services under replay by base URL.

    ``kafka`` is the operator's access: it republishes recorded records as they are (each still
    carries its producer's signature, which the system's consumers verify). ``token`` is the
    replayer's bearer token: it moves clocks and reads dossiers (operator), files and supplements
    (desk_officer) and confirms payments (payment_gateway), so it needs those roles.
    """

    kafka: KafkaAccess
    services: dict[str, str]
    topic_prefix: str = ""
    token: str = ""


REPLAY_ROLES = ("operator", "desk_officer", "payment_gateway")
"""What a replay does again needs these roles in its token."""


@dataclass(frozen=True)
class Sent:
    """A record the replayer published: where it landed."""

    topic: str
    """The logical topic name."""
    partition: int
    offset: int


@dataclass(frozen=True)
class ClockReading:
    """A service's answer to ``GET``/``PUT /clock``."""

    now: datetime
    next_due: datetime | None
    horizon: datetime | None

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ClockReading:
        """Read a ``/clock`` response body."""

        def time_or_none(key: str) -> datetime | None:
            value = body.get(key)
            return datetime.fromisoformat(value) if value else None

        return cls(datetime.fromisoformat(body["now"]), time_or_none("next_due"), time_or_none("horizon"))


class Consumption:
    """What the replayed services have handled of the records published, from their ``/consumed``.

    One look at a time serves every waiter (a window may have hundreds of dossiers waiting);
    committed offsets only grow, so an old look can say "not yet" but never a wrong "done".
    """

    def __init__(self, replayer: Replayer) -> None:
        self._replayer = replayer
        self._look: asyncio.Future[dict[str, dict[str, dict[str, int]]]] | None = None

    async def handled(
        self, records: Sequence[Sent], *, timeout: float, among: Collection[str] | None = None
    ) -> None:
        """Return once every replayed service (of ``among``) reading a record's topic has handled it."""
        deadline = time.monotonic() + timeout
        pause = 0.002
        while not self._covers(
            {n: p for n, p in (await self._positions()).items() if among is None or n in among}, records
        ):
            if time.monotonic() > deadline:
                raise ReplayError(f"the services did not handle {len(records)} records in {timeout:.0f}s")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.005)

    async def _positions(self) -> dict[str, dict[str, dict[str, int]]]:
        if self._look is None:
            self._look = asyncio.ensure_future(self._fetch())
            self._look.add_done_callback(self._forget)
        return await asyncio.shield(self._look)

    def _forget(self, _: object) -> None:
        self._look = None

    async def _fetch(self) -> dict[str, dict[str, dict[str, int]]]:
        services = self._replayer.target.services
        found = await asyncio.gather(
            *(self._replayer.call("GET", f"{u}/consumed") for u in services.values())
        )
        return {name: dict(r.json()) for name, r in zip(services, found, strict=True) if r.status_code == 200}

    @staticmethod
    def _covers(positions: Mapping[str, Mapping[str, Mapping[str, int]]], records: Sequence[Sent]) -> bool:
        return all(
            topic.get(str(r.partition), 0) > r.offset
            for r in records
            for service in positions.values()
            if (topic := service.get(r.topic)) is not None
        )


class Replayer:
    """Performs a plan against a target system."""

    def __init__(self, target: Target, *, concurrency: int = 8, settle_timeout: float = 120) -> None:
        self.intake = target.services.get("intake", "")  # needed only for desk actions
        self.target = target
        self.concurrency = asyncio.Semaphore(concurrency)
        self.settle_timeout = settle_timeout
        self.report = ReplayReport()
        self.consumption = Consumption(self)
        self._sent: list[Sent] = []
        """Published since the last barrier: handled by the timed services before their clocks move."""
        self._timed: set[str] = set()
        """The replayed services with timed work (a horizon), as last read."""
        # uvicorn closes a keep-alive connection idle for 5 s, httpx's default expiry is also
        # 5 s: a request could go out on a connection the server is closing (httpx.ReadError;
        # it ended a full-year replay at 45 %). Expire sooner; requests are retried too. Few
        # connections: httpcore checks every pooled one on each request (28 % of the replayer's
        # CPU with the default pool), and the services are busy long before 8 requests at once.
        pool = concurrency + 4  # the desk actions, and the clock and /consumed looks beside them
        self._http = httpx.AsyncClient(
            timeout=60,
            headers={"Authorization": f"Bearer {target.token}"} if target.token else {},
            transport=httpx.AsyncHTTPTransport(
                limits=httpx.Limits(
                    max_connections=pool, max_keepalive_connections=pool, keepalive_expiry=2.0
                ),
                retries=3,
            ),
        )
        self._producer = AIOKafkaProducer(
            **target.kafka.client_kwargs(), enable_idempotence=True, acks="all", linger_ms=2
        )

    async def __aenter__(self) -> Replayer:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()
        await self._http.aclose()

    async def run(self, planned: Plan, *, speed: float | None = None, progress: bool = True) -> ReplayReport:
        """Perform every input, window by window; ``speed`` = virtual seconds per wall second."""
        started = time.monotonic()
        self.report.regenerated = planned.regenerated
        moments = planned.moments()
        inputs = planned.inputs
        times = [item.at for item in inputs]
        if not moments:
            return self.report
        pace = _Pace(moments[0], speed, started)
        with tqdm(total=len(inputs), unit="input", disable=not progress, file=sys.stderr) as bar:
            readings = await self.stop_clocks(moments[0], settle_all=True)
            done = 0
            while True:
                clock = max(r.now for r in readings.values())
                end = window_end(moments, readings, after=clock)
                upto = len(inputs) if end is None else bisect_left(times, end)
                if upto > done:
                    with self.report.timing("handing over windows"):
                        await self.hand_over(inputs[done:upto], pace, bar)
                    self.report.windows += 1
                    done = upto
                if end is None:
                    break
                readings = await self.stop_clocks(end)
            await self.stop_clocks(moments[-1], settle_all=True)
        self.report.inputs = len(inputs)
        self.report.wall_seconds = time.monotonic() - started
        return self.report

    async def hand_over(self, window: Sequence[Input], pace: _Pace, bar: tqdm[Any]) -> None:
        """Perform a window's inputs: dossiers side by side, each dossier's one after another."""
        chains: dict[str, list[Input]] = defaultdict(list)
        for item in window:
            chains[item.dossier].append(item)

        async def chain(items: list[Input]) -> None:
            unhandled: list[Sent] = []
            for item in items:
                same_log = item.kind == "publish" and all(u.topic == item.record.topic for u in unhandled)
                if unhandled and not same_log:  # Kafka keeps a topic's order; across logs we wait
                    await self.consumption.handled(unhandled, timeout=self.settle_timeout)
                    self.report.waits += 1
                    unhandled = []
                await pace.until(item.at)
                sent = await self._perform(item)
                if sent is not None:
                    unhandled.append(sent)
                bar.update(1)

        await asyncio.gather(*(chain(items) for items in chains.values()))

    async def stop_clocks(self, at: datetime, *, settle_all: bool = False) -> dict[str, ClockReading]:
        """A barrier: move the clocks to ``at`` and let what falls due by then be done.

        The services with timed work (a horizon) first handle every record published since the
        last barrier, then move, and the replayer waits until their due work is done. The others
        stay where they are until the last stop: what they do is caused by records, each
        handled at its own time (``clock.work_time``), and a clock moved past a record they
        have not read yet would make them handle it late. With ``settle_all`` (the first and
        last stop), every service first does what it has, then moves and does everything due,
        until nothing is left to do.
        """
        timed = set(self.target.services) if settle_all else self._timed
        if self._sent:
            with self.report.timing("barriers: records handled"):
                await self.consumption.handled(self._sent, timeout=self.settle_timeout, among=timed)
            self._sent.clear()
        if settle_all:
            # The clocks that stayed behind move now: first let them finish, at their own
            # times, what the records caused (notices written, first deliveries sent), or it
            # would be stamped with the new time (a slow notifier made two replays differ).
            with self.report.timing("settling"):
                await self.settle()
        with self.report.timing("barriers: clocks moved"):
            readings = await self.set_clocks(at, among=timed)
        self.report.moments += 1
        if settle_all:
            with self.report.timing("settling"):
                await self.settle()
                readings = await self.read_clocks()
            self._timed = {name for name, r in readings.items() if r.horizon is not None}
            return readings
        due = {name for name, r in readings.items() if r.next_due is not None and r.next_due <= at}
        if due:
            with self.report.timing("barriers: due work done"):
                readings.update(await self._until_done(at, due))
        return readings

    async def _until_done(self, at: datetime, services: Collection[str]) -> dict[str, ClockReading]:
        """Wait until nothing is due by ``at`` any more at ``services`` (alarms fired); their readings.

        It asks by moving the clock to ``at`` again (a no-op unless the service restarted in
        the meantime, its clock back at its start: then nothing would ever fire).
        """
        deadline = time.monotonic() + self.settle_timeout
        pause = 0.002
        while True:
            readings = await self.set_clocks(at, among=services)
            if all(r.next_due is None or r.next_due > at for r in readings.values()):
                return readings
            if time.monotonic() > deadline:
                raise ReplayError(f"{', '.join(services)}: work due by {at.isoformat()} not done in time")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.02)

    async def set_clocks(
        self, at: datetime, *, among: Collection[str] | None = None
    ) -> dict[str, ClockReading]:
        """Move the replayed services' virtual clocks to ``at`` (never back); their readings."""

        async def one(name: str, url: str) -> ClockReading:
            response = await self.call("PUT", f"{url}/clock", json={"now": at.isoformat()})
            if response.status_code in (404, 405):
                raise ReplayError(f"{name} at {url} has no virtual clock: start it with CLOCK=virtual")
            if response.status_code in (401, 403):
                raise ReplayError(
                    f"{name} refused to move its clock ({response.status_code}): the replay needs a token"
                    f" with the roles {', '.join(REPLAY_ROLES)} (--token or REPLAY_TOKEN)"
                )
            response.raise_for_status()
            return ClockReading.of(response.json())

        return await self._each(one, among)

    async def read_clocks(self, *, among: Collection[str] | None = None) -> dict[str, ClockReading]:
        """The replayed services' ``GET /clock``."""

        async def one(_: str, url: str) -> ClockReading:
            response = await self.call("GET", f"{url}/clock")
            response.raise_for_status()
            return ClockReading.of(response.json())

        return await self._each(one, among)

    async def _each(
        self, one: Callable[[str, str], Awaitable[ClockReading]], among: Collection[str] | None
    ) -> dict[str, ClockReading]:
        names = [n for n in self.target.services if among is None or n in among]
        found = await asyncio.gather(*(one(n, self.target.services[n]) for n in names))
        return dict(zip(names, found, strict=True))

    async def settle(self) -> None:
        """Wait until every replayed service reports no backlog, twice in a row."""
        await wait_until_idle(self._http, self.target.services, timeout=self.settle_timeout)

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """:func:`request_again`, for as long as the replay waits for a service."""
        return await request_again(self._http, method, url, within=self.settle_timeout, **kwargs)

    async def _perform(self, item: Input) -> Sent | None:
        async with self.concurrency:
            if item.kind == "publish":
                sent = await self._publish(item.record)
                self._sent.append(sent)
                self.report.published += 1
                return sent
            await self._reenact(item)
            return None

    async def _publish(self, record: RecordedRecord) -> Sent:
        # The record's own timestamp is not reused: Kafka's time retention would delete a
        # replayed year at once. The event's time travels in its ce_time header.
        landed = await self._producer.send_and_wait(
            self.target.topic_prefix + record.topic,
            value=record.value,
            key=record.key,
            headers=list(record.headers),
        )
        return Sent(record.topic, landed.partition, landed.offset)

    async def _reenact(self, item: Input) -> None:
        assert item.event is not None
        data = upcast(item.event.data)
        dossier = data.dossier_id
        path, body = f"/dossiers/{dossier}", _reenactment_body(item.kind, data)
        if item.kind == "submit":
            path = "/dossiers"
        elif item.kind == "pay":
            path += "/payments"
            # The payment names the notice the replayed tax authority issued this time.
            found = await self.call("GET", f"{self.intake}/dossiers/{dossier}")
            body = payment_for(found.json()) if found.status_code == 200 else {}
        elif item.kind == "supplement":
            path += "/supplements"
        else:
            path += "/supplement-requests"
        response = await self.call(
            "POST",
            self.intake + path,
            json=body,
            # The key makes a request sent twice (the connection broke on the way) count once.
            headers={"Idempotency-Key": f"replay:{item.event.id}", "Event-Time": item.at.isoformat()},
        )
        if response.status_code in (200, 201):
            self.report.reenacted += 1
            if response.headers.get("Idempotent-Replayed") == "true":
                self.report.already_done += 1
            return
        self.report.refused.append(
            f"{item.kind} {dossier} at {item.at.isoformat()}: {response.status_code} {response.text}"
        )


def window_end(
    moments: Sequence[datetime], readings: Mapping[str, ClockReading], *, after: datetime
) -> datetime | None:
    """Where the clock stops next: the first recorded moment at or past every horizon, after ``after``.

    None when no service has timed work, or nothing is left: the rest is one window.
    """
    horizons = [r.horizon for r in readings.values() if r.horizon is not None]
    if not horizons:
        return None
    at = bisect_left(moments, min(horizons))
    later = bisect_right(moments, after)  # the first moment after the clock
    index = max(at, later)  # a horizon at or before the clock: one moment at a time
    return moments[index] if index < len(moments) else None


class _Pace:
    """Holds inputs back to ``speed`` virtual seconds per wall second (None: as fast as possible)."""

    def __init__(self, first: datetime, speed: float | None, started: float) -> None:
        self.first = first
        self.speed = speed
        self.started = started

    async def until(self, at: datetime) -> None:
        """Sleep until the wall time ``at`` is due at."""
        if self.speed is None:
            return
        wait = (at - self.first).total_seconds() / self.speed - (time.monotonic() - self.started)
        if wait > 0:
            await asyncio.sleep(wait)


async def request_again(
    client: httpx.AsyncClient, method: str, url: str, *, within: float, **kwargs: Any
) -> httpx.Response:
    """An HTTP request, sent again while the connection fails (a closing keep-alive, a restart).

    Only for requests safe to repeat: reads, clock moves, and desk actions with an
    ``Idempotency-Key`` (a request that did reach the desk before the connection broke is
    answered the second time with what it did the first, ``Idempotent-Replayed: true``).
    Gives up with :class:`ReplayError` after ``within`` seconds.
    """
    deadline = time.monotonic() + within
    pause = 0.05
    while True:
        try:
            return await client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            if time.monotonic() + pause > deadline:
                raise ReplayError(f"{method} {url}: no answer within {within:g}s ({exc!r})") from exc
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)


def payment_for(dossier: Mapping[str, Any]) -> dict[str, Any]:
    """What the treasury confirms for the tax notice on ``dossier`` (a ``GET /dossiers/{id}`` body).

    Empty when no notice was issued (the desk then refuses the payment, and the report says so).
    """
    for action, result in dossier.get("results", {}).items():
        if RESULTS.get(action) is AssessmentResult and isinstance(result, Mapping):
            notice = AssessmentResult.model_validate(result)  # the tax notice's contract
            return {"notice_number": notice.notice_number, "amount_vnd": notice.total_vnd}
    return {}


def _reenactment_body(kind: Kind, data: Any) -> dict[str, Any] | None:
    """The API request body that does again what the recorded event says was done."""
    if kind == "submit":
        assert isinstance(data, DossierReceived)
        if data.details is None:
            raise ReplayError(
                f"dossier.received for {data.dossier_id} has no details (recorded before"
                " revision 2 of dossier.received.v2): it cannot be filed again"
            )
        return {
            "dossier_id": data.dossier_id,
            "procedure_code": data.procedure_code,
            "applicant": data.applicant.model_dump(),
            "documents": [d.code for d in data.documents],
            "details": data.details,
            **({"lookup_code": data.lookup_code} if data.lookup_code else {}),
        }
    if kind == "pay":
        return None
    if kind == "supplement":
        assert isinstance(data, SupplementReceived)
        return {"documents": data.documents, "details": data.details}
    assert isinstance(data, SupplementRequested)
    return {"missing_documents": data.missing_documents, "reason": data.reason}


async def replay(
    path: Path,
    target: Target,
    *,
    speed: float | None = None,
    progress: bool = True,
    replayed: Sequence[str] | None = None,
) -> ReplayReport:
    """Replay the recording at ``path`` into ``target`` (see the module docstring)."""
    read_header(path)  # a clear error for a file that is not a recording, before any work
    planned = plan(read_records(path), replayed=replayed or list(target.services))
    if any(item.kind != "publish" for item in planned.inputs) and "intake" not in target.services:
        raise ReplayError("the recording has desk actions: intake must be among the replayed services")
    async with Replayer(target) as replayer:
        return await replayer.run(planned, speed=speed, progress=progress)


def _services(values: list[str]) -> dict[str, str]:
    services: dict[str, str] = {}
    for value in values:
        name, _, url = value.partition("=")
        if not url:
            port = os.environ.get(f"{name.upper()}_PORT", str(manifest.default_ports().get(name, 0)))
            url = f"http://127.0.0.1:{port}"
        services[name] = url.rstrip("/")
    return services


def main(argv: list[str] | None = None) -> int:
    """``python -m services.replay.replay FILE``: replay a recording into a running system."""
    parser = argparse.ArgumentParser(
        prog="python -m services.replay.replay",
        description="Replay a recording into a fresh system running on virtual time (CLOCK=virtual).",
        epilog="The services under replay must run with CLOCK=virtual and a VIRTUAL_CLOCK_START"
        " no later than the recording's first event. See the module docstring for what is"
        " published and what is done again.",
    )
    parser.add_argument("file", type=Path, help="a recording (.jsonl.gz)")
    parser.add_argument(
        "--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--topic-prefix", default=os.environ.get("KAFKA_TOPIC_PREFIX", ""))
    parser.add_argument(
        "--service",
        action="append",
        metavar="NAME[=URL]",
        help="a service under replay (repeat; default: intake, notification, console on their"
        " default ports or <NAME>_PORT)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=None,
        help="virtual seconds per wall second (e.g. 3600: an hour a second); default: as fast as possible",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--token",
        default=os.environ.get("REPLAY_TOKEN", ""),
        help=f"bearer token with the roles {', '.join(REPLAY_ROLES)} (default: $REPLAY_TOKEN;"
        f" python -m infra.tokens mint {' '.join(f'--role {r}' for r in REPLAY_ROLES)})",
    )
    args = parser.parse_args(argv)
    try:
        kafka = KafkaAccess.for_tool(args.bootstrap_servers)
    except KafkaAccessError as exc:
        parser.error(f"{exc} (the operator's: README, Security)")
    target = Target(
        kafka=kafka,
        services=_services(args.service or list(default_services())),
        topic_prefix=args.topic_prefix,
        token=args.token,
    )
    try:
        report = asyncio.run(replay(args.file, target, speed=args.speed, progress=not args.no_progress))
    except (ReplayError, OSError, ValueError, httpx.HTTPError) as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    print(report.summary(), file=sys.stderr)
    for refusal in report.refused[:20]:
        print(f"  refused: {refusal}", file=sys.stderr)
    return 1 if report.refused else 0


if __name__ == "__main__":
    sys.exit(main())
