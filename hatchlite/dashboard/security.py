"""The dashboard's request guard: the access token, cross-site request forgery, and the
read-only switch.

- Token: with one, every request carries it: `?token=` (once: it sets a cookie and
  redirects to the same URL without it), `Authorization: Bearer <token>`, or the
  cookie. Anything else gets 401.
- Cross-site requests: every POST must come from a page of the dashboard itself: its
  `Origin` (or else `Referer`) names this host, and its form carries the per-session
  token of the `hatchlite_csrf` cookie (double submit; `check_form`). Else 403.
- Read-only: every POST gets 403.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp

TOKEN_COOKIE = "hatchlite_token"
CSRF_COOKIE = "hatchlite_csrf"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _cookie_path(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/") + "/"


def _same(a: str | None, b: str) -> bool:
    return a is not None and secrets.compare_digest(a.encode(), b.encode())


def same_origin(request: Request) -> bool:
    """The request's `Origin`, else its `Referer`, names this host (a request with
    neither, as scripts send, passes here and still needs the form token)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    if source == "null":
        return False
    return urlsplit(source).netloc.lower() == request.url.netloc.lower()


class Guard(BaseHTTPMiddleware):
    def __init__(self, app: ASGIApp, token: str | None, read_only: bool) -> None:
        super().__init__(app)
        self.token = token
        self.read_only = read_only

    def _token_of(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.cookies.get(TOKEN_COOKIE)

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.token is not None:
            given = request.query_params.get("token")
            if given is not None and _same(given, self.token):
                return self._remember_token(request)
            if not _same(self._token_of(request), self.token):
                return PlainTextResponse(
                    "401 Unauthorized: this dashboard needs its token "
                    "(open the URL `hatchlite dashboard` printed, with ?token=...)",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        if request.method not in SAFE_METHODS:
            if self.read_only:
                return PlainTextResponse(
                    "403 Forbidden: this dashboard is read-only", status_code=403
                )
            if not same_origin(request):
                return PlainTextResponse(
                    "403 Forbidden: cross-site request refused", status_code=403
                )
        csrf = request.cookies.get(CSRF_COOKIE)
        fresh = not csrf
        request.state.csrf = csrf or secrets.token_urlsafe(24)
        response = await call_next(request)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE,
                request.state.csrf,
                httponly=True,
                samesite="strict",
                path=_cookie_path(request),
            )
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    def _remember_token(self, request: Request) -> Response:
        """`?token=` once: set the cookie, go to the same URL without the token."""
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(query)}" if query else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            TOKEN_COOKIE,
            self.token or "",
            httponly=True,
            samesite="strict",
            path=_cookie_path(request),
        )
        return response


def check_form(request: Request, form: FormData) -> None:
    """403 unless the form carries this session's CSRF token (the cookie's)."""
    cookie = request.cookies.get(CSRF_COOKIE)
    field = form.get(CSRF_FIELD)
    if not cookie or not isinstance(field, str) or not _same(field, cookie):
        raise HTTPException(403, "cross-site request refused: missing or wrong form token")
