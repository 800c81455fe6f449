"""Plain data passed between the scheduler and the store (no user functions here)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
ACTIVE = ("PENDING", "QUEUED", "RUNNING", "WAITING")
_CHUNK = 500  # ids per `IN (...)` list


def chunks(items: list[str], size: int = _CHUNK) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def marks(n: int) -> str:
    """Placeholders for an `IN (...)` list of `n` values."""
    return ",".join("?" * n)


@dataclass(frozen=True, slots=True)
class ConditionDef:
    """One condition of a task's `wait_for` (action QUEUE), `skip_if` (SKIP) or
    `cancel_if` (CANCEL). Conditions of one action with the same `group` are an `or_`;
    every group of an action must be met for the action to happen."""

    action: str  # QUEUE, SKIP or CANCEL
    group: int
    kind: str  # SLEEP, EVENT or PARENT
    readable_key: str
    duration: float | None = None  # SLEEP: seconds from when the task's parents are done
    event_key: str | None = None  # EVENT (namespaced)
    expression: str | None = None  # EVENT: over `input`; PARENT: over `output`
    scope: str | None = None  # EVENT
    since: float | None = None  # EVENT: events stored since then count too
    parent: str | None = None  # PARENT: the task whose output is tested


@dataclass(frozen=True, slots=True)
class ConcurrencySpec:
    """One concurrency limit: at most `max_runs` holders per value of the CEL key
    `expression` (see hatchlite/limits.py for the strategies)."""

    expression: str
    max_runs: int
    strategy: str  # GROUP_ROUND_ROBIN, CANCEL_IN_PROGRESS or CANCEL_NEWEST


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    """A task's use of a rate limit: a static key (created with `rate_limits.put`) or a
    CEL dynamic key with its limit; `units` and `limit` may be CEL too (strings)."""

    static_key: str | None
    dynamic_key: str | None
    units: str | int
    limit: str | int | None
    window: float  # seconds


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """A desired worker label: compared with the worker's label of that key."""

    key: str
    value: str | int
    required: bool
    weight: int
    comparator: int  # WorkerLabelComparator


@dataclass(frozen=True, slots=True)
class IdempotencySpec:
    """A workflow's idempotency: one run per value of `key_expression` for `ttl`
    seconds, or (`until_done`) until that run ends, `ttl` at most."""

    key_expression: str
    ttl: float
    until_done: bool


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """A batch task's batching: flush `max_size` members, or what has waited `interval`
    seconds; per value of `group_key` (CEL), at most `group_max_runs` batches at once."""

    max_size: int
    interval: float | None = None
    group_key: str | None = None
    group_max_runs: int | None = None
    broadcast: bool = False


@dataclass(frozen=True, slots=True)
class TaskShape:
    """What the store needs to know about one task of a workflow."""

    name: str
    parents: tuple[str, ...]
    children: tuple[str, ...]
    descendants: tuple[str, ...]
    schedule_timeout: float
    execution_timeout: float
    slot_cost: int
    is_durable: bool
    conditions: tuple[ConditionDef, ...] = ()
    concurrency: tuple[ConcurrencySpec, ...] = ()
    rate_limits: tuple[RateLimitSpec, ...] = ()
    labels: tuple[LabelSpec, ...] = ()
    batch: BatchSpec | None = None

    @property
    def admits(self) -> bool:
        """Whether queueing it takes more than a status change (rate limits to render,
        concurrency limits to hold it for)."""
        return bool(self.concurrency or self.rate_limits)


@dataclass(frozen=True, slots=True)
class WorkflowShape:
    """The DAG of a workflow as data: task shapes in definition order."""

    name: str
    tasks: dict[str, TaskShape]
    on_failure: TaskShape | None
    is_dag: bool
    # What event-triggered runs need from the definition, which may be in another
    # process: the event keys (`*` wildcards), the default filters (expression, scope,
    # payload JSON), the default priority and additional metadata.
    on_events: tuple[str, ...] = ()
    default_filters: tuple[tuple[str, str, str], ...] = ()
    default_priority: int = 1
    default_metadata_json: str = "{}"
    concurrency: tuple[ConcurrencySpec, ...] = ()  # workflow-level: held by whole runs
    idempotency: IdempotencySpec | None = None
    sticky: str | None = None  # SOFT or HARD
    # Declarative crons: expressions, the input of their runs, the missed-tick policy
    # (which also applies to the workflow's API crons).
    on_crons: tuple[str, ...] = ()
    cron_input_json: str = "{}"
    cron_missed: str = "latest"

    # Derived once (read on every trigger and settle): whether any of its tasks takes
    # rate-limit units, and whether any concurrency limit applies to its runs or tasks.
    rate_limited: bool = field(init=False, compare=False)
    limited: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        every = [t for t in (*self.tasks.values(), self.on_failure) if t is not None]
        object.__setattr__(self, "rate_limited", any(t.rate_limits for t in every))
        limited = bool(self.concurrency) or any(t.concurrency for t in every)
        object.__setattr__(self, "limited", limited)

    def task(self, name: str) -> TaskShape:
        shape = self.tasks.get(name)
        if shape is None and self.on_failure is not None and self.on_failure.name == name:
            return self.on_failure
        if shape is None:
            raise KeyError(f"workflow {self.name!r} has no task {name!r}")
        return shape


