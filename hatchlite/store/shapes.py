"""Workflow shapes known to this store: registered by the process, or read back from
the `workflows` table (a process may act on runs of workflows it does not define)."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict

from hatchlite.exceptions import HatchliteError
from hatchlite.ids import new_id
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


# Runs whose shape hash is remembered (an LRU): most lookups are of recent runs.
_RUN_HASHES = 65536


def shape_hash(text: str) -> str:
    """The content hash that names a shape version."""
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class ShapeCache:
    """Workflow shapes. The current one of each workflow (what new runs get) is kept
    until any process registers or deletes a workflow: the store calls `sync_txn` at the
    start of each batch of work, and a changed definitions version empties that cache.
    Each run keeps the shape it was created with (`for_run`), by content hash: a shape
    version never changes, so those stay cached."""

    def __init__(self) -> None:
        self._shapes: dict[str, WorkflowShape] = {}
        self._hashes: dict[str, str | None] = {}  # name -> hash of the current shape
        self._by_hash: dict[str, WorkflowShape] = {}
        self._own: dict[int, tuple[WorkflowShape, str]] = {}  # id(shape) -> its hash
        self._run_hashes: OrderedDict[str, str | None] = OrderedDict()
        self._registered: dict[str, str] = {}  # name -> shape json written
        self._version: str | None = None
        self._lock = threading.Lock()

    def sync_txn(self, conn: sqlite3.Connection) -> None:
        current = definitions_version(conn)
        if current != self._version:
            with self._lock:
                self._shapes.clear()
                self._hashes.clear()
                self._version = current

    def current_hash(self, conn: sqlite3.Connection, name: str) -> str | None:
        """The hash of workflow `name`'s current shape (None: registered before shapes
        were versioned, until it is registered again)."""
        if name in self._hashes:
            return self._hashes[name]
        row = conn.execute("SELECT shape_hash FROM workflows WHERE name = ?", (name,)).fetchone()
        found = None if row is None else row[0]
        with self._lock:
            self._hashes[name] = found
        return found

    def own_txn(self, conn: sqlite3.Connection, shape: WorkflowShape) -> str:
        """The hash of a shape this process defines (stored as a version if new)."""
        known = self._own.get(id(shape))
        if known is not None and known[0] is shape:
            return known[1]
        text = shape_to_json(shape)
        hash_ = shape_hash(text)
        if hash_ not in self._by_hash:
            conn.execute(
                """INSERT OR IGNORE INTO workflow_shapes (hash, workflow_name, shape,
                       created_at) VALUES (?, ?, ?, strftime('%s', 'now'))""",
                (hash_, shape.name, text),
            )
        with self._lock:
            self._by_hash[hash_] = shape
            self._own[id(shape)] = (shape, hash_)
        return hash_

    def note_run(self, run_id: str, hash_: str | None) -> None:
        """Run `run_id` was created with shape `hash_`."""
        with self._lock:
            self._run_hashes[run_id] = hash_
            if len(self._run_hashes) > _RUN_HASHES:
                self._run_hashes.popitem(last=False)

    def for_run(self, conn: sqlite3.Connection, run_id: str, name: str) -> WorkflowShape:
        """The shape run `run_id` of workflow `name` was created with."""
        hash_ = self._run_hashes.get(run_id, "?")
        if hash_ == "?":
            row = conn.execute(
                "SELECT shape_hash FROM workflow_runs WHERE id = ?", (run_id,)
            ).fetchone()
            hash_ = None if row is None else row[0]
            self.note_run(run_id, hash_)
        if hash_ is None or hash_ == self.current_hash(conn, name):
            return self.get(conn, name)
        shape = self._by_hash.get(hash_)
        if shape is None:
            row = conn.execute(
                "SELECT shape FROM workflow_shapes WHERE hash = ?", (hash_,)
            ).fetchone()
            if row is None:  # not stored (cannot happen short of a hand edit)
                return self.get(conn, name)
            shape = shape_from_json(row[0])
            with self._lock:
                self._by_hash[hash_] = shape
        return shape

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
        hash_ = shape_hash(text)
        conn.execute(
            """INSERT OR IGNORE INTO workflow_shapes (hash, workflow_name, shape, created_at)
               VALUES (?, ?, ?, ?)""",
            (hash_, shape.name, text, now),
        )
        conn.execute(
            """INSERT INTO workflows (name, id, description, version, shape, shape_hash,
                   created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (name) DO UPDATE SET shape = excluded.shape,
                   shape_hash = excluded.shape_hash,
                   description = excluded.description, version = excluded.version,
                   updated_at = excluded.updated_at,
                   -- a deleted workflow registered again comes back under a new id
                   id = CASE WHEN deleted_at IS NULL THEN id ELSE excluded.id END,
                   created_at = CASE WHEN deleted_at IS NULL THEN created_at
                                     ELSE excluded.created_at END,
                   deleted_at = NULL""",
            (shape.name, new_id(), description, version, text, hash_, now, now),
        )
        with self._lock:
            self._shapes[shape.name] = shape
            self._hashes[shape.name] = hash_
            self._by_hash[hash_] = shape
            self._registered[shape.name] = text
        row = conn.execute("SELECT id FROM workflows WHERE name = ?", (shape.name,)).fetchone()
        return str(row[0])

    def forget_registration(self, name: str) -> None:
        """Write workflow `name`'s row again at its next registration (it was deleted)."""
        with self._lock:
            self._registered.pop(name, None)
