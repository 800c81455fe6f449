"""Opening a database to operate it from outside the application: what the `hatchlite`
command and the dashboard share. They read and act through the feature clients of a
`Hatchet` that starts no worker (`hatchet.runs`, `hatchet.workflows`, ...)."""

from __future__ import annotations

import os

from hatchlite.client import DEFAULT_DB, Hatchet
from hatchlite.exceptions import HatchliteError
from hatchlite.scheduler.runtime import RUNTIME


class DatabaseNotFoundError(HatchliteError, FileNotFoundError):
    """No hatchlite database at the path given (nothing was created)."""


def database_path(path: str | None = None) -> str:
    """The path given, else `HATCHLITE_DB`, else `hatchlite.db`."""
    return path or os.environ.get("HATCHLITE_DB") or DEFAULT_DB


def open_existing(path: str | None = None) -> Hatchet:
    """A client on an existing hatchlite database that runs no tasks of its own. Raises
    `DatabaseNotFoundError` when there is no file (rather than create an empty one), and
    `DatabaseError` for a file that is not a hatchlite database or that a newer
    hatchlite wrote."""
    path = database_path(path)
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        what = "an empty file" if os.path.isfile(path) else "no hatchlite database"
        raise DatabaseNotFoundError(
            f"{what} at {path} (give a hatchlite database with --db or HATCHLITE_DB)"
        )
    client = Hatchet(db=path, auto_worker=False)
    try:
        RUNTIME.call(client._engine.ensure_started)  # opens it: refuses a foreign file
    except BaseException:
        client.close()
        raise
    return client