@dataclass(slots=True)
class NewRun:
    """One workflow run to create."""

    run_id: str
    workflow_name: str
    input_json: str
    metadata_json: str
    priority: int
    task_ids: dict[str, str]
    parent_workflow_run_id: str | None = None
    parent_task_run_id: str | None = None
    child_index: int | None = None
    child_key: str | None = None
    trigger_key: str | None = None
    # Started by a pushed event (through one of the workflow's filters, if it has any).
    triggering_event_id: str | None = None
    filter_id: str | None = None
    filter_payload_json: str | None = None
    # Concurrency keys evaluated at trigger time: "" for the workflow's limits, else by
    # task name; one key per limit, in the definition's order.
    limit_keys: dict[str, list[str]] | None = None
    idempotency_key: str | None = None
    keyed: bool = False  # the keys above were evaluated (hatchlite.limits.key_run)
    routing_json: str | None = None  # store/routing.py Routing: sticky, worker, labels
    # The shape of the caller's own definition (a process triggering a workflow it
    # defines): the run gets it, whatever another process registered last.
    shape: WorkflowShape | None = None


@dataclass(frozen=True, slots=True)
class TriggerResult:
    run_id: str
    existed: bool
    status: str
    # Not created: the run holding its idempotency key (then `run_id` is that run's).
    collided: bool = False


@dataclass(slots=True)
class ClaimRequest:
    worker_id: str
    workflows: tuple[str, ...]
    free_slots: int
    free_durable_slots: int
    # (workflow, task) pairs the worker has code for: rows of other tasks stay queued for
    # a worker that can run them (another process may define another version).
    runnable: frozenset[tuple[str, str]] | None = None
    busy: bool = False  # the worker runs a task now (a suspect task only runs alone)
    labels: dict[str, str | int] = field(default_factory=dict)  # the worker's labels


@dataclass(slots=True)
class ClaimedTask:
    task_id: str
    run_id: str
    workflow_name: str
    task_name: str
    retry_count: int
    priority: int
    input_json: str
    metadata_json: str
    timeout_at: float | None
    worker_id: str
    started_at: float
    parent_outputs: dict[str, str | None] = field(default_factory=dict)
    parent_errors: dict[str, str] = field(default_factory=dict)
    parent_workflow_run_id: str | None = None
    parent_task_run_id: str | None = None
    child_index: int | None = None
    child_key: str | None = None
    # Durable tasks: their history so far, and how many times the task was started.
    history: list[Any] | None = None
    invocation_count: int = 1
    queued_at: float | None = None
    is_durable: bool = False
    suspect: bool = False  # its worker died while running it before: it runs alone
    triggering_event_id: str | None = None
    filter_payload_json: str | None = None
    trigger_data_json: str | None = None  # what the task's met conditions carried
    batch_id: str | None = None  # a batch member: the batch it runs in


@dataclass(slots=True)
class Outcome:
    """How one attempt ended, as the scheduler decided it."""

    task_id: str
    run_id: str
    workflow_name: str
    task_name: str
    worker_id: str
    retry_count: int
    started_at: float
    status: str  # COMPLETED, FAILED or CANCELLED
    output_json: str | None = None
    error_json: str | None = None
    retry_at: float | None = None  # set: re-queue for another attempt at this instant
    attempt_status: str | None = None  # what the attempt row says, when not `status`
    queued_at: float | None = None  # when this attempt was queued


# A task event row: task run id, workflow run id, retry count, event type, message,
# worker id, time.
TaskEvent = tuple[str, str, int, str, str | None, str | None, float]


