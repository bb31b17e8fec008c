"""Fetch, configure, start and stop the real components: Kafka, Postgres, the whole stack."""
