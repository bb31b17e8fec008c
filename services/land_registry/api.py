"""The officers' HTTP API on the work queue, and their page (``/officer``).

Officers (``agency_officer``) list, claim, complete and hand back tasks; operators may read.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, Field, field_validator

from contracts.agencies import LAND_REGISTRY
from services.land_registry import store
from services.land_registry.domain.queue import Colour, time_left
from services.land_registry.handlers import (
    Decision,
    DecisionRefused,
    Outcome,
    TaskConflict,
    TaskNotFound,
    WorkQueue,
)
from services.runtime.access import AUTH_RESPONSES, Access, Principal, Role
from services.runtime.working_days import WorkingDayCalendar

PAGE = Path(__file__).parent / "officer.html"
MAX_TASK_ID = 2**63 - 1
ISO_MOMENT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
TaskId = Annotated[int, PathParam(ge=1, le=MAX_TASK_ID, description="The task's number")]


class ProposedOutcome(BaseModel):
    """What the registry's rule concludes, offered to the officer."""

    outcome: Literal["done", "rejected"]
    note: str
    result: dict[str, Any]


class TaskView(BaseModel):
    """A task as the queue shows it."""

    id: int
    dossier_id: str
    procedure_code: str
    action: str
    step_index: int
    handoff_row: int
    applicant_name: str
    received_at: datetime
    due_at: datetime
    status: Literal["open", "claimed", "done"]
    assignee: str | None
    outcome: str | None
    note: str | None
    completed_at: datetime | None
    warned_at: datetime | None = Field(
        default=None, description="When the desk warned that the step entered its last working day"
    )
    working_hours_left: Decimal = Field(description="Office hours until due; negative: late by that much")
    colour: Colour = Field(description="green; yellow in the last quarter of the budget; red past due")
    proposed: ProposedOutcome | None = Field(
        default=None, description="The rule's conclusion (one task's view only, while undecided)"
    )


class TaskList(BaseModel):
    """The queue, soonest due first."""

    tasks: list[TaskView]


def _without_nul(value: Any) -> Any:
    # Postgres text and jsonb cannot hold U+0000, which JSON allows: drop it rather than fail.
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


class Completion(BaseModel):
    """An officer's decision: the outcome, a note, and (for an appraisal) the values they set."""

    outcome: Outcome
    note: str = Field(default="", max_length=2000)
    result: dict[str, Any] | None = Field(
        default=None,
        description="Values that override the rule's result (e.g. an appraisal's table_value_vnd)",
    )

    _checked = field_validator("note", "result")(_without_nul)


class DelayReport(BaseModel):
    """An officer's report that the task will be late: why, and when it should be done."""

    reason: str = Field(min_length=1, max_length=1000, examples=["Chờ kết quả đo đạc lại thửa đất"])
    expected_at: AwareDatetime = Field(description="When the step should be done (ISO 8601 with its offset)")

    _checked = field_validator("reason")(_without_nul)


class LossReport(BaseModel):
    """An officer's report that the registry lost or damaged documents of the dossier."""

    documents: list[Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]] = Field(
        min_length=1, max_length=50, examples=[["LAND_CERTIFICATE"]]
    )
    damaged: bool = Field(default=False, description="Damaged rather than lost or mislaid")
    reason: str = Field(min_length=1, max_length=1000, examples=["Bản chính bị rách khi scan"])

    _checked = field_validator("reason")(_without_nul)


CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The task is claimed by another officer or already completed"}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such task"}}


class Refused(BaseModel):
    """Why a decision was refused."""

    detail: str


OFF_CONTRACT: dict[int | str, dict[str, Any]] = {
    422: {"model": Refused, "description": "The decision's result does not match the action's contract"}
}


def _officer(request: Request) -> str:
    # Set by the access check the route depends on, which runs before the handler.
    principal: Principal = request.state.principal
    return principal.subject