@dataclass(slots=True)
class LogLine:
    task_id: str
    retry_count: int
    level: str
    message: str
    created_at: float


@dataclass(slots=True)
class TickResult:
    claimed: list[ClaimedTask]
    finished_runs: dict[str, str]  # run id -> final status
    cancelled_running: list[str]  # running task ids found cancelled by another process
    next_deadline: float | None
    results: dict[str, RunResult]  # results of watched runs that ended
    durable: dict[tuple[str, int], str] = field(default_factory=dict)  # waits satisfied
    # What each trigger taken into the step gave: a TriggerOutcome, or its error.
    triggered: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TaskRow:
    task_id: str
    task_name: str
    status: str
    output_json: str | None
    error_json: str | None
    retry_count: int


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    workflow_name: str
    status: str
    is_dag: bool
    tasks: list[TaskRow]


def shape_to_json(shape: WorkflowShape) -> str:
    def task(t: TaskShape) -> dict[str, object]:
        batch = {"batch": dataclasses.asdict(t.batch)} if t.batch is not None else {}
        return {
            "name": t.name,
            "parents": list(t.parents),
            "children": list(t.children),
            "descendants": list(t.descendants),
            "schedule_timeout": t.schedule_timeout,
            "execution_timeout": t.execution_timeout,
            "slot_cost": t.slot_cost,
            "is_durable": t.is_durable,
            "conditions": [dataclasses.asdict(c) for c in t.conditions],
            "concurrency": [dataclasses.asdict(c) for c in t.concurrency],
            "rate_limits": [dataclasses.asdict(r) for r in t.rate_limits],
            "labels": [dataclasses.asdict(lb) for lb in t.labels],
            **batch,  # only for batch tasks: other shapes keep their hashes
        }

    return json.dumps(
        {
            "name": shape.name,
            "tasks": [task(t) for t in shape.tasks.values()],
            "on_failure": task(shape.on_failure) if shape.on_failure else None,
            "is_dag": shape.is_dag,
            "on_events": list(shape.on_events),
            "default_filters": [list(f) for f in shape.default_filters],
            "default_priority": shape.default_priority,
            "default_metadata": shape.default_metadata_json,
            "concurrency": [dataclasses.asdict(c) for c in shape.concurrency],
            "idempotency": dataclasses.asdict(shape.idempotency) if shape.idempotency else None,
            "sticky": shape.sticky,
            "on_crons": list(shape.on_crons),
            "cron_input": shape.cron_input_json,
            "cron_missed": shape.cron_missed,
        }
    )


def shape_from_json(text: str) -> WorkflowShape:
    data = json.loads(text)

    def task(d: dict[str, Any]) -> TaskShape:
        return TaskShape(
            name=d["name"],
            parents=tuple(d["parents"]),
            children=tuple(d["children"]),
            descendants=tuple(d["descendants"]),
            schedule_timeout=float(d["schedule_timeout"]),
            execution_timeout=float(d["execution_timeout"]),
            slot_cost=int(d["slot_cost"]),
            is_durable=bool(d["is_durable"]),
            conditions=tuple(ConditionDef(**c) for c in d.get("conditions", ())),
            concurrency=tuple(ConcurrencySpec(**c) for c in d.get("concurrency", ())),
            rate_limits=tuple(RateLimitSpec(**r) for r in d.get("rate_limits", ())),
            labels=tuple(LabelSpec(**lb) for lb in d.get("labels", ())),
            batch=BatchSpec(**d["batch"]) if d.get("batch") else None,
        )

    return WorkflowShape(
        name=data["name"],
        tasks={t["name"]: task(t) for t in data["tasks"]},
        on_failure=task(data["on_failure"]) if data["on_failure"] else None,
        is_dag=bool(data["is_dag"]),
        on_events=tuple(data.get("on_events", ())),
        default_filters=tuple(tuple(f) for f in data.get("default_filters", ())),
        default_priority=int(data.get("default_priority", 1)),
        default_metadata_json=str(data.get("default_metadata", "{}")),
        concurrency=tuple(ConcurrencySpec(**c) for c in data.get("concurrency", ())),
        idempotency=IdempotencySpec(**data["idempotency"]) if data.get("idempotency") else None,
        sticky=data.get("sticky"),
        on_crons=tuple(data.get("on_crons", ())),
        cron_input_json=str(data.get("cron_input", "{}")),
        cron_missed=str(data.get("cron_missed", "latest")),
    )
