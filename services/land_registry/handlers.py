"""The land registry takes dossiers handed to it, does the step, and reports back.

A step the handoff marks ``manual`` is an officer's decision: it waits in the work queue
(:class:`WorkQueue`) until an officer completes it. Either way the answer is written by the
same :meth:`Registry.finish_step`, so the desk cannot tell a rule's answer from an officer's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from contracts import topics
from contracts.agencies import LAND_REGISTRY
from contracts.envelope import CloudEvent
from contracts.events import (
    DocumentLossReported,
    DossierHandedOver,
    HandoffWithdrawn,
    StepCompleted,
    StepDelayReported,
    StepDueSoon,
)
from contracts.results import ResultRejected, parse_result
from services.land_registry import store
from services.land_registry.decisions import Decisions
from services.land_registry.domain.registry import LandPriceTable, StepOutcome, UnknownAction, perform
from services.runtime.consumer import EventRejected
from services.runtime.database import Connection
from services.runtime.service import ServiceRuntime
from services.runtime.unit_of_work import UnitOfWork

ACTIONS = frozenset({"appraise", "issue_certificate", "register_mortgage"})
"""What the registry does; a handoff for anything else is rejected (dead letter)."""

Outcome = Literal["done", "rejected", "needs_supplement"]


class Registry:
    """The registry's use cases: perform the step a handoff asks for, or queue it for an officer."""

    def __init__(
        self, *, runtime: ServiceRuntime, prices: LandPriceTable, decisions: Decisions | None = None
    ) -> None:
        self.runtime = runtime
        self.prices = prices
        self.decisions = decisions or Decisions(by_officers=False)

    def register(self) -> None:
        """Read only what is addressed to the land registry; answer on its own topic."""
        self.runtime.publishes(
            topics.agency_events(LAND_REGISTRY), StepCompleted, StepDelayReported, DocumentLossReported
        )
        self.runtime.subscribe(
            topics.handoffs(LAND_REGISTRY),
            consumer="land_registry.handoffs",
            accepts=(DossierHandedOver, HandoffWithdrawn, StepDueSoon),
            handler=self.perform_step,
        )

    async def perform_step(self, uow: UnitOfWork, event: CloudEvent) -> None:
        """Appraise, or issue the certificate, and hand the dossier back to the desk.

        A manual step (and officers deciding) goes to the work queue instead. A handoff the
        desk takes back (withdrawn or refused dossier) closes its task, so no officer decides it;
        the desk's warning that a step entered its last working day marks its task.
        """
        handover = event.data
        if isinstance(handover, StepDueSoon):
            await store.warn_task(uow.conn, handover.dossier_id, handover.handoff_row, at=handover.warned_at)
            return
        if isinstance(handover, HandoffWithdrawn):
            await store.withdraw_task(
                uow.conn, handover.dossier_id, handover.handoff_row, note=handover.reason, at=uow.now
            )
            return
        assert isinstance(handover, DossierHandedOver)
        if handover.to_agency != LAND_REGISTRY:
            raise EventRejected(f"handoff addressed to {handover.to_agency}, not {LAND_REGISTRY}")
        if handover.action not in ACTIONS:
            raise EventRejected(f"the land registry does not {handover.action!r}")
        if handover.mode == "manual" and self.decisions.by_officers:
            await store.open_task(uow.conn, handover, received_at=uow.now)
            return
        outcome = await self.rule(uow.conn, handover)
        await self.finish_step(
            uow,
            handover,
            outcome=outcome.outcome,
            note=outcome.note,
            result=outcome.result,
            received_at=uow.now,
        )

    async def rule(self, conn: Connection, handover: DossierHandedOver) -> StepOutcome:
        """What the registry's rule concludes (a certificate serial is drawn for a certificate)."""
        serial = await store.next_certificate_serial(conn) if handover.action == "issue_certificate" else ""
        try:
            return perform(handover, prices=self.prices, certificate_serial=serial)
        except (UnknownAction, ResultRejected) as exc:  # a malformed earlier result is dead-lettered
            raise EventRejected(str(exc)) from exc

    def proposal(self, handover: DossierHandedOver) -> StepOutcome:
        """The rule's conclusion shown to an officer (no serial drawn: that happens on completion)."""
        return perform(handover, prices=self.prices, certificate_serial="")

    async def finish_step(
        self,
        uow: UnitOfWork,
        handover: DossierHandedOver,
        *,
        outcome: Outcome,
        note: str,
        result: dict[str, Any],
        received_at: datetime,
    ) -> None:
        """Record the step and answer the desk (StepCompleted through the outbox)."""
        await store.record_step(
            uow.conn,
            dossier_id=handover.dossier_id,
            step_index=handover.step_index,
            handoff_row=handover.handoff_row,
            action=handover.action,
            outcome=outcome,
            note=note,
            result=result,
            received_at=received_at,
            completed_at=uow.now,
        )
        await uow.publish(
            StepCompleted.answering(
                handover,
                outcome=outcome,
                received_at=received_at,
                completed_at=uow.now,
                note=note,
                result=result,
            ),
            topic=topics.agency_events(LAND_REGISTRY),
        )


class TaskNotFound(LookupError):
    """No task with that id."""


class TaskConflict(RuntimeError):
    """The task is someone else's, or already decided (HTTP 409)."""


class DecisionRefused(ValueError):
    """An officer's decision whose result does not match the action's contract."""


@dataclass(frozen=True)
class Decision:
    """An officer's decision on a task."""

    outcome: Outcome
    note: str = ""
    result: dict[str, Any] | None = None
    """Values the officer gives (e.g. an appraisal's); they override the rule's."""


