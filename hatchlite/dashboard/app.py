"""The dashboard's Starlette app: its state (one read-and-act client on the database),
its templates, its routes and its error pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from hatchlite.client import Hatchet
from hatchlite.dashboard import fmt
from hatchlite.operate import open_existing

HERE = Path(__file__).resolve().parent
NAV = [
    ("runs", "/", "Runs"),
    ("workers", "/workers", "Workers"),
    ("workflows", "/workflows", "Workflows"),
    ("schedules", "/schedules", "Crons & schedules"),
    ("events", "/events", "Events"),
    ("limits", "/rate-limits", "Rate limits & queues"),
]


@dataclass
class Dashboard:
    """What every handler shares: the client, the settings, the templates."""

    hatchet: Hatchet
    db: str
    read_only: bool
    token: str | None
    templates: Jinja2Templates = field(repr=False)

    def render(
        self, request: Request, template: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        base = str(request.scope.get("root_path", "")).rstrip("/")
        full = {
            "base": base,
            "nav": NAV,
            "db": self.db,
            "read_only": self.read_only,
            "csrf": getattr(request.state, "csrf", ""),
            **context,
        }
        return self.templates.TemplateResponse(request, template, full, status_code=status_code)

    def close(self) -> None:
        self.hatchet.close()


def dashboard_of(request: Request) -> Dashboard:
    state: Dashboard = request.app.state.dashboard
    return state


def _templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every user-supplied string is shown as text
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        duration=fmt.duration,
        when=fmt.when,
        ago=fmt.ago,
        pretty=fmt.pretty,
        status_class=fmt.status_class,
    )
    return Jinja2Templates(env=env)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if "application/json" in request.headers.get("accept", ""):
        from starlette.responses import JSONResponse

        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    try:
        dashboard = dashboard_of(request)
    except AttributeError:
        return HTMLResponse(str(exc.detail), status_code=exc.status_code)
    context = {"page": "error", "title": f"{exc.status_code}", "message": exc.detail}
    return dashboard.render(request, "error.html", context, status_code=exc.status_code)


def build_app(db: str | None, *, read_only: bool, token: str | None) -> Starlette:
    from hatchlite.dashboard import actions, pages, run_pages
    from hatchlite.dashboard.security import Guard
    from hatchlite.operate import database_path

    hatchet = open_existing(db)
    dashboard = Dashboard(hatchet, database_path(db), read_only, token or None, _templates())
    routes: list[BaseRoute] = [
        *run_pages.routes(),
        *pages.routes(),
        *actions.routes(),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, token=dashboard.token, read_only=read_only)],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.dashboard = dashboard
    return app
