"""Server-rendered pages for operators (Vietnamese labels), with a little vanilla JS for the charts.

Every page is guarded by :func:`services.console.auth.guard`; the sign-in page sets the cookie.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from services.console.api import period_of, rate_json, to_json
from services.console.auth import ConsoleAccess, safe_next
from services.console.domain import labels
from services.console.domain.on_time import Grouping
from services.console.queries import ConsoleQueries
from services.runtime.working_days import VIETNAM_TZ

WEB = Path(__file__).parent / "web"
STATIC_DIR = WEB / "static"
LIST_REFRESH_SECONDS = 5


def _local(value: datetime | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    return "" if value is None else value.astimezone(VIETNAM_TZ).strftime(fmt)


def _days(value: Decimal | None) -> str:
    if value is None:
        return ""
    return f"{value.normalize():f}".replace(".", ",")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} %".replace(".", ",")


def templates() -> Jinja2Templates:
    """The page templates with the console's filters (labels, Vietnam time, numbers)."""
    engine = Jinja2Templates(directory=WEB / "templates")
    engine.env.filters.update(
        status=labels.status,
        agency=labels.agency,
        level=labels.level,
        action=labels.action,
        lateness=labels.lateness,
        outcome=labels.outcome,
        local=_local,
        days=_days,
        percent=_percent,
    )
    engine.env.globals["refresh_seconds"] = LIST_REFRESH_SECONDS
    return engine


def pages_router(queries: ConsoleQueries, access: ConsoleAccess) -> APIRouter:
    """Sign-in, dossier list and page, on-time charts, overdue steps, apology letters."""
    router = APIRouter(include_in_schema=False)
    pages = templates()
    # The catalog's names, read now: the console starts with them or not at all.
    names = labels.catalog_names()

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return pages.TemplateResponse(request, name, context, status_code=status_code)

    @router.get("/login")
    async def login_form(request: Request, token: str = "", next: str = "/") -> Response:
        # The sign-in URL printed at start carries the token: accept it once, then drop it
        # from the address bar by redirecting.
        if token:
            return (
                _signed_in(access, next) if access.accepts_token(token) else _refused(render, request, next)
            )
        return render(request, "login.html", next=safe_next(next), error=None)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode(errors="replace"))
        token = form.get("token", [""])[0]
        target = form.get("next", ["/"])[0]
        if token and access.accepts_token(token):
            return _signed_in(access, target)
        return _refused(render, request, target)

    @router.get("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        access.sign_out(response)
        return response

    @router.get("/")
    async def dossier_list(
        request: Request,
        q: Annotated[str, Query(max_length=200)] = "",
        status: Annotated[str, Query(max_length=40)] = "",
        late: Annotated[str, Query(pattern="^(|true|false)$")] = "",
        rows: bool = False,
    ) -> HTMLResponse:
        dossiers = await queries.dossiers(q=q, status=status, late={"true": True, "false": False}.get(late))
        context: dict[str, Any] = {
            "dossiers": dossiers,
            "updated": _local(datetime.now(VIETNAM_TZ), "%H:%M:%S"),
        }
        if rows:  # the list's auto-refresh asks for the table body only
            return render(request, "_dossier_rows.html", **context)
        return render(
            request,
            "dossiers.html",
            q=q,
            status=status,
            late=late,
            statuses=sorted(set(labels.STATUSES) | set(await queries.statuses())),
            **context,
        )

    @router.get("/dossiers/{dossier_id}")
    async def dossier_page(request: Request, dossier_id: str) -> HTMLResponse:
        found = await queries.dossier(dossier_id)
        if found is None:
            return render(request, "not_found.html", status_code=404, dossier_id=dossier_id)
        spans = await queries.trace(dossier_id)
        return render(
            request,
            "dossier.html",
            dossier=found,
            spans=spans,
            chart={
                "slip": to_json(found["slip"]),
                "promised": to_json(found["first_promised_at"]),
                "appointment": to_json(found["appointment_at"]),
                "spans": to_json(spans),
                "labels": {"agencies": names.agencies, "actions": names.actions},
            },
        )

    @router.get("/on-time")
    async def on_time_page(
        request: Request,
        first_day: Annotated[date | None, Query(alias="from")] = None,
        last_day: Annotated[date | None, Query(alias="to")] = None,
    ) -> HTMLResponse:
        period = period_of(first_day, last_day)
        reports = {by: await queries.on_time(period=period, by=by) for by in Grouping}
        overall = rate_json(reports[Grouping.AGENCY].overall)
        return render(
            request,
            "on_time.html",
            first_day=first_day,
            last_day=last_day,
            overall=overall,
            reports=[
                (by, report.measure, [rate_json(r) for r in report.groups]) for by, report in reports.items()
            ],
            # Over every rating so far: the period filters on-time rates only.
            satisfaction={
                "agency": await queries.satisfaction(by="agency"),
                "procedure": await queries.satisfaction(by="procedure"),
            },
        )

    @router.get("/overdue")
    async def overdue_page(request: Request) -> HTMLResponse:
        return render(
            request,
            "overdue.html",
            overdue=await queries.overdue(),
            due_soon=await queries.overdue(open_only=True, due_soon=True),
            escalations=await queries.escalations(),
        )

    @router.get("/apologies")
    async def apologies_page(request: Request, kind: str | None = None) -> HTMLResponse:
        letters = await queries.apologies()
        counts = Counter(a["kind"] for a in letters)
        shown = [a for a in letters if kind in (None, "", a["kind"])]
        # The one-working-day rule: letters that reached the citizen with less notice than that.
        short = sum(
            1 for a in letters if a["working_days_notice"] is not None and a["working_days_notice"] < 1
        )
        return render(
            request,
            "apologies.html",
            apologies=shown,
            counts=counts,
            kind=kind or "",
            kinds=labels.APOLOGY_KINDS,
            short_notice=short,
        )

    return router


def _signed_in(access: ConsoleAccess, target: str) -> Response:
    response = RedirectResponse(safe_next(target), status_code=303)
    access.sign_in(response)
    return response


def _refused(render: Any, request: Request, target: str) -> Response:
    response: Response = render(
        request, "login.html", status_code=401, next=safe_next(target), error="Mã truy cập không đúng."
    )
    return response
