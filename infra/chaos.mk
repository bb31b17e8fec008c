# `make chaos` (issue 17): the fault scenarios on their own system under /tmp (three brokers,
# embedded Postgres, the mailbox, every service): each scenario files land transfers for a while,
# breaks one thing (a service SIGKILLed, a broker, Postgres, the mail server, a rebalance), waits
# until everything is back and audits every dossier. Prints one table, writes chaos-results.json,
# exits 1 on anything lost, doubled or stuck. `make chaos QUICK=1` is the suite's short variant
# (test-artifacts/chaos-quick.json); SCENARIO="kill tax" runs the scenarios whose name has it.
#
# Included from the Makefile (`include infra/chaos.mk`); uses its PY, setup, kafka-jars and QUICK.

SCENARIO ?=

.PHONY: chaos

chaos: setup kafka-jars ## Fault scenarios: kill, fail over, rebalance; 0 lost, 0 doubled (QUICK=1: short)
	$(PY) -m infra.chaos $(if $(filter-out 0,$(QUICK)),--quick) $(if $(SCENARIO),--scenario "$(SCENARIO)")
