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

Time: the services run with ``CLOCK=virtual``. Inputs are taken in order of their event time
(``ce_time``). The replayer moves every service's clock (``PUT /clock``) to each recorded event
time in turn, inputs or not, so deadlines fire at the moments they fired when the stream was
recorded. After each move, and after each round of inputs, it waits until every service has
finished the work they caused (``GET /backlog`` all zero): the deadline watcher never sees a time
before the answers that came earlier have been routed, and an alarm due by a moment fires before
that moment's inputs. A dossier's inputs at one moment go one per round, in recorded order.

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
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
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
    """Times of the records the services write again: the clock stops there too, so the
    deadline watcher fires at the moments it fired when the stream was recorded."""


@dataclass
class ReplayReport:
    """What a replay did, and how fast."""

    inputs: int = 0
    published: int = 0
    reenacted: int = 0
    already_done: int = 0
    regenerated: int = 0
    moments: int = 0
    refused: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def events_per_s(self) -> float:
        """Inputs replayed per wall-clock second."""
        return self.inputs / self.wall_seconds if self.wall_seconds else 0.0

    def summary(self) -> str:
        """One paragraph for the terminal."""
        return (
            f"replayed {self.inputs} inputs ({self.published} records published, {self.reenacted} desk"
            f" actions, {self.already_done} already done) over {self.moments} moments of virtual time;"
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


def moments(
    inputs: Sequence[Input], marks: Iterable[datetime] = ()
) -> list[tuple[datetime, list[list[Input]]]]:
    """Inputs grouped by time, each moment in rounds: a dossier's n-th input there is in round n.

    ``marks`` are moments with no input, where only the clock moves.
    """
    by_time: dict[datetime, list[Input]] = {mark: [] for mark in marks}
    for item in inputs:
        by_time.setdefault(item.at, []).append(item)
    grouped = []
    for at in sorted(by_time):
        rounds: list[list[Input]] = []
        seen: dict[str, int] = defaultdict(int)
        for item in by_time[at]:
            n = seen[item.dossier]
            seen[item.dossier] += 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(item)
        grouped.append((at, rounds))
    return grouped


async def wait_until_idle(client: httpx.AsyncClient, services: dict[str, str], *, timeout: float) -> None:
    """Poll every service's ``GET /backlog`` until all counts are 0 twice in a row.

    Twice: a service can pass work on between two polls (intake publishes, notification has
    not fetched yet); two quiet rounds in a row mean nothing was in flight between them.
    """
    deadline = time.monotonic() + timeout
    quiet = 0
    pause = 0.005
    while quiet < 2:
        counts = await asyncio.gather(*(_backlog(client, url) for url in services.values()))
        if all(not any(c.values()) for c in counts):
            quiet += 1
            continue
        quiet = 0
        if time.monotonic() > deadline:
            raise ReplayError(
                f"the system did not settle in {timeout:.0f}s: {dict(zip(services, counts, strict=True))}"
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.02)


async def _backlog(client: httpx.AsyncClient, url: str) -> dict[str, int]:
    response = await client.get(f"{url}/backlog")
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


class Replayer:
    """Performs a plan against a target system."""

    def __init__(self, target: Target, *, concurrency: int = 32, settle_timeout: float = 120) -> None:
        self.intake = target.services.get("intake", "")  # needed only for desk actions
        self.target = target
        self.concurrency = asyncio.Semaphore(concurrency)
        self.settle_timeout = settle_timeout
        self.report = ReplayReport()
        # uvicorn closes a keep-alive connection idle for 5 s, httpx's default expiry is also
        # 5 s: a request could go out on a connection the server is closing (httpx.ReadError;
        # it ended a full-year replay at 45 %). Expire sooner; desk actions are retried too.
        self._http = httpx.AsyncClient(
            timeout=60,
            headers={"Authorization": f"Bearer {target.token}"} if target.token else {},
            transport=httpx.AsyncHTTPTransport(limits=httpx.Limits(keepalive_expiry=2.0), retries=3),
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
        """Perform every input, moment by moment; ``speed`` = virtual seconds per wall second."""
        started = time.monotonic()
        self.report.regenerated = planned.regenerated
        grouped = moments(planned.inputs, planned.marks)
        first = grouped[0][0] if grouped else None
        with tqdm(total=len(planned.inputs), unit="input", disable=not progress, file=sys.stderr) as bar:
            await self.settle()
            for at, rounds in grouped:
                if speed is not None and first is not None:
                    wait = (at - first).total_seconds() / speed - (time.monotonic() - started)
                    if wait > 0:
                        await asyncio.sleep(wait)
                await self.set_clocks(at)
                # What falls due by now (deadline alarms) happens before this moment's inputs.
                await self.settle()
                for items in rounds:
                    await asyncio.gather(*(self._perform(item) for item in items))
                    await self.settle()
                    bar.update(len(items))
                self.report.moments += 1
        self.report.inputs = len(planned.inputs)
        self.report.wall_seconds = time.monotonic() - started
        return self.report

    async def set_clocks(self, at: datetime) -> None:
        """Move every replayed service's virtual clock to ``at`` (never back)."""

        async def one(name: str, url: str) -> None:
            response = await self._http.put(f"{url}/clock", json={"now": at.isoformat()})
            if response.status_code == 404:
                raise ReplayError(f"{name} at {url} has no virtual clock: start it with CLOCK=virtual")
            if response.status_code in (401, 403):
                raise ReplayError(
                    f"{name} refused to move its clock ({response.status_code}): the replay needs a token"
                    f" with the roles {', '.join(REPLAY_ROLES)} (--token or REPLAY_TOKEN)"
                )
            response.raise_for_status()

        await asyncio.gather(*(one(n, u) for n, u in self.target.services.items()))

    async def settle(self) -> None:
        """Wait until every replayed service reports no backlog, twice in a row."""
        await wait_until_idle(self._http, self.target.services, timeout=self.settle_timeout)

    async def _perform(self, item: Input) -> None:
        async with self.concurrency:
            if item.kind == "publish":
                await self._publish(item.record)
                self.report.published += 1
                return
            await self._reenact(item)

    async def _publish(self, record: RecordedRecord) -> None:
        # The record's own timestamp is not reused: Kafka's time retention would delete a
        # replayed year at once. The event's time travels in its ce_time header.
        await self._producer.send_and_wait(
            self.target.topic_prefix + record.topic,
            value=record.value,
            key=record.key,
            headers=list(record.headers),
        )

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
            found = await self._http.get(f"{self.intake}/dossiers/{dossier}")
            body = payment_for(found.json()) if found.status_code == 200 else {}
        elif item.kind == "supplement":
            path += "/supplements"
        else:
            path += "/supplement-requests"
        response = await post_idempotent(
            self._http, self.intake + path, json=body, key=f"replay:{item.event.id}"
        )
        if response.status_code in (200, 201):
            self.report.reenacted += 1
            if response.headers.get("Idempotent-Replayed") == "true":
                self.report.already_done += 1
            return
        self.report.refused.append(
            f"{item.kind} {dossier} at {item.at.isoformat()}: {response.status_code} {response.text}"
        )


async def post_idempotent(
    client: httpx.AsyncClient, url: str, *, json: Any, key: str, attempts: int = 3
) -> httpx.Response:
    """POST with an Idempotency-Key, sent again if the connection failed on the way.

    Safe because of the key: a request that did reach the desk before the connection broke is
    answered the second time with what it did the first (``Idempotent-Replayed: true``).
    """
    for attempt in range(1, attempts + 1):
        try:
            return await client.post(url, json=json, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


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
