"""The local web dashboard: runs, their DAGs, workers, workflows, crons and schedules,
events and rate limits of one hatchlite database, read and acted on through the same
Python APIs a user calls (`hatchet.runs`, `hatchet.workflows`, ...).

`create_app(db)` returns a Starlette (ASGI) app to serve or to mount in your own web
app; `serve(db)` runs it with uvicorn (what `hatchlite dashboard` calls). Both need the
optional extra: `pip install 'hatchlite[dashboard]'`.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["INSTALL_HINT", "create_app", "serve"]

INSTALL_HINT = "the dashboard needs its extra: pip install 'hatchlite[dashboard]'"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _missing(error: ImportError) -> ImportError:
    missing = ImportError(f"{INSTALL_HINT} ({error})")
    missing.name = error.name
    return missing


def create_app(
    db: str | None = None, *, read_only: bool = False, token: str | None = None
) -> Starlette:
    """The dashboard of the hatchlite database at `db` (default: `HATCHLITE_DB`, else
    `hatchlite.db`) as an ASGI app, to serve or to mount (`Mount("/hatchlite", app)`).

    `read_only` refuses every action (403); with a `token`, every request must carry it
    (`?token=` once, which sets a cookie, or `Authorization: Bearer <token>`).
    Raises `DatabaseNotFoundError` when there is no database file and `DatabaseError`
    for a file that is not a hatchlite database; `ImportError` without the extra."""
    try:
        from hatchlite.dashboard.app import build_app
    except ImportError as error:  # starlette, jinja2 or python-multipart missing
        raise _missing(error) from error
    return build_app(db, read_only=read_only, token=token)


def serve(
    db: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8800,
    read_only: bool = False,
    token: str | None = None,
) -> None:
    """Serve the dashboard with uvicorn until interrupted. Binding anywhere but the
    loopback interface requires a token: without one, one is generated; the URL to open
    (with the token) is printed."""
    try:
        import uvicorn
    except ImportError as error:
        raise _missing(error) from error
    if token is None and host not in LOCAL_HOSTS:
        token = secrets.token_urlsafe(24)
    app = create_app(db, read_only=read_only, token=token)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    if token is not None:
        url += f"?token={token}"
    print(f"hatchlite dashboard: {url}" + (" (read-only)" if read_only else ""), flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        app.state.dashboard.close()
