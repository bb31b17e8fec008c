"""``make bench``: how fast the whole system is, next to what the machine and the broker allow.

One run on one machine starts the real stack (Kafka, Postgres, the mailbox and the five
services as processes, on free ports under ``/tmp``, wall clock) and measures, in order:

1. **Kafka's own tools** (``ProducerPerformance``, ``ConsumerPerformance``) with records the size
   of one of our real ``dossier.handed_over`` records: the broker's limit here (``kafka_tools``).
2. **A bare FastStream relay** on the same broker: one subscriber (manual ack, as ours) reading
   topic A and republishing every record to topic B, no database (``bare_relay``); the same
   relay batched as ours, and both again *signed* (every record verified and re-signed).
3. **Our system**: land-transfer dossiers submitted over HTTP with bounded concurrency, each paid
   once awaiting payment, until every one is ``returned`` (dossiers/s at saturation), then a fixed
   moderate offered load; the handoff latency of every hop from the two Postgres clocks; the
   peak memory of each service process (``load``).
4. **The cost of signing** (``signing_cost``): µs per signature and verification of the real
   record, counted per dossier in the saturation phase, as a share of the system's CPU, and the
   dossiers/s without signing *derived* from it (the services always sign).

Replay is not built yet (issue 7), so its figure is reported as ``null``.
``python -m infra.bench [--quick]`` prints one table and writes ``bench-results.json``.
"""
