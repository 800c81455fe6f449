"""Workflow shapes known to this store: registered by the process, or read back from
the `workflows` table (a process may act on runs of workflows it does not define)."""

from __future__ import annotations

import sqlite3
import threading
import uuid

from hatchlite.exceptions import HatchliteError
from hatchlite.store.records import WorkflowShape, shape_from_json, shape_to_json


class UnknownWorkflowError(HatchliteError, LookupError):
    """No workflow of that name was ever registered on this database."""


def definitions_version(conn: sqlite3.Connection) -> str | None:
    """A value every registration and delete of a workflow (by any process) changes."""
    row = conn.execute(
        "SELECT value FROM hatchlite_meta WHERE key = 'definitions_version'"
    ).fetchone()
    return None if row is None else str(row[0])


def bump_definitions_txn(conn: sqlite3.Connection) -> None:
    """Tell every process's caches of definitions (shapes, event listeners) to read
    them again."""
    conn.execute(
        """INSERT INTO hatchlite_meta (key, value) VALUES ('definitions_version', '1')
           ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"""
    )


class ShapeCache:
    """The shapes read, kept until any process registers or deletes a workflow: the
    store calls `sync_txn` at the start of each batch of work, and a changed
    definitions version empties the cache (runs are then created, and settled, with the
    definition registered last, whichever process registered it)."""

    def __init__(self) -> None:
        self._shapes: dict[str, WorkflowShape] = {}
        self._registered: dict[str, str] = {}  # name -> shape json written
        self._version: str | None = None
        self._lock = threading.Lock()

    def sync_txn(self, conn: sqlite3.Connection) -> None:
        current = definitions_version(conn)
        if current != self._version:
            with self._lock:
                self._shapes.clear()
                self._version = current

    def get(self, conn: sqlite3.Connection, name: str) -> WorkflowShape:
        shape = self._shapes.get(name)
        if shape is not None:
            return shape
        row = conn.execute("SELECT shape FROM workflows WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownWorkflowError(f"workflow {name!r} is not registered on this database")
        shape = shape_from_json(row[0])
        with self._lock:
            self._shapes.setdefault(name, shape)
        return shape

    def needs_register(self, shape: WorkflowShape) -> str | None:
        """The JSON to write if `shape` differs from what this process last wrote."""
        text = shape_to_json(shape)
        return None if self._registered.get(shape.name) == text else text

    def register_txn(
        self,
        conn: sqlite3.Connection,
        shape: WorkflowShape,
        text: str,
        description: str | None,
        version: str | None,
        now: float,
    ) -> str:
        """Upsert the workflow row; returns the workflow id."""
        conn.execute(
            """INSERT INTO workflows (name, id, description, version, shape, created_at,
                   updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (name) DO UPDATE SET shape = excluded.shape,
                   description = excluded.description, version = excluded.version,
                   updated_at = excluded.updated_at,
                   -- a deleted workflow registered again comes back under a new id
                   id = CASE WHEN deleted_at IS NULL THEN id ELSE excluded.id END,
                   created_at = CASE WHEN deleted_at IS NULL THEN created_at
                                     ELSE excluded.created_at END,
                   deleted_at = NULL""",
            (shape.name, str(uuid.uuid4()), description, version, text, now, now),
        )
        with self._lock:
            self._shapes[shape.name] = shape
            self._registered[shape.name] = text
        row = conn.execute("SELECT id FROM workflows WHERE name = ?", (shape.name,)).fetchone()
        return str(row[0])

    def forget_registration(self, name: str) -> None:
        """Write workflow `name`'s row again at its next registration (it was deleted)."""
        with self._lock:
            self._registered.pop(name, None)
