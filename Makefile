# Two commands matter: `make run` (the whole system) and `make test` (the whole suite).
# Everything else is a step they call. Each step installs what it needs, so a fresh
# machine with Python 3.11, Java 17 and Maven needs nothing done by hand.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint format setup kafka-jars clean contracts-check contracts-register docs replay-year

run: setup kafka-jars ## Start Kafka, Postgres and every service; Ctrl-C stops them
	$(PY) -m infra.stack run

include infra/browser.mk
include infra/bench.mk
include infra/chaos.mk

test: setup kafka-jars browser lint contracts-check ## Lint, contracts, then every test (real Kafka and Postgres)
	$(PY) -m pytest

contracts-check: setup ## Models vs committed schemas (drift, compatibility), AsyncAPI, catalog, compose up to date
	$(PY) -m contracts.registry check
	$(PY) -m services.specification --check
	$(PY) -m infra.compose_gen --check

contracts-register: setup ## Record changed event models as new schema revisions (refused if incompatible)
	$(PY) -m contracts.registry register

docs: setup ## Regenerate contracts/asyncapi.yaml, contracts/EVENTS.md and docker-compose.yml's services
	$(PY) -m services.specification
	$(PY) -m infra.compose_gen

lint: setup ## ruff and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy contracts services infra tests

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

setup: $(STAMP) ## The virtualenv with pinned dependencies (re-installed when pyproject.toml changes)

$(STAMP): pyproject.toml
	@command -v java >/dev/null || { echo "Java 17+ is needed to run Kafka (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is needed to fetch Kafka (apt-get install maven)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

kafka-jars: setup ## Apache Kafka 3.9.2 jars from Maven Central (cached in ~/.cache/dossier-routing)
	$(PY) -m infra.kafka fetch

clean: ## Remove local state (Kafka and Postgres data of `make run`)
	rm -rf .run test-artifacts

SCALE ?= 1
replay-year: setup kafka-jars ## A generated year of the seed city replayed end to end (SCALE=0.01 for 1%)
	$(PY) -m infra.replay_year --scale $(SCALE)
