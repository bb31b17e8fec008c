"""``make bench`` in a tiny size: every part runs and reports figures (no timing is asserted)."""

from __future__ import annotations

import json

import pytest

from infra.bench.kafka_tools import parse_consumer, parse_producer
from infra.bench.report import machine, table
from infra.bench.runner import QUICK, BenchConfig, run_bench
from infra.stack import Stack
from services.replay.year import generate

REQUIRED = (
    "dossiers_per_s",
    "handoff_p50_ms",
    "handoff_p99_ms",
    "relay_msgs_per_s",
    "kafka_producer_msgs_per_s",
    "kafka_consumer_msgs_per_s",
    "replay_events_per_s",
    "max_service_rss_mb",
    "peer_dbos_dossiers_per_s",
)

TINY = BenchConfig(
    mode="smoke",
    warmup_dossiers=1,
    kafka_records=500,
    relay_records=30,
    saturation_dossiers=4,
    concurrency=2,
    moderate_seconds=2,
    moderate_rate=2,
    replay_days=1,
    replay_scale=0.05,
    crypto_iterations=50,
    letter_iterations=2,
)


def test_kafka_tool_outputs_are_read() -> None:
    producer = (
        "7031 records sent, 1402.3 records/sec (2.01 MB/sec), 1362.7 ms avg latency, 2291.0 ms max latency.\n"
        "20000 records sent, 2764.722145 records/sec (3.95 MB/sec), 2642.94 ms avg latency, 4152.00 ms max"
        " latency, 2972 ms 50th, 4044 ms 95th, 4113 ms 99th, 4147 ms 99.9th.\n"
    )
    assert parse_producer(producer) == (2764.722145, 3.95)
    consumer = (
        "WARN something, with, commas\n"
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,"
        " rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
        "2026-11-25 15:36:14:974, 2026-11-25 15:36:16:659, 28.6102, 16.9794, 20000, 11869.4362, 1288,"
        " 397, 72.0661, 50377.8338\n"
    )
    assert parse_consumer(consumer) == (50377.8338, 11869.4362)


def test_quick_mode_stays_small() -> None:
    # --quick must finish in under two minutes on a 2-core machine: keep its sizes modest.
    assert QUICK.saturation_dossiers <= 100
    assert QUICK.moderate_seconds <= 15
    assert QUICK.kafka_records <= 50_000
    assert QUICK.replay_days * QUICK.replay_scale <= 1


@pytest.mark.real
async def test_tiny_bench_reports_every_figure(services: Stack) -> None:
    results = await run_bench(services, TINY, machine_info=machine())

    for key in REQUIRED:
        assert isinstance(results[key], float | int), key
        assert results[key] > 0, key
    # The year's first working day at 5% of the seed's density, replayed into a fresh system.
    assert results["replay"]["dossiers"] == len(generate(scale=0.05, working_days=1).dossiers) > 0
    assert results["replay"]["refused"] == 0
    assert results["replay"]["events"] >= results["replay"]["dossiers"]
    assert results["saturation"]["dossiers"] == 4
    assert results["saturation"]["records_handled"] > 0
    assert set(results["service_rss_mb"]) == set(services.services)
    # The notification service's letters are made by its letter workers, and their memory counts.
    assert results["service_rss_mb"]["notification"]["workers"] >= 1
    assert results["max_service_rss_mb"] >= results["service_rss_mb"]["notification"]["worker_peak"] > 0
    assert results["bare_relay"]["landed"] >= TINY.relay_records
    assert results["batched_relay"]["landed"] >= TINY.relay_records
    assert results["signed_relay"]["landed"] >= TINY.relay_records
    assert results["signed_batched_relay"]["landed"] >= TINY.relay_records
    signing = results["signing"]
    assert signing["signatures_per_dossier"] == results["saturation"]["events_published"] / 4
    assert signing["verifications_per_dossier"] > 0
    assert signing["dossiers_per_s_unsigned_estimated"] >= signing["dossiers_per_s_signed"] > 0
    assert results["batched_relay_msgs_per_s"] > 0
    letters = results["letters"]
    assert letters["render_ms"] > 0
    assert letters["sign_ms"] > 0
    assert letters["ceiling_dossiers_per_s"] > 0
    # The same closed loop with two of every service: measured, and nothing lost or doubled.
    scaled = results["scale_out"]
    assert (scaled["instances"], scaled["dossiers"]) == (2, 4)
    assert (scaled["lost"], scaled["doubled"]) == (0, 0), scaled["findings"]
    assert scaled["dossiers_per_s"] > 0
    assert results["ratios"]["instances_vs_one"] > 0
    assert not [key for key, s in services.services.items() if s.extra]  # the extra instances are gone
    # CPU-ms per dossier of every process of the saturation phase, and in total.
    per_dossier = results["cpu_ms_per_dossier"]
    assert set(per_dossier) == set(results["saturation"]["cpu_seconds"]) | {"total"}
    assert {"intake", "postgres", "kafka", "load generator"} <= set(per_dossier)
    assert per_dossier["total"] > 0
    assert per_dossier["total"] == pytest.approx(sum(v for k, v in per_dossier.items() if k != "total"))
    # The DBOS peer: the same closed loop and offered rate, every dossier returned.
    peer = results["peer_dbos"]
    assert (peer["dossiers"], peer["returned"], peer["queue_concurrency"]) == (4, 4, 2)
    assert peer["moderate"]["returned"] == peer["moderate"]["dossiers"] > 0
    assert peer["step_latency_offered_dossiers_per_s"] == TINY.moderate_rate
    for key in ("dossiers_per_s", "step_latency_p50_ms", "step_latency_p99_ms"):
        assert peer[key] > 0, key
    assert peer["cpu_ms_per_dossier"]["peer"] > 0
    assert peer["cpu_ms_per_dossier"]["postgres"] > 0
    assert peer["dbos_version"].startswith("3.")
    assert peer["does"]
    assert peer["does_not"]
    assert results["ratios"]["ours_vs_dbos"] > 0
    json.dumps(results)  # what is written to bench-results.json
    printed = table(results)
    assert "dossiers/s" in printed
    assert "DBOS peer: dossiers/s at saturation" in printed
    assert "ms per dossier" in printed
    assert "letters: ceiling, every core on letters" in printed
