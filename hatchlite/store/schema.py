"""The schema, as an ordered list of migrations keyed by `PRAGMA user_version`.

Times are epoch seconds (REAL, UTC); inputs, outputs and metadata are JSON text.
Internal task states beyond Hatchet's five: PENDING (waiting for its parents, or
for its conditions; not shown by the runs API) and WAITING (a durable task evicted from
its worker while it waits: shown as RUNNING with `is_evicted`; a durable task waiting in
a worker's memory stays RUNNING, its wait an open `durable_events` entry).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

APP_ID = "hatchlite"

# A step is an SQL statement, or a function of the connection for what SQL cannot do.
Step = str | Callable[[sqlite3.Connection], None]

_V1 = [
    """CREATE TABLE hatchlite_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    f"""INSERT INTO hatchlite_meta (key, value) VALUES ('app', '{APP_ID}')""",
    """CREATE TABLE workflows (
        name TEXT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        description TEXT,
        version TEXT,
        shape TEXT NOT NULL,
        is_paused INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE workflow_runs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        workflow_name TEXT NOT NULL,
        status TEXT NOT NULL,
        is_dag INTEGER NOT NULL,
        input TEXT NOT NULL,
        additional_metadata TEXT NOT NULL,
        priority INTEGER NOT NULL,
        parent_workflow_run_id TEXT,
        parent_task_run_id TEXT,
        child_index INTEGER,
        child_key TEXT,
        trigger_key TEXT,
        error TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL
    )""",
    # Child identity: (parent task, child_key or spawn index) names one child run.
    """CREATE UNIQUE INDEX workflow_runs_child ON workflow_runs (
        parent_task_run_id, coalesce(child_key, 'index:' || child_index)
    ) WHERE parent_task_run_id IS NOT NULL""",
    """CREATE INDEX workflow_runs_active ON workflow_runs (status)
        WHERE status IN ('QUEUED', 'RUNNING')""",
    """CREATE INDEX workflow_runs_created ON workflow_runs (created_at)""",
    """CREATE TABLE task_runs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        workflow_run_id TEXT NOT NULL,
        workflow_name TEXT NOT NULL,
        task_name TEXT NOT NULL,
        status TEXT NOT NULL,
        parents_left INTEGER NOT NULL DEFAULT 0,
        retry_count INTEGER NOT NULL DEFAULT 0,
        priority INTEGER NOT NULL,
        available_at REAL NOT NULL,
        schedule_deadline REAL,
        timeout_at REAL,
        worker_id TEXT,
        output TEXT,
        error TEXT,
        created_at REAL NOT NULL,
        queued_at REAL,
        started_at REAL,
        finished_at REAL
    )""",
    """CREATE UNIQUE INDEX task_runs_by_run ON task_runs (workflow_run_id, task_name)""",
    """CREATE INDEX task_runs_queue ON task_runs (workflow_name, priority DESC, seq)
        WHERE status = 'QUEUED'""",
    """CREATE INDEX task_runs_available ON task_runs (available_at) WHERE status = 'QUEUED'""",
    """CREATE INDEX task_runs_deadline ON task_runs (schedule_deadline)
        WHERE status = 'QUEUED'""",
    """CREATE INDEX task_runs_worker ON task_runs (worker_id) WHERE status = 'RUNNING'""",
    """CREATE TABLE task_attempts (
        id INTEGER PRIMARY KEY,
        task_run_id TEXT NOT NULL,
        retry_count INTEGER NOT NULL,
        status TEXT NOT NULL,
        worker_id TEXT,
        error TEXT,
        started_at REAL,
        finished_at REAL NOT NULL
    )""",
    """CREATE INDEX task_attempts_task ON task_attempts (task_run_id, retry_count)""",
    """CREATE TABLE task_logs (
        id INTEGER PRIMARY KEY,
        task_run_id TEXT NOT NULL,
        retry_count INTEGER NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    """CREATE INDEX task_logs_task ON task_logs (task_run_id, id)""",
    """CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        pid INTEGER NOT NULL,
        hostname TEXT NOT NULL,
        status TEXT NOT NULL,
        slots INTEGER NOT NULL,
        durable_slots INTEGER NOT NULL,
        actions TEXT NOT NULL,
        labels TEXT NOT NULL,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        pid_start TEXT
    )""",
]

# Durable execution: each durable call of a task run is an entry (node 1, 2, ...) with
# its result once known; a wait's conditions are rows matched by timers and events.
_V2 = [
    """CREATE TABLE durable_events (
        task_run_id TEXT NOT NULL,
        node_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT,
        status TEXT NOT NULL,
        result TEXT,
        created_at REAL NOT NULL,
        satisfied_at REAL,
        PRIMARY KEY (task_run_id, node_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE durable_conditions (
        task_run_id TEXT NOT NULL,
        node_id INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        grp INTEGER NOT NULL,
        kind TEXT NOT NULL,
        readable_key TEXT NOT NULL,
        status TEXT NOT NULL,
        event_key TEXT,
        expression TEXT,
        scope TEXT,
        wake_at REAL,
        payload TEXT,
        PRIMARY KEY (task_run_id, node_id, idx)
    ) WITHOUT ROWID""",
    """CREATE INDEX durable_conditions_timer ON durable_conditions (wake_at)
        WHERE status = 'OPEN' AND kind = 'SLEEP'""",
    """CREATE INDEX durable_conditions_event ON durable_conditions (event_key)
        WHERE status = 'OPEN' AND kind = 'EVENT'""",
    """CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        key TEXT NOT NULL,
        payload TEXT NOT NULL,
        additional_metadata TEXT NOT NULL,
        scope TEXT,
        priority INTEGER,
        created_at REAL NOT NULL
    )""",
    """CREATE INDEX events_key ON events (key, created_at)""",
]

# Task events that are not an attempt's start or end (those are read from task_runs and
# task_attempts): a run queued with no worker to serve it, and later skips, evictions,
# concurrency decisions. `lost_count`: how many times a worker died while running the
# task run (bounded: see store/workers.py).
_V3 = [
    """CREATE TABLE task_events (
        id INTEGER PRIMARY KEY,
        task_run_id TEXT NOT NULL,
        workflow_run_id TEXT NOT NULL,
        retry_count INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        message TEXT,
        worker_id TEXT,
        created_at REAL NOT NULL
    )""",
    """CREATE INDEX task_events_run ON task_events (workflow_run_id, id)""",
    """CREATE INDEX task_events_task ON task_events (task_run_id, id)""",
    """ALTER TABLE task_runs ADD COLUMN lost_count INTEGER NOT NULL DEFAULT 0""",
]

# Reading runs back (the runs, logs, workers, workflows and metrics APIs), pausing,
# streams and retention.
_V4 = [
    """ALTER TABLE workflow_runs ADD COLUMN triggering_event_id TEXT""",
    """CREATE INDEX workflow_runs_by_workflow ON workflow_runs (workflow_name, created_at)""",
    """CREATE INDEX workflow_runs_finished ON workflow_runs (finished_at)
        WHERE finished_at IS NOT NULL""",
    """CREATE INDEX workflow_runs_event ON workflow_runs (triggering_event_id)
        WHERE triggering_event_id IS NOT NULL""",
    """CREATE INDEX workflow_runs_parent_run ON workflow_runs (parent_workflow_run_id)
        WHERE parent_workflow_run_id IS NOT NULL""",
    """CREATE INDEX task_runs_created ON task_runs (created_at)""",
    """ALTER TABLE task_attempts ADD COLUMN queued_at REAL""",
    # Deaths of its worker while the task run was the only one running there: those are
    # surely its own doing (see store/workers.py MAX_LOST).
    """ALTER TABLE task_runs ADD COLUMN lost_alone INTEGER NOT NULL DEFAULT 0""",
    """ALTER TABLE workers ADD COLUMN is_paused INTEGER NOT NULL DEFAULT 0""",
    """ALTER TABLE workflows ADD COLUMN paused_at REAL""",
    """ALTER TABLE workflows ADD COLUMN pause_queue_ttl REAL""",
    """ALTER TABLE workflows ADD COLUMN paused_cron_behavior TEXT""",
    """ALTER TABLE workflows ADD COLUMN paused_scheduled_behavior TEXT""",
    # Deleted through the workflows API: kept (its runs still settle with its shape),
    # hidden from listing; registering it again brings it back under a new id.
    """ALTER TABLE workflows ADD COLUMN deleted_at REAL""",
    """CREATE TABLE stream_chunks (
        id INTEGER PRIMARY KEY,
        workflow_run_id TEXT NOT NULL,
        task_run_id TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    """CREATE INDEX stream_chunks_run ON stream_chunks (workflow_run_id, id)""",
    """CREATE INDEX events_created ON events (created_at)""",
]

# Conditions and event triggers.
_V5 = [
    # Task conditions (wait_for / skip_if / cancel_if) share durable_conditions with
    # durable waits: node_id 0 and an action; `parents_skipped` counts a task's skipped
    # parents (all skipped: the task is skipped); `trigger_data` is what its met
    # conditions carried.
    """ALTER TABLE durable_conditions ADD COLUMN action TEXT""",
    # When a condition was met (a timer's wake time, an event's time): of two actions
    # met in one step (after downtime), the one met first wins.
    """ALTER TABLE durable_conditions ADD COLUMN met_at REAL""",
    """ALTER TABLE task_runs ADD COLUMN parents_skipped INTEGER NOT NULL DEFAULT 0""",
    """ALTER TABLE task_runs ADD COLUMN trigger_data TEXT""",
    # Event triggers: the keys a workflow listens to (`*` wildcards stored as LIKE `%`),
    # its filters, and on each run the filter that started it.
    """CREATE TABLE event_triggers (
        workflow_name TEXT NOT NULL,
        pattern TEXT NOT NULL,
        PRIMARY KEY (workflow_name, pattern)
    ) WITHOUT ROWID""",
    """CREATE TABLE filters (
        id TEXT PRIMARY KEY,
        workflow_name TEXT NOT NULL,
        scope TEXT NOT NULL,
        expression TEXT NOT NULL,
        payload TEXT NOT NULL,
        is_declarative INTEGER NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE INDEX filters_workflow ON filters (workflow_name, scope)""",
    """ALTER TABLE workflow_runs ADD COLUMN filter_id TEXT""",
    """ALTER TABLE workflow_runs ADD COLUMN filter_payload TEXT""",
]

# Flow control: concurrency limits, rate limits, idempotency keys, routing to workers.
_V6 = [
    # A queued task run the claim must pass over is `held`: 1 while a concurrency limit
    # has not admitted it (it or its run), 2 while it waits out a rate limit until its
    # `available_at` (the scheduler's step puts it back). Either way it is out of the
    # claim's index; its schedule timeout still runs.
    """ALTER TABLE task_runs ADD COLUMN held INTEGER NOT NULL DEFAULT 0""",
    """DROP INDEX task_runs_queue""",
    # A workflow's queue, in the claim's order: priority, then when each task run became
    # ready (a run a limit admitted late queues behind those that waited less).
    """CREATE INDEX task_runs_queue ON task_runs (workflow_name, priority DESC, available_at, seq)
        WHERE status = 'QUEUED' AND held = 0""",
    """CREATE INDEX task_runs_parked ON task_runs (available_at)
        WHERE status = 'QUEUED' AND held = 2""",
    # One row per owner (a workflow run, scope RUN, or a task run, scope TASK) and limit,
    # in arrival order: LATER (an earlier limit of its list has not admitted it yet),
    # WAITING or HELD; deleted when the owner ends.
    """CREATE TABLE concurrency_slots (
        seq INTEGER PRIMARY KEY,
        limit_id TEXT NOT NULL,
        key TEXT NOT NULL,
        scope TEXT NOT NULL,
        owner_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        stage INTEGER NOT NULL,
        max_runs INTEGER NOT NULL,
        strategy TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    """CREATE INDEX concurrency_slots_key ON concurrency_slots (limit_id, key, status, seq)""",
    """CREATE INDEX concurrency_slots_owner ON concurrency_slots (owner_id, scope)""",
    """CREATE INDEX concurrency_slots_run ON concurrency_slots (run_id)""",
    # The concurrency keys evaluated when the run was triggered (JSON, by scope).
    """ALTER TABLE workflow_runs ADD COLUMN limit_keys TEXT""",
    # Fixed-window rate limits: `value` units are left until `last_refill + window`.
    """CREATE TABLE rate_limits (
        key TEXT PRIMARY KEY,
        limit_value INTEGER NOT NULL,
        value INTEGER NOT NULL,
        window_seconds REAL NOT NULL,
        last_refill REAL NOT NULL,
        is_static INTEGER NOT NULL,
        paused_until REAL,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID""",
    # The rate limits a queued task run takes when claimed (JSON [[key, units], ...]).
    """ALTER TABLE task_runs ADD COLUMN rate_limits TEXT""",
    """CREATE TABLE idempotency_keys (
        workflow_name TEXT NOT NULL,
        key TEXT NOT NULL,
        run_id TEXT NOT NULL,
        expires_at REAL NOT NULL,
        until_done INTEGER NOT NULL,
        PRIMARY KEY (workflow_name, key)
    ) WITHOUT ROWID""",
    """CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at)""",
    # Routing a run's tasks: the trigger's sticky / desired worker / labels (JSON), and
    # the worker a sticky run keeps to.
    """ALTER TABLE workflow_runs ADD COLUMN routing TEXT""",
    """ALTER TABLE workflow_runs ADD COLUMN sticky_worker_id TEXT""",
    """ALTER TABLE task_runs ADD COLUMN routing TEXT""",
    # The free slots a worker had at its last heartbeat: a worker leaves a task another
    # worker is preferred for (labels, sticky) only while that one has room.
    """ALTER TABLE workers ADD COLUMN free_slots INTEGER""",
    """ALTER TABLE workers ADD COLUMN free_durable_slots INTEGER""",
]

# Crons and one-time schedules.
_V7 = [
    # A cron fires the ticks of `expression` from `next_at` on (see hatchlite/cron.py);
    # moving `next_at` past a tick and creating its run are one transaction. Declarative
    # crons (`on_crons`, method DEFAULT) have no name; API ones a name unique per workflow.
    """CREATE TABLE crons (
        id TEXT PRIMARY KEY,
        workflow_name TEXT NOT NULL,
        name TEXT,
        expression TEXT NOT NULL,
        input TEXT NOT NULL,
        additional_metadata TEXT NOT NULL,
        priority INTEGER,
        method TEXT NOT NULL,
        next_at REAL NOT NULL,
        last_tick_at REAL,
        last_run_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE UNIQUE INDEX crons_name ON crons (workflow_name, name) WHERE name IS NOT NULL""",
    """CREATE INDEX crons_due ON crons (workflow_name, next_at)""",
    # A one-time schedule fires once: `fired_at` and the run it made (`run_id`; none
    # when a paused workflow dropped it) are written with that run.
    """CREATE TABLE scheduled_runs (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        workflow_name TEXT NOT NULL,
        trigger_at REAL NOT NULL,
        input TEXT NOT NULL,
        additional_metadata TEXT NOT NULL,
        priority INTEGER,
        method TEXT NOT NULL,
        parent_workflow_run_id TEXT,
        parent_task_run_id TEXT,
        child_index INTEGER,
        child_key TEXT,
        fired_at REAL,
        run_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE INDEX scheduled_runs_due ON scheduled_runs (workflow_name, trigger_at)
        WHERE fired_at IS NULL""",
    """CREATE INDEX scheduled_runs_trigger ON scheduled_runs (trigger_at)""",
]

# Each run keeps the shape it was created with (code upgrades never settle a run with
# another version's DAG): shapes by content hash, the hash on each run and workflow.
_V8: list[Step] = [
    """CREATE TABLE workflow_shapes (
        hash TEXT PRIMARY KEY,
        workflow_name TEXT NOT NULL,
        shape TEXT NOT NULL,
        created_at REAL NOT NULL
    ) WITHOUT ROWID""",
    """ALTER TABLE workflows ADD COLUMN shape_hash TEXT""",
    """ALTER TABLE workflow_runs ADD COLUMN shape_hash TEXT""",
]


def _stamp_shapes(conn: sqlite3.Connection) -> None:
    """Runs made before shapes were versioned were made with their workflow's stored
    shape (the best knowledge there is): store it as a version and stamp them with it,
    so a later deploy does not settle them with its new shape."""
    from hatchlite.store.shapes import shape_hash

    rows = conn.execute("SELECT name, shape, updated_at FROM workflows").fetchall()
    for name, text, updated_at in rows:
        hash_ = shape_hash(text)
        conn.execute(
            """INSERT OR IGNORE INTO workflow_shapes (hash, workflow_name, shape, created_at)
               VALUES (?, ?, ?, ?)""",
            (hash_, name, text, updated_at),
        )
        conn.execute("UPDATE workflows SET shape_hash = ? WHERE name = ?", (hash_, name))
        conn.execute(
            "UPDATE workflow_runs SET shape_hash = ? WHERE workflow_name = ? AND shape_hash IS NULL",
            (hash_, name),
        )


_V8.append(_stamp_shapes)

# Branches of a durable task's history (runs.reset_durable_task): the task's current
# branch, and the entries a reset took off it, kept for inspection.
_V9 = [
    """ALTER TABLE task_runs ADD COLUMN durable_branch INTEGER NOT NULL DEFAULT 1""",
    """CREATE TABLE durable_branches (
        task_run_id TEXT NOT NULL,
        branch_id INTEGER NOT NULL,
        node_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT,
        status TEXT NOT NULL,
        result TEXT,
        created_at REAL NOT NULL,
        satisfied_at REAL,
        PRIMARY KEY (task_run_id, branch_id, node_id)
    ) WITHOUT ROWID""",
]

# Long-lived work. Eviction: an evicted durable task run (status WAITING) that waits
# for child runs has one row per child it still waits for, by group (one group per
# wait: the group is done when all its children are); its waits for sleeps and events
# are its PENDING `durable_events` entries. Batches: a batch task's queued member is
# `held` 3 while buffered, with its group key (NULL: no key; `batch_error` when the key
# failed to evaluate); the members flushed together share a `batch_id`.
_V10 = [
    """CREATE TABLE durable_child_waits (
        task_run_id TEXT NOT NULL,
        grp INTEGER NOT NULL,
        child_run_id TEXT NOT NULL,
        PRIMARY KEY (task_run_id, grp, child_run_id)
    ) WITHOUT ROWID""",
    """CREATE INDEX durable_child_waits_child ON durable_child_waits (child_run_id)""",
    """ALTER TABLE task_runs ADD COLUMN batch_key TEXT""",
    """ALTER TABLE task_runs ADD COLUMN batch_id TEXT""",
    """CREATE INDEX task_runs_batched ON task_runs (workflow_name, task_name, available_at, seq)
        WHERE status = 'QUEUED' AND held = 3""",
    """CREATE INDEX task_runs_batch ON task_runs (batch_id) WHERE batch_id IS NOT NULL""",
]

MIGRATIONS: Sequence[tuple[int, Sequence[Step]]] = [
    (1, _V1),
    (2, _V2),
    (3, _V3),
    (4, _V4),
    (5, _V5),
    (6, _V6),
    (7, _V7),
    (8, _V8),
    (9, _V9),
    (10, _V10),
]

LATEST_VERSION = MIGRATIONS[-1][0]
