"""Who decides the registry's steps: ``AGENCY_DECISIONS``, ``OFFICER_BOT``, ``OFFICER_BOT_DELAY_HOURS``.

By default a step the handoff marks ``manual`` waits in the officers' queue. ``automatic`` has
every step decided by its rule at once (the tests, the benchmark and replays rely on an agency
answering at once). The officer bot stands in for officers on a demo system (``make run``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from services.runtime.settings import ConfigurationError

DEFAULT_BOT_DELAY_HOURS = (Decimal(4), Decimal(32))
"""Between half a working day and four: some appraisals (3 days) finish late, as in life."""


@dataclass(frozen=True)
class Decisions:
    """How the land registry decides the steps handed to it."""

    by_officers: bool = True
    """False (``AGENCY_DECISIONS=automatic``): every step is decided by its rule at once."""
    bot: bool = False
    """``OFFICER_BOT=on``: a bot claims and completes open tasks after a random delay."""
    bot_delay_hours: tuple[Decimal, Decimal] = DEFAULT_BOT_DELAY_HOURS
    """The bot's delay, uniform in [lo, hi] working hours after the task came in."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Decisions:
        """Read the three variables; a bad value stops the service with the reason."""
        mode = environ.get("AGENCY_DECISIONS", "catalog")
        if mode not in ("catalog", "automatic"):
            raise ConfigurationError(f"AGENCY_DECISIONS={mode!r}: expected 'catalog' or 'automatic'")
        bot = environ.get("OFFICER_BOT", "off")
        if bot not in ("on", "off"):
            raise ConfigurationError(f"OFFICER_BOT={bot!r}: expected 'on' or 'off'")
        delay = DEFAULT_BOT_DELAY_HOURS
        if raw := environ.get("OFFICER_BOT_DELAY_HOURS"):
            try:
                lo, hi = (Decimal(part.strip()) for part in raw.split(","))
            except (ValueError, InvalidOperation) as exc:
                raise ConfigurationError(f"OFFICER_BOT_DELAY_HOURS={raw!r}: expected 'lo,hi' hours") from exc
            if not (lo.is_finite() and hi.is_finite() and 0 <= lo <= hi):
                raise ConfigurationError(f"OFFICER_BOT_DELAY_HOURS={raw!r}: need 0 <= lo <= hi")
            delay = (lo, hi)
        return cls(by_officers=mode == "catalog", bot=bot == "on", bot_delay_hours=delay)
