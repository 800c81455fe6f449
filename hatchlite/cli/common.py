"""What every command shares: the `--db` and `--json` options, opening the database,
printing tables or JSON, and turning user errors into one line and exit code 2."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

import click
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hatchlite.client import Hatchet
from hatchlite.operate import open_existing
from hatchlite.types import to_timedelta

F = TypeVar("F", bound=Callable[..., Any])

# Exit codes scripts can rely on.
OK, RUN_FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


def _console(stderr: bool) -> Console:
    """Rich output that never reads markup in what it prints (run errors, payloads and
    names are user text); piped, tables are not squeezed into 80 columns."""
    console = Console(stderr=stderr, soft_wrap=True, markup=False, highlight=False)
    if not console.is_terminal:
        console = Console(stderr=stderr, soft_wrap=True, markup=False, highlight=False, width=1000)
    return console


out = _console(stderr=False)
err = _console(stderr=True)


class UserError(click.ClickException):
    """A mistake of the caller's (unknown id, bad JSON, no database): one line, exit 2."""

    exit_code = USAGE

    def show(self, file: Any = None) -> None:
        err.print(Text("error: ", style="red") + Text(self.format_message()))


def db_option(fn: F) -> F:
    return click.option(
        "--db",
        envvar="HATCHLITE_DB",
        default="hatchlite.db",
        show_default=True,
        show_envvar=True,
        help="The database file.",
    )(fn)


def json_option(fn: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table."
    )(fn)


def common(fn: F) -> F:
    """`--db` and `--json`."""
    return db_option(json_option(fn))


@contextmanager
def opened(db: str) -> Iterator[Hatchet]:
    """A client on the existing database `db` (closed after)."""
    client = open_existing(db)
    try:
        yield client
    finally:
        client.close()


def parse_json(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} is not valid JSON: {exc}") from exc


def json_object(text: str | None, what: str) -> dict[str, Any]:
    value = parse_json(text, what)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def duration(text: str, what: str) -> timedelta:
    """`30d`, `12h`, `1h30m`, `90s` (days, then Hatchet's duration units)."""
    match = re.fullmatch(r"\s*(?:(\d+)d)?\s*(.*?)\s*", text)
    try:
        if match is None or not (match[1] or match[2]):
            raise ValueError(f"invalid {what}: {text!r} (examples: 30d, 12h, 1h30m, 90s)")
        rest = to_timedelta(match[2], what) if match[2] else timedelta()
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    return timedelta(days=int(match[1] or 0)) + rest


def plain(value: Any) -> Any:
    """JSON-ready form of a model or a list of models."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=False)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    click.echo(json.dumps(plain(value), indent=2, default=str))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    grid = Table(title=title, header_style="bold", title_justify="left")
    for column in columns:
        grid.add_column(column, overflow="fold", no_wrap=column.endswith(" id"))
    for row in rows:
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    out.print(grid)


def when(value: datetime | None) -> str:
    return "" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def ms(value: int | float | None) -> str:
    if value is None:
        return ""
    return f"{value / 1000:.2f}s" if value >= 1000 else f"{int(value)}ms"


def user_errors(fn: F) -> F:
    """Errors a caller can fix become one line and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (ValueError, LookupError, FileNotFoundError, PermissionError) as exc:
            raise UserError(_one_line(exc)) from exc
        except Exception as exc:
            from hatchlite.exceptions import HatchliteError

            if isinstance(exc, HatchliteError):
                raise UserError(_one_line(exc)) from exc
            raise

    return wrapper  # type: ignore[return-value]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0] if "\n" in text and len(text) > 300 else " ".join(text.split())