def build_router(queue: WorkQueue, access: Access, calendar: WorkingDayCalendar) -> APIRouter:
    """Routes ``/tasks`` and ``/officer``."""
    router = APIRouter(tags=["work queue"])
    # The queue is the land registry's: a tax officer may neither read nor decide it.
    readers = access.requires(Role.AGENCY_OFFICER, Role.OPERATOR, of_agency=LAND_REGISTRY)
    officers = access.requires(Role.AGENCY_OFFICER, of_agency=LAND_REGISTRY)
    registry = queue.registry

    def view(task: store.Task, *, with_proposal: bool = False) -> TaskView:
        now = queue.runtime.clock.now()
        left = time_left(
            now=task.completed_at or now, received_at=task.received_at, due_at=task.due_at, calendar=calendar
        )
        proposed = None
        if with_proposal and task.status != "done":
            rule = registry.proposal(task.handover)
            proposed = ProposedOutcome(outcome=rule.outcome, note=rule.note, result=rule.result)
        return TaskView(
            id=task.id,
            dossier_id=task.dossier_id,
            procedure_code=task.handover.procedure_code,
            action=task.action,
            step_index=task.step_index,
            handoff_row=task.handoff_row,
            applicant_name=task.handover.applicant.full_name,
            received_at=task.received_at,
            due_at=task.due_at,
            status=task.status,
            assignee=task.assignee,
            outcome=task.outcome,
            note=task.note,
            completed_at=task.completed_at,
            warned_at=task.warned_at,
            working_hours_left=left.working_hours,
            colour=left.colour,
            proposed=proposed,
        )

    @router.get(
        "/tasks",
        summary="The work queue (officers, operators)",
        responses=AUTH_RESPONSES,
        dependencies=[readers],
    )
    async def list_tasks(
        status_: Annotated[Literal["open", "claimed", "done"] | None, Query(alias="status")] = None,
        assignee: Annotated[str | None, Query(max_length=200)] = None,
        due_before: Annotated[
            str | None,
            Query(
                pattern=ISO_MOMENT,
                description="Only tasks due before this moment (ISO 8601 with its offset)",
                examples=["2026-03-12T17:00:00+07:00"],
            ),
        ] = None,
    ) -> TaskList:
        try:
            before = datetime.fromisoformat(due_before) if due_before else None
        except ValueError:
            # The pattern admits a 30 February; no task is due before a day that never comes.
            return TaskList(tasks=[])
        async with queue.runtime.pool.acquire() as conn:
            found = await store.tasks(conn, status=status_)
        # Filtered here, not in SQL: the queue is short, and odd input cannot upset the database.
        return TaskList(
            tasks=[
                view(t)
                for t in found
                if (assignee is None or t.assignee == assignee) and (before is None or t.due_at < before)
            ]
        )

    @router.get(
        "/tasks/{task_id}",
        summary="One task, with the rule's proposal",
        responses={**AUTH_RESPONSES, **NOT_FOUND},
        dependencies=[readers],
    )
    async def read_task(task_id: TaskId) -> TaskView:
        async with queue.runtime.pool.acquire() as conn:
            task = await store.task(conn, task_id)
        if task is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task {task_id}")
        return view(task, with_proposal=True)

    @router.post(
        "/tasks/{task_id}/claim",
        summary="Take a task (officers)",
        responses={**AUTH_RESPONSES, **NOT_FOUND, **CONFLICT},
        dependencies=[officers],
    )
    async def claim(task_id: TaskId, request: Request) -> TaskView:
        try:
            return view(await queue.claim(task_id, _officer(request)))
        except TaskNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except TaskConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc

    @router.post(
        "/tasks/{task_id}/release",
        summary="Hand a task back to the queue (officers)",
        responses={**AUTH_RESPONSES, **NOT_FOUND, **CONFLICT},
        dependencies=[officers],
    )
    async def release(task_id: TaskId, request: Request) -> TaskView:
        try:
            return view(await queue.release(task_id, _officer(request)))
        except TaskNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except TaskConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc

    @router.post(
        "/tasks/{task_id}/complete",
        summary="Decide a task and answer the desk, once (officers)",
        description="A retry with the same `Idempotency-Key` answers the first completion again "
        "(header `Idempotent-Replayed: true`); any other second completion is 409.",
        responses={**AUTH_RESPONSES, **NOT_FOUND, **CONFLICT, **OFF_CONTRACT},
        dependencies=[officers],
    )
    async def complete(
        task_id: TaskId,
        body: Completion,
        response: Response,
        request: Request,
        idempotency_key: Annotated[
            str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[!-~]+$")
        ] = None,
    ) -> TaskView:
        decision = Decision(outcome=body.outcome, note=body.note, result=body.result)
        try:
            task, replayed = await queue.complete(
                task_id, _officer(request), decision, idempotency_key=idempotency_key
            )
        except TaskNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except TaskConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except DecisionRefused as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return view(task)

    @router.post(
        "/tasks/{task_id}/delay",
        summary="Report, before the task is due, that it will be late (officers)",
        description="The desk sends the citizen the apology with the new date at once and watches "
        "the step against `expected_at`; 409 once the task is due or decided, 422 for a date within "
        "its time.",
        responses={**AUTH_RESPONSES, **NOT_FOUND, **CONFLICT, **OFF_CONTRACT},
        dependencies=[officers],
    )
    async def report_delay(task_id: TaskId, body: DelayReport, request: Request) -> TaskView:
        try:
            task = await queue.report_delay(
                task_id, _officer(request), reason=body.reason, expected_at=body.expected_at
            )
        except TaskNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except TaskConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        except DecisionRefused as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
        return view(task)

    @router.post(
        "/tasks/{task_id}/lost-documents",
        summary="Report that the registry lost or damaged documents of the task's dossier (officers)",
        description="The desk sends the citizen the registry's apology for the fault (once per loss of"
        " the same documents); the task is unchanged. 409 for a task the desk took back.",
        responses={**AUTH_RESPONSES, **NOT_FOUND, **CONFLICT},
        dependencies=[officers],
    )
    async def report_loss(task_id: TaskId, body: LossReport) -> TaskView:
        try:
            task = await queue.report_loss(
                task_id, documents=body.documents, damaged=body.damaged, reason=body.reason
            )
        except TaskNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except TaskConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        return view(task)

    @router.get("/officer", include_in_schema=False)
    async def officer_page(request: Request) -> HTMLResponse:
        # The page holds no data: its script asks the API with the officer's own token.
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    return router
