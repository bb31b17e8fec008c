"""``make chaos``: faults injected one at a time under a steady load, then an exactly-once audit.

The system runs as in production on one machine (three Kafka brokers, Postgres, the mailbox,
every service) with officers deciding the land registry's steps after a delay, some of them
late, so deadlines fire and apologies go out. Time is virtual and moves one working hour per
tick (:mod:`infra.chaos.load`), except for the notification service, which stays on the wall
clock: its retries and the mail server's outage are real minutes.

Each scenario (:mod:`infra.chaos.faults`) files land transfers at a steady rate, injects its
fault at a random moment, repairs it as a supervisor would, waits until every dossier is back
and every queue is empty, and audits the services' own tables, the mailbox and the topics
(:mod:`infra.chaos.audit`). :mod:`infra.chaos.harness` prints one table and fails on any loss
or double.
"""
