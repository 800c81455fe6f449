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


class ShapeCache:
    def __init__(self) -> None:
        self._shapes: dict[str, WorkflowShape] = {}
        self._registered: dict[str, str] = {}  # name -> shape json written
        self._lock = threading.Lock()

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

    def put(self, shape: WorkflowShape) -> None:
        with self._lock:
            self._shapes[shape.name] = shape
