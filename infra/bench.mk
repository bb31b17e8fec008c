# `make bench` (issue 8): start the whole stack on free ports under /tmp and measure, in one run,
# Kafka's own performance tools, a bare FastStream relay and our system (dossiers/s, handoff
# latency p50/p95/p99, memory and CPU-ms per dossier per process), and the same route as DBOS
# Transact workflows on the same Postgres (infra/bench/peer_dbos.py, ratios.ours_vs_dbos).
# Prints one table and writes bench-results.json.
# `make bench QUICK=1` is the short version (about 3 minutes). See README "Performance".
#
# Included from the Makefile (`include infra/bench.mk`); uses its PY, setup and kafka-jars.

QUICK ?=

.PHONY: bench

bench: setup kafka-jars ## Benchmark the system against Kafka's tools and a bare relay (QUICK=1: short)
	$(PY) -m infra.bench $(if $(filter-out 0,$(QUICK)),--quick)
