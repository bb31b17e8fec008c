"""Two instances of every service against one, in the same run: dossiers/s and the audit.

After the single-instance phases, a second process of every service joins its consumer groups
(``Stack.start_instance``); the load generator files through both desks in turn and the same
closed loop runs again. Then the fault harness's audit checks every dossier of that phase (each
returned once, every step, notice and e-mail once, nothing stuck) and the extra instances stop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from infra.bench.common import say
from infra.bench.load import LoadDriver, Phase
from infra.chaos.audit import Auditor
from infra.stack import Stack

AUDIT_SECONDS = 120.0
"""How long the audit may wait for the phase's last notices and read-model rows."""


@dataclass
class ScaleOut:
    """The phase with more instances, and what its audit found."""

    instances: int
    phase: Phase
    lost: int
    doubled: int
    findings: list[str] = field(default_factory=list)


async def measure(
    stack: Stack, driver: LoadDriver, *, dossiers: int, concurrency: int, instances: int = 2
) -> ScaleOut:
    """Run the closed loop with ``instances`` of every service; stop the extra ones after."""
    names = list(stack.ports)
    say(f"scale-out: {instances} instances of every service, {dossiers} dossiers, {concurrency} in flight")
    extra = [f"{name}#{n}" for n in range(2, instances + 1) for name in names]
    for key in extra:
        stack.restart(key)
    try:
        for key in extra:
            await asyncio.to_thread(stack.wait_healthy, key)
        auditor = Auditor(stack, driver.pool, officers=False)  # the bench's agencies decide at once
        await auditor.start()
        driver.desks = [s.url for s in stack.running().values() if s.service == "intake"]
        phase = await driver.closed_loop(f"{instances} instances", dossiers=dossiers, concurrency=concurrency)
        audit = await auditor.settled(phase.dossier_ids, timeout=AUDIT_SECONDS)
    finally:
        driver.desks = [stack.services["intake"].url]
        for key in extra:
            await asyncio.to_thread(stack.stop_service, key)
            del stack.services[key]  # the stack as it was: later phases count one of each
    say(
        f"scale-out: {phase.dossiers_per_s:.1f} dossiers/s returned with {instances} instances;"
        f" audit: {len(audit.lost)} lost, {len(audit.doubled)} doubled, {len(audit.stuck)} stuck"
    )
    return ScaleOut(
        instances=instances,
        phase=phase,
        lost=len(audit.lost),
        doubled=len(audit.doubled),
        findings=audit.details(limit=20),
    )
