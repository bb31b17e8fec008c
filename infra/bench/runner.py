"""Runs every measurement on one freshly started stack and reports them together."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from infra.bench import bare_relay, kafka_tools, letter_cost, peer_dbos, replay_speed, scale_out, signing_cost
from infra.bench.bare_relay import SampleRecord
from infra.bench.common import child_pids, component_pids, cpu_probe, memory_mb, say
from infra.bench.load import LoadDriver, Phase
from infra.bench.report import TARGETS, machine, table
from infra.kafka import KAFKA_VERSION, free_port
from infra.kafka.node import ADMIN_PRINCIPAL
from infra.stack import REPO, SERVICES, Stack, interrupt_on_signals
from services.runtime.kafka_access import KafkaAccess
from services.runtime.settings import DEFAULT_CONSUMER_BATCH_SIZE

RESULTS_PATH = REPO / "bench-results.json"
HANDED_OVER = b"vn.gov.dossier.handed_over.v1"

# Variables that would point the stack at something else than what the bench starts, or change
# how it runs (a virtual clock): the bench measures the system as `make run` starts it.
_FOREIGN_ENV = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "SMTP_HOST",
    "SMTP_PORT",
    "CLOCK",
    "VIRTUAL_CLOCK_START",
    "KAFKA_TOPIC_PREFIX",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_TRACES_EXPORTER",
)


@dataclass(frozen=True)
class BenchConfig:
    """How much of each measurement to do."""

    mode: str
    warmup_dossiers: int
    kafka_records: int
    relay_records: int
    saturation_dossiers: int
    concurrency: int
    moderate_seconds: float
    moderate_rate: float | None = None
    """Offered dossiers/s for the latency phase; None: 20/s or half the saturation rate if lower."""
    replay_days: int = 3
    """Working days of the generated year replayed for the replay speed."""
    replay_scale: float = 1.0
    """Their density (1.0: the seed city's)."""
    crypto_iterations: int = 20_000
    """Signatures (and as many verifications) per repeat of the crypto micro-measurement."""
    letter_iterations: int = 40
    """Result letters rendered (and as many signed) per repeat of the letter micro-measurement."""
    instances: int = 2
    """Processes per service in the scale-out phase (its closed loop is the saturation phase's)."""


FULL = BenchConfig(
    mode="full",
    warmup_dossiers=10,
    kafka_records=300_000,
    relay_records=20_000,
    saturation_dossiers=1000,
    concurrency=100,
    moderate_seconds=60,
    replay_days=3,
)
QUICK = BenchConfig(
    mode="quick",
    warmup_dossiers=3,
    kafka_records=30_000,
    relay_records=3000,
    saturation_dossiers=80,
    concurrency=40,
    moderate_seconds=10,
    replay_days=1,
    crypto_iterations=2000,
    letter_iterations=10,
)


async def _sample_record(access: KafkaAccess, topic: str, dossier_ids: set[str]) -> SampleRecord:
    """One of our real ``dossier.handed_over`` records, read back from ``topic``."""
    consumer = AIOKafkaConsumer(topic, **access.client_kwargs(), auto_offset_reset="earliest")
    await consumer.start()
    fallback: SampleRecord | None = None
    try:
        async with asyncio.timeout(30):
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for record in records:
                        headers = tuple(record.headers or ())
                        if ("ce_type", HANDED_OVER) not in headers:
                            continue
                        sample = SampleRecord(
                            key=record.key or b"", value=record.value or b"", headers=headers
                        )
                        if (record.key or b"").decode(errors="replace") in dossier_ids:
                            return sample
                        fallback = fallback or sample
                if fallback is not None and not batches:
                    return fallback
    finally:
        await consumer.stop()


def _service_memory(stack: Stack) -> dict[str, dict[str, float | None]]:
    """Each service's RSS and peak, and the largest peak among the processes it started (letter workers)."""
    memory: dict[str, dict[str, float | None]] = {}
    for name, service in stack.services.items():
        pid = service.process.pid if service.process is not None else None
        reading = memory_mb(pid) if pid is not None else None
        workers = [found for child in child_pids(pid) if (found := memory_mb(child))] if pid else []
        memory[name] = {
            "rss": reading[0] if reading else None,
            "peak": reading[1] if reading else None,
            "workers": len(workers),
            "worker_peak": max((peak for _, peak in workers), default=None),
        }
    return memory


def _moderate_rate(config: BenchConfig, saturation: float) -> float:
    if config.moderate_rate is not None:
        return config.moderate_rate
    return max(0.5, min(20.0, round(saturation / 2, 1)))


def _phase_dict(phase: Phase) -> dict[str, Any]:
    fields = dataclasses.asdict(phase)
    del fields["dossier_ids"]
    return fields


def _ratio(ours: float, theirs: float | None) -> float | None:
    return ours / theirs if theirs else None


def cpu_ms_per_dossier(cpu_seconds: dict[str, float], dossiers: int) -> dict[str, float]:
    """CPU milliseconds per dossier of each process over a phase, and their total."""
    per = {name: round(1000 * used / dossiers, 2) for name, used in cpu_seconds.items()} if dossiers else {}
    return {**per, "total": round(sum(per.values()), 2)}


def _peer_summary(peer: dict[str, Any]) -> dict[str, Any]:
    """The peer's headline figures (its phases in full beside them)."""
    saturation, moderate = peer["saturation"], peer["moderate"]
    return {
        "dossiers_per_s": saturation["dossiers_per_s"],
        "returned": saturation["returned"],
        "dossiers": saturation["dossiers"],
        "step_latency_p50_ms": moderate["step_ms"]["p50"],
        "step_latency_p99_ms": moderate["step_ms"]["p99"],
        "step_latency_offered_dossiers_per_s": moderate["offered_per_s"],
        "saturation_step_latency_p50_ms": saturation["step_ms"]["p50"],
        "saturation_step_latency_p99_ms": saturation["step_ms"]["p99"],
        "cpu_ms_per_dossier": cpu_ms_per_dossier(saturation["cpu_seconds"], saturation["dossiers"]),
        "dbos_version": peer["dbos_version"],
        "queue_concurrency": peer["queue"]["total_worker_concurrency"],
        **peer,
    }


async def run_bench(stack: Stack, config: BenchConfig, *, machine_info: dict[str, Any]) -> dict[str, Any]:
    """Every measurement on ``stack`` (already started, services healthy); return the results."""
    # The bench's own tools (Kafka's performance tools, the bare relays, the lag probe) run as the
    # super user: they create topics and consumer groups no service declares.
    kafka = stack.kafka_access(ADMIN_PRINCIPAL)
    prefix = stack.env().get("KAFKA_TOPIC_PREFIX", "")
    run_id = uuid.uuid4().hex[:8]
    intake = stack.services["intake"].url
    async with LoadDriver(
        intake_url=intake,
        desk_token=stack.token("desk_officer", subject="bench-desk"),
        gateway_token=stack.token("payment_gateway", subject="bench-treasury"),
        database_url=stack.database_url,
        kafka=kafka,
        topic_prefix=prefix,
        cpu_probe=cpu_probe(stack),
    ) as driver:
        say(f"warm-up: {config.warmup_dossiers} dossiers through the whole route")
        warmup = await driver.closed_loop(
            "warm-up", dossiers=config.warmup_dossiers, concurrency=config.warmup_dossiers
        )
        sample = await _sample_record(kafka, f"{prefix}handoffs.land_registry", set(warmup.dossier_ids))
        say(f"a real handed_over record: {sample.size} B (value {len(sample.value)} B)")

        tools = await kafka_tools.measure(
            kafka,
            topic=f"bench.{run_id}.perf",
            records=config.kafka_records,
            record_size=sample.size,
            work_dir=stack.run_dir,
        )
        relay = await bare_relay.measure(
            kafka,
            sample=sample,
            count=config.relay_records,
            prefix=f"bench.{run_id}.relay",
            log_path=stack.run_dir / "logs" / "bare-relay.log",
        )
        keys = signing_cost.fresh_keys(sample, stack.run_dir / "bench-trust")
        signed_relay = await bare_relay.measure(
            kafka,
            sample=keys.sample,
            count=config.relay_records,
            prefix=f"bench.{run_id}.signed-relay",
            log_path=stack.run_dir / "logs" / "signed-relay.log",
            signing=keys.signing,
        )
        batched = await bare_relay.measure(
            kafka,
            sample=sample,
            count=config.relay_records,
            prefix=f"bench.{run_id}.batched-relay",
            log_path=stack.run_dir / "logs" / "batched-relay.log",
            batch=DEFAULT_CONSUMER_BATCH_SIZE,
        )
        signed_batched = await bare_relay.measure(
            kafka,
            sample=keys.sample,
            count=config.relay_records,
            prefix=f"bench.{run_id}.signed-batched-relay",
            log_path=stack.run_dir / "logs" / "signed-batched-relay.log",
            batch=DEFAULT_CONSUMER_BATCH_SIZE,
            signing=keys.signing,
        )

        # Records each service consumer group receives in the saturation phase: verifications.
        group_topics = signing_cost.declared_group_topics(prefix, stack.services)
        read_topics = [t for topics in group_topics.values() for t in topics]
        ends_before = await signing_cost.end_offsets(kafka, read_topics)
        say(f"saturation: {config.saturation_dossiers} dossiers, {config.concurrency} in flight")
        saturation = await driver.closed_loop(
            "saturation", dossiers=config.saturation_dossiers, concurrency=config.concurrency
        )
        written = signing_cost.written_between(
            ends_before, await signing_cost.end_offsets(kafka, read_topics)
        )
        say(
            f"saturation: {saturation.dossiers_per_s:.1f} dossiers/s returned,"
            f" {saturation.drained_dossiers_per_s or 0:.1f}/s with every consumer caught up,"
            f" {saturation.hops_per_s:.0f} hops/s"
        )

        rate = _moderate_rate(config, min(saturation.dossiers_per_s, saturation.drained_dossiers_per_s or 0))
        say(f"moderate load: {rate:g} dossiers/s offered for {config.moderate_seconds:g} s")
        moderate = await driver.open_loop("moderate", rate=rate, seconds=config.moderate_seconds)
        say(
            f"moderate load: handoff p50 {moderate.handoff_ms['p50'] or 0:.1f} ms,"
            f" p99 {moderate.handoff_ms['p99'] or 0:.1f} ms"
        )
        scaled = await scale_out.measure(
            stack,
            driver,
            dossiers=config.saturation_dossiers,
            concurrency=config.concurrency,
            instances=config.instances,
        )
        shared = {k: v for k, v in component_pids(stack).items() if k in ("postgres", "mailbox")}
        executors = peer_dbos.default_executors()
        say(
            f"DBOS peer: {config.saturation_dossiers} dossiers, {config.concurrency} in flight; {rate:g}/s;"
            f" {executors} executor processes"
        )
        peer = _peer_summary(
            await peer_dbos.measure(
                stack,
                dossiers=config.saturation_dossiers,
                concurrency=config.concurrency,
                rate=rate,
                seconds=config.moderate_seconds,
                warmup=config.warmup_dossiers,
                pids=shared,
                executors=executors,
            )
        )
        say(
            f"DBOS peer: {peer['dossiers_per_s']:.1f} dossiers/s, step latency p50"
            f" {peer['step_latency_p50_ms'] or 0:.1f} ms, p99 {peer['step_latency_p99_ms'] or 0:.1f} ms"
            f" at {rate:g}/s, {peer['cpu_ms_per_dossier']['total']:.0f} ms CPU per dossier"
        )

    say(f"crypto: {config.crypto_iterations} signatures and verifications of the sample, 5 times")
    timings = signing_cost.time_crypto(keys, iterations=config.crypto_iterations)
    verified = signing_cost.verifications(written, group_topics)
    cost = signing_cost.signing_cost(
        timings,
        dossiers=saturation.dossiers,
        signatures=saturation.events_published,
        verified=verified,
        cpu_seconds=saturation.cpu_seconds,
        dossiers_per_s=saturation.dossiers_per_s,
    )
    say(
        f"crypto: sign {cost.sign_us:.0f} µs, verify {cost.verify_us:.0f} µs;"
        f" {cost.signatures_per_dossier:.1f} signatures and {cost.verifications_per_dossier:.1f}"
        f" verifications per dossier = {cost.crypto_cpu_ms_per_dossier:.2f} ms CPU,"
        f" {100 * cost.share_of_system_cpu:.1f}% of the system's {cost.system_cpu_ms_per_dossier:.0f} ms"
    )
    say(
        f"signed relay: {signed_relay.msgs_per_s:,.0f} vs {relay.msgs_per_s:,.0f} records/s unsigned"
        f" ({_ratio(signed_relay.msgs_per_s, relay.msgs_per_s) or 0:.3f}×); batched"
        f" {signed_batched.msgs_per_s:,.0f} vs {batched.msgs_per_s:,.0f}"
        f" ({_ratio(signed_batched.msgs_per_s, batched.msgs_per_s) or 0:.3f}×)"
    )

    say(f"letters: {config.letter_iterations} result letters rendered and signed, 3 times")
    # A thread of its own: pyHanko's synchronous signing runs an event loop of its own.
    letters = await asyncio.to_thread(
        letter_cost.measure,
        stack.letter_signing_dir(),
        cores=int(machine_info["cores"]),
        iterations=config.letter_iterations,
    )
    say(
        f"letters: render {letters.render_ms:.1f} ms, sign {letters.sign_ms:.1f} ms of CPU per result"
        f" letter; letters alone on {letters.cores} cores: {letters.ceiling_dossiers_per_s:.0f} dossiers/s"
    )

    replayed = await replay_speed.measure(
        stack, scale=config.replay_scale, working_days=config.replay_days, work_dir=stack.run_dir
    )
    say(
        f"replay: {replayed.events} events in {replayed.windows} windows ({replayed.moments} clock stops)"
        f" in {replayed.wall_seconds:.1f} s,"
        f" {replayed.events_per_s:.1f} events/s"
    )

    memory = _service_memory(stack)
    # Every process counts: a service's own and each of its workers'.
    peaks = [p for m in memory.values() for p in (m["peak"], m["worker_peak"]) if p is not None]
    machine_info = {**machine_info, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]}
    notes = [
        "handoff = producer outbox.created_at → consumer inbox.received_at (both Postgres now(), i.e. the"
        " start of each transaction; the consumer's own commit is not included)",
        "hops = inbox rows (an event handled by one consumer); ratios compare our hops/s at saturation"
        " with the single-hop rates of the bare relay and the Kafka tools",
        "the load generator runs on the same machine and shares its cores",
        f"replay = the generated year's first {replayed.working_days} working day(s) at scale"
        f" {replayed.scale:g} ({replayed.dossiers} dossiers, {replayed.events} events) replayed into a"
        " fresh desk, notification and console; the replayer hands inputs over in windows"
        f" ({replayed.windows}) and stops the clocks only where an alarm can fall due"
        f" ({replayed.moments} stops), so this is bound by throughput and by those stops",
        "signing: µs are CPU time per operation on the real handed_over record (median of"
        f" {timings.repeats} × {timings.iterations}); signatures per dossier = outbox rows of the"
        " saturation phase's dossiers, verifications = records written to each topic in that phase ×"
        " service consumer groups reading it; share = that crypto CPU ÷ the system's CPU per dossier"
        " (load generator excluded); dossiers/s without signing is derived from it, not measured",
        "letters: CPU time per render and per PAdES signature of the example result letter (median of"
        f" {letters.repeats} × {letters.iterations}), with the run's letter-signing certificates;"
        " ceiling = cores × 1000 ÷ (render + sign): the dossiers/s if every core did nothing but letters",
        "cpu_ms_per_dossier: CPU of each process over the saturation phase (first submission until every"
        " consumer caught up) ÷ its dossiers; the load generator is the bench's own process",
        f"peer_dbos: the same route as DBOS Transact workflows in {peer['executors']} executor processes"
        " (one per core, at most one per dossier in flight; the driver's is one) sharing one queue on its"
        " own database of the same Postgres, after our phases, with the same closed loop and offered rate;"
        " step latency = one step's end → the next one's start (the citizen's payment left out); its CPU"
        " per dossier is all its processes (driver included) plus Postgres and the mailbox over its"
        " saturation phase;"
        f" ours_vs_dbos = our drained rate ÷ its rate. Does: {peer['does']}. Does not: {peer['does_not']}",
    ]
    if saturation.dossiers_per_s < 100:
        notes.append(
            f"the system saturates at {saturation.dossiers_per_s:.1f} dossiers/s, below the 100/s at which"
            f" issue 8 sets the p99 target: latency measured at {rate:g}/s instead"
        )
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": config.mode,
        "machine": machine_info,
        "kafka_version": KAFKA_VERSION,
        "record_size_bytes": sample.size,
        "dossiers_per_s": saturation.dossiers_per_s,
        "dossiers_per_s_drained": saturation.drained_dossiers_per_s,
        "handoff_p50_ms": moderate.handoff_ms["p50"],
        "handoff_p95_ms": moderate.handoff_ms["p95"],
        "handoff_p99_ms": moderate.handoff_ms["p99"],
        "handoff_offered_dossiers_per_s": rate,
        "saturation_handoff_p50_ms": saturation.handoff_ms["p50"],
        "saturation_handoff_p99_ms": saturation.handoff_ms["p99"],
        "relay_msgs_per_s": relay.msgs_per_s,
        "batched_relay_msgs_per_s": batched.msgs_per_s,
        "kafka_producer_msgs_per_s": tools.producer_msgs_per_s,
        "kafka_consumer_msgs_per_s": tools.consumer_msgs_per_s,
        "replay_events_per_s": replayed.events_per_s,
        "cpu_ms_per_dossier": cpu_ms_per_dossier(saturation.cpu_seconds, saturation.dossiers),
        "peer_dbos_dossiers_per_s": peer["dossiers_per_s"],
        "peer_dbos": peer,
        "replay": dataclasses.asdict(replayed),
        "max_service_rss_mb": max(peaks) if peaks else None,
        "service_rss_mb": memory,
        "bare_relay_rss_mb": relay.peak_rss_mb,
        "ratios": {
            "ours_vs_bare_relay": _ratio(saturation.hops_per_s, relay.msgs_per_s),
            "ours_vs_batched_relay": _ratio(saturation.hops_per_s, batched.msgs_per_s),
            "ours_vs_kafka_producer": _ratio(saturation.hops_per_s, tools.producer_msgs_per_s),
            "ours_vs_kafka_consumer": _ratio(saturation.hops_per_s, tools.consumer_msgs_per_s),
            "replay_vs_bare_relay": _ratio(replayed.events_per_s, relay.msgs_per_s),
            "instances_vs_one": _ratio(scaled.phase.dossiers_per_s, saturation.dossiers_per_s),
            # Ours with every consumer caught up (notices written) against the peer's workflows
            # ended (notices written and sent): the stricter of our two rates.
            "ours_vs_dbos": _ratio(saturation.drained_dossiers_per_s or 0.0, peer["dossiers_per_s"]),
        },
        "scale_out": {
            "instances": scaled.instances,
            "lost": scaled.lost,
            "doubled": scaled.doubled,
            "findings": scaled.findings,
            **_phase_dict(scaled.phase),
        },
        "targets": TARGETS,
        "kafka_tools": dataclasses.asdict(tools),
        "bare_relay": dataclasses.asdict(relay),
        "signed_relay": dataclasses.asdict(signed_relay),
        "signed_batched_relay": dataclasses.asdict(signed_batched),
        "signing": {
            "relay_msgs_per_s_unsigned": relay.msgs_per_s,
            "relay_msgs_per_s_signed": signed_relay.msgs_per_s,
            "relay_signed_vs_unsigned": _ratio(signed_relay.msgs_per_s, relay.msgs_per_s),
            "batched_relay_msgs_per_s_unsigned": batched.msgs_per_s,
            "batched_relay_msgs_per_s_signed": signed_batched.msgs_per_s,
            "batched_relay_signed_vs_unsigned": _ratio(signed_batched.msgs_per_s, batched.msgs_per_s),
            **dataclasses.asdict(cost),
            "dossiers_per_s_unsigned_is": "derived: dossiers_per_s_signed / (1 - share_of_system_cpu)",
            "crypto_iterations": timings.iterations,
            "crypto_repeats": timings.repeats,
            "signatures": saturation.events_published,
            "verifications": verified,
            "records_written_per_topic": written,
            "consumer_group_topics": group_topics,
        },
        "letters": dataclasses.asdict(letters),
        "batched_relay": dataclasses.asdict(batched),
        "saturation": _phase_dict(saturation),
        "moderate": _phase_dict(moderate),
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.bench [--quick]``: start the stack, measure, print, write JSON, stop."""
    parser = argparse.ArgumentParser(prog="python -m infra.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run (about 3 minutes)")
    parser.add_argument("--dossiers", type=int, help="dossiers in the saturation phase")
    parser.add_argument("--concurrency", type=int, help="dossiers in flight in the saturation phase")
    parser.add_argument("--rate", type=float, help="offered dossiers/s in the latency phase")
    parser.add_argument("--seconds", type=float, help="length of the latency phase")
    parser.add_argument("--kafka-records", type=int, help="records for Kafka's performance tools")
    parser.add_argument("--relay-records", type=int, help="records for the bare relay")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="where to write the JSON")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs) afterwards")
    parser.add_argument(
        "--traces",
        action="store_true",
        help="export every service's spans to the console over OTLP, as `make run` does (default: spans"
        " are made and propagated but not exported)",
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    config = dataclasses.replace(
        base,
        saturation_dossiers=args.dossiers or base.saturation_dossiers,
        concurrency=args.concurrency or base.concurrency,
        moderate_rate=args.rate or base.moderate_rate,
        moderate_seconds=args.seconds or base.moderate_seconds,
        kafka_records=args.kafka_records or base.kafka_records,
        relay_records=args.relay_records or base.relay_records,
    )
    for name in _FOREIGN_ENV:
        os.environ.pop(name, None)
    # aiokafka warns once per partition when it writes to a topic created a moment ago (it retries).
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    # Ctrl-C and SIGTERM stop the run and then the stack (also when started with SIGINT ignored).
    interrupt_on_signals()
    machine_info = machine()
    say(f"machine: {machine_info['cores']} cores, load average {machine_info['load_avg_at_start']}")
    # A short path under /tmp: Postgres' Unix socket lives in its data dir (108-byte limit).
    run_dir = Path(tempfile.mkdtemp(prefix="bench-", dir="/tmp"))
    ports = {name: free_port() for name in SERVICES}
    token = secrets.token_urlsafe(24)
    # The agencies answer at once: the bench measures the system, not officers' queues.
    env = {"CONSOLE_TOKEN": token, "AGENCY_DECISIONS": "automatic"}
    if args.traces:
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports['console']}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer%20{token}",
        }
    stack = Stack(
        run_dir=run_dir, kafka_port=free_port(), controller_port=free_port(), ports=ports, extra_env=env
    )
    results: dict[str, Any] | None = None
    failed = False
    try:
        say(f"starting Kafka, Postgres, the mailbox and {len(SERVICES)} services in {run_dir}")
        stack.start()
        results = asyncio.run(run_bench(stack, config, machine_info=machine_info))
        results["spans_exported"] = args.traces
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted")
        return 130
    except Exception as exc:
        failed = True
        print(traceback.format_exc(), file=sys.stderr)
        say(f"failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        say("stopping the stack")
        try:
            stack.stop()
        finally:
            if failed or args.keep:
                say(f"logs kept in {run_dir / 'logs'}")
            else:
                shutil.rmtree(run_dir, ignore_errors=True)
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(table(results), flush=True)
    say(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