class WorkQueue:
    """The officers' use cases on the queue: claim, hand back, complete."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.runtime = registry.runtime

    async def claim(self, task_id: int, officer: str) -> store.Task:
        """Take the task; 409 if another officer has it or it is decided."""
        async with self.runtime.unit_of_work() as uow:
            task = await self._locked(uow.conn, task_id)
            if task.status == "done" or (task.status == "claimed" and task.assignee != officer):
                raise TaskConflict(f"task {task_id} is {task.status} by {task.assignee}")
            await store.assign(uow.conn, task_id, assignee=officer)
            return await self._reread(uow.conn, task_id)

    async def release(self, task_id: int, officer: str) -> store.Task:
        """Hand the task back to the queue; only its holder can (or anyone, if it is open)."""
        async with self.runtime.unit_of_work() as uow:
            task = await self._locked(uow.conn, task_id)
            if task.status == "done" or (task.status == "claimed" and task.assignee != officer):
                raise TaskConflict(f"task {task_id} is {task.status} by {task.assignee}")
            await store.assign(uow.conn, task_id, assignee=None)
            return await self._reread(uow.conn, task_id)

    async def complete(
        self, task_id: int, officer: str, decision: Decision, *, idempotency_key: str | None = None
    ) -> tuple[store.Task, bool]:
        """Decide the task and answer the desk, once; (the task, whether this was a replay).

        The row lock makes two concurrent completions take turns: the second sees it done and
        gets 409, or, bearing the first one's Idempotency-Key, the first answer again.
        """
        async with self.runtime.unit_of_work() as uow:
            task = await self._locked(uow.conn, task_id)
            if task.status == "done":
                if idempotency_key is not None and idempotency_key == task.completion_key:
                    return task, True
                if task.outcome == "withdrawn":
                    raise TaskConflict(f"task {task_id} was taken back by the desk: {task.note}")
                raise TaskConflict(f"task {task_id} was already completed by {task.assignee}")
            if task.status == "claimed" and task.assignee != officer:
                raise TaskConflict(f"task {task_id} is claimed by {task.assignee}")
            handover = task.handover
            if decision.outcome == "done":
                rule = await self.registry.rule(uow.conn, handover)
                note = decision.note or rule.note
                result = {**rule.result, **(decision.result or {})}
            else:
                note, result = decision.note, dict(decision.result or {})
            try:
                # What the officer decided must still be the action's contract for the desk.
                result = parse_result(handover.action, result, decision.outcome).model_dump(mode="json")
            except ResultRejected as exc:
                raise DecisionRefused(str(exc)) from exc
            await self.registry.finish_step(
                uow,
                handover,
                outcome=decision.outcome,
                note=note,
                result=result,
                received_at=task.received_at,
            )
            await store.close_task(
                uow.conn,
                task_id,
                assignee=officer,
                outcome=decision.outcome,
                note=note,
                completion_key=idempotency_key,
                completed_at=uow.now,
            )
            return await self._reread(uow.conn, task_id), False

    async def report_delay(
        self, task_id: int, officer: str, *, reason: str, expected_at: datetime
    ) -> store.Task:
        """Tell the desk, before the task is due, that it will be late and when it should be done.

        The desk apologises to the citizen at once with the new date; the task stays open.
        """
        async with self.runtime.unit_of_work() as uow:
            task = await self._locked(uow.conn, task_id)
            if task.status == "done" or (task.status == "claimed" and task.assignee != officer):
                raise TaskConflict(f"task {task_id} is {task.status} by {task.assignee}")
            if uow.now >= task.due_at:
                raise TaskConflict(f"task {task_id} was due at {task.due_at.isoformat()}: too late to report")
            if expected_at <= task.due_at:
                raise DecisionRefused(f"{expected_at.isoformat()} is within the task's time: no delay")
            handover = task.handover
            await uow.publish(
                StepDelayReported(
                    dossier_id=task.dossier_id,
                    step_index=task.step_index,
                    agency=LAND_REGISTRY,
                    action=task.action,
                    handoff_row=task.handoff_row,
                    reason=reason,
                    expected_at=expected_at,
                    reported_at=uow.now,
                ),
                topic=topics.agency_events(handover.to_agency),
            )
            return task

    async def report_loss(
        self, task_id: int, *, documents: list[str], damaged: bool, reason: str
    ) -> store.Task:
        """Tell the desk the registry lost or damaged documents of the task's dossier.

        The desk sends the citizen the registry's apology for the fault, once per loss; the task
        itself is unchanged (any officer may report, whoever holds it, even after it was decided).
        """
        async with self.runtime.unit_of_work() as uow:
            task = await self._locked(uow.conn, task_id)
            if task.outcome == "withdrawn":
                raise TaskConflict(f"task {task_id} was taken back by the desk: {task.note}")
            await uow.publish(
                DocumentLossReported(
                    dossier_id=task.dossier_id,
                    agency=LAND_REGISTRY,
                    documents=documents,
                    damaged=damaged,
                    reason=reason,
                    reported_at=uow.now,
                ),
                topic=topics.agency_events(LAND_REGISTRY),
            )
            return task

    async def _locked(self, conn: Connection, task_id: int) -> store.Task:
        task = await store.task(conn, task_id, for_update=True)
        if task is None:
            raise TaskNotFound(f"no task {task_id}")
        return task

    async def _reread(self, conn: Connection, task_id: int) -> store.Task:
        task = await store.task(conn, task_id)
        assert task is not None
        return task
