"""What every service shares: outbox relay, inbox, unit of work, clock, working-day calendar."""
