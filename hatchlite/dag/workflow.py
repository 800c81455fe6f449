"""Workflow definitions: the task decorators, their validation, and the DAG shape.

Nothing here does I/O. A definition error raises `InvalidDefinitionError` (a
`ValueError`) naming the workflow, the task and what is wrong, at decoration time.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast, overload

from pydantic import BaseModel, TypeAdapter, ValidationError

from hatchlite.cel import InvalidCELError, check_boolean
from hatchlite.cel import check as check_cel
from hatchlite.conditions import Condition, OrGroup
from hatchlite.cron import InvalidCronError, check_missed_policy, parse
from hatchlite.dag.gates import check_conditions, condition_defs
from hatchlite.dag.site import UNKNOWN_SITE, Site, warn_user
from hatchlite.exceptions import (
    InvalidDefinitionError,
    PayloadTooLargeError,
    UnenforcedParameterWarning,
)
from hatchlite.serde import HATCHET_PYDANTIC_SENTINEL as SERDE
from hatchlite.store.records import BatchSpec, TaskShape, WorkflowShape
from hatchlite.types import (
    DEFAULT_EVICTION_POLICY,
    BatchMemberId,
    BatchTaskConfig,
    ConcurrencyExpression,
    DesiredWorkerLabel,
    Duration,
    EmptyModel,
    EvictionPolicy,
    RateLimit,
    StepType,
    StickyStrategy,
    TaskDefaults,
    to_timedelta,
)

if TYPE_CHECKING:
    from hatchlite.context import Context
    from hatchlite.durable import DurableContext

from hatchlite.dag.task import (
    DEFAULT_EXECUTION_TIMEOUT,
    DEFAULT_RETRIES,
    DEFAULT_SCHEDULE_TIMEOUT,
    Task,
    TWorkflowInput,
    WorkflowConfig,
    check_signature,
    normalize_concurrency,
)
from hatchlite.limits import concurrency_specs, idempotency_spec, rate_limit_specs
from hatchlite.store.routing import label_specs

R2 = TypeVar("R2")
_CREATED = itertools.count()
DEFAULT_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024  # Hatchet's default gRPC message limit


class TaskDecorator(Protocol[TWorkflowInput]):
    """`@wf.task(...)`: takes `(input, ctx)` functions, sync or async; the task's output
    type is the function's return type (awaited, for `async def`)."""

    @overload
    def __call__(
        self, fn: Callable[[TWorkflowInput, Context], Coroutine[Any, Any, R2]], /
    ) -> Task[TWorkflowInput, R2]: ...

    @overload
    def __call__(
        self, fn: Callable[[TWorkflowInput, Context], R2], /
    ) -> Task[TWorkflowInput, R2]: ...


class BatchTaskDecorator(Protocol[TWorkflowInput]):
    """`@wf.batch_task(...)`: takes `(inputs, ctx)` functions, `inputs` a dict of the
    batch's members' inputs by member id, returning a dict of their outputs by member id
    (or, with `broadcast_output`, one output for all)."""

    @overload
    def __call__(
        self,
        fn: Callable[
            [dict[BatchMemberId, TWorkflowInput], Context],
            Coroutine[Any, Any, dict[BatchMemberId, R2]],
        ],
        /,
    ) -> Task[TWorkflowInput, R2]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[dict[BatchMemberId, TWorkflowInput], Context], dict[BatchMemberId, R2]],
        /,
    ) -> Task[TWorkflowInput, R2]: ...

    @overload
    def __call__(
        self, fn: Callable[[dict[BatchMemberId, TWorkflowInput], Context], Any], /
    ) -> Task[TWorkflowInput, Any]: ...


class DurableTaskDecorator(Protocol[TWorkflowInput]):
    """`@wf.durable_task(...)`: like `TaskDecorator`, with a `DurableContext`."""

    @overload
    def __call__(
        self, fn: Callable[[TWorkflowInput, DurableContext], Coroutine[Any, Any, R2]], /
    ) -> Task[TWorkflowInput, R2]: ...

    @overload
    def __call__(
        self, fn: Callable[[TWorkflowInput, DurableContext], R2], /
    ) -> Task[TWorkflowInput, R2]: ...


class WorkflowDefinition(Generic[TWorkflowInput]):
    """The tasks of one workflow and the decorators that declare them."""

    tasks_added = 0  # grows whenever any definition gains a task (workers re-read theirs)

    def __init__(self, config: WorkflowConfig, site: Site = UNKNOWN_SITE) -> None:
        self.config = config
        self.site = site  # where it was defined: named in definition errors
        self.created = next(_CREATED)  # which of two definitions of one name is newer
        self.tasks: list[Task[TWorkflowInput, Any]] = []
        self._on_failure: Task[TWorkflowInput, Any] | None = None
        self._on_success: Task[TWorkflowInput, Any] | None = None
        self._shape: WorkflowShape | None = None
        self._by_name: dict[str, Task[TWorkflowInput, Any]] | None = None
        _check_triggers(config)
        if config.task_defaults.priority is not None:
            warn_user(
                f"workflow {config.name!r}: TaskDefaults.priority has no effect (nor in "
                f"Hatchet): set default_priority on the workflow, or priority per run",
                UnenforcedParameterWarning,
            )
        try:
            idempotency_spec(config.idempotency, f"workflow {config.name!r}")
        except ValueError as exc:
            raise InvalidDefinitionError(str(exc)) from exc
        validator = config.input_validator or EmptyModel
        self.input_validator_type: Any = validator
        try:
            self.input_adapter: TypeAdapter[Any] = TypeAdapter(validator)
        except Exception as exc:
            raise InvalidDefinitionError(
                f"workflow {config.name!r}: input_validator {validator!r} is not a pydantic "
                f"model, dataclass or dict type: {exc}"
            ) from exc
        self.cron_input_json = "{}"
        if config.on_crons:
            try:
                self.cron_input_json = self.validate_input(config.cron_input)
            except ValueError as exc:
                raise InvalidDefinitionError(
                    f"workflow {config.name!r}: cron_input: {exc}"
                ) from exc

    @property
    def name(self) -> str:
        return self.config.name

    def captures_logs(self) -> bool:
        """Whether `logging` inside this workflow's tasks becomes task logs."""
        return True

    def max_payload_bytes(self) -> int:
        """The size limit of this workflow's inputs and outputs (its client's setting)."""
        return DEFAULT_MAX_PAYLOAD_BYTES

    @property
    def input_validator(self) -> TypeAdapter[Any]:
        return self.input_adapter

    def config_namespace(self) -> Callable[[str], str]:
        """How event keys and names are namespaced for this workflow's client."""
        return lambda name: name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} tasks={[t.name for t in self.all_tasks]}>"

    @property
    def all_tasks(self) -> list[Task[TWorkflowInput, Any]]:
        """Every task including the on-failure and on-success tasks."""
        extra = [t for t in (self._on_success, self._on_failure) if t is not None]
        return [*self.tasks, *extra]

    def task_by_name(self, name: str) -> Task[TWorkflowInput, Any]:
        by_name = self._by_name
        if by_name is None:
            by_name = self._by_name = {t.name: t for t in self.all_tasks}
        try:
            return by_name[name]
        except KeyError:
            raise KeyError(f"workflow {self.name!r} has no task {name!r}") from None

    # -- decorators --------------------------------------------------------------

    def task(
        self,
        *,
        name: str | None = None,
        schedule_timeout: Duration = DEFAULT_SCHEDULE_TIMEOUT,
        execution_timeout: Duration = DEFAULT_EXECUTION_TIMEOUT,
        parents: list[Task[TWorkflowInput, Any]] | None = None,
        retries: int = DEFAULT_RETRIES,
        rate_limits: list[RateLimit] | None = None,
        desired_worker_labels: dict[str, DesiredWorkerLabel]
        | list[DesiredWorkerLabel]
        | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        concurrency: int | list[ConcurrencyExpression] | None = None,
        wait_for: list[Condition | OrGroup] | None = None,
        skip_if: list[Condition | OrGroup] | None = None,
        cancel_if: list[Condition | OrGroup] | None = None,
        slot_cost: int | None = None,
    ) -> TaskDecorator[TWorkflowInput]:
        """Declare a task of this workflow."""
        options = dict(locals())
        del options["self"]
        return cast(
            "TaskDecorator[TWorkflowInput]",
            lambda fn: self._add(fn, StepType.DEFAULT, **options),
        )

    def durable_task(
        self,
        *,
        name: str | None = None,
        schedule_timeout: Duration = DEFAULT_SCHEDULE_TIMEOUT,
        execution_timeout: Duration = DEFAULT_EXECUTION_TIMEOUT,
        parents: list[Task[TWorkflowInput, Any]] | None = None,
        retries: int = DEFAULT_RETRIES,
        rate_limits: list[RateLimit] | None = None,
        desired_worker_labels: dict[str, DesiredWorkerLabel]
        | list[DesiredWorkerLabel]
        | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        concurrency: int | list[ConcurrencyExpression] | None = None,
        wait_for: list[Condition | OrGroup] | None = None,
        skip_if: list[Condition | OrGroup] | None = None,
        cancel_if: list[Condition | OrGroup] | None = None,
        eviction_policy: EvictionPolicy | None = DEFAULT_EVICTION_POLICY,
    ) -> DurableTaskDecorator[TWorkflowInput]:
        """Declare a durable task: its sleeps, waits and child spawns are checkpointed."""
        options = dict(locals())
        del options["self"]
        return cast(
            "DurableTaskDecorator[TWorkflowInput]",
            lambda fn: self._add(fn, StepType.DEFAULT, is_durable=True, **options),
        )

    def batch_task(
        self,
        name: str | None = None,
        *,
        batch_max_size: int,
        batch_max_interval: timedelta | None = None,
        batch_group_key: str | None = None,
        batch_group_max_runs: int | None = None,
        broadcast_output: bool = False,
        schedule_timeout: Duration = DEFAULT_SCHEDULE_TIMEOUT,
        execution_timeout: Duration = DEFAULT_EXECUTION_TIMEOUT,
        parents: list[Task[TWorkflowInput, Any]] | None = None,
        rate_limits: list[RateLimit] | None = None,
        desired_worker_labels: dict[str, DesiredWorkerLabel]
        | list[DesiredWorkerLabel]
        | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> BatchTaskDecorator[TWorkflowInput]:
        """Declare a batch task: each run's task run is a member, buffered until
        `batch_max_size` members (per value of `batch_group_key`) are there or the oldest
        has waited `batch_max_interval`; then the function runs once for the batch.
        `retries` is a hatchlite extra (Hatchet's batch tasks are not retried)."""
        where = f"workflow {self.name!r}, batch task {(name or '?')!r}"
        batch = batch_config(
            where,
            batch_max_size,
            batch_max_interval,
            batch_group_key,
            batch_group_max_runs,
            broadcast_output,
        )
        unenforced = [
            f"`{param}`"
            for param, value in (
                ("rate_limits", rate_limits),
                ("desired_worker_labels", desired_worker_labels),
                ("sticky", self.config.sticky),
            )
            if value
        ]
        if unenforced:
            warn_user(
                f"{where}: {' and '.join(unenforced)} accepted but not enforced yet on "
                f"batch tasks by hatchlite, so they have no effect (see docs/batch_tasks.md)",
                UnenforcedParameterWarning,
            )
        options: dict[str, Any] = dict(
            name=name,
            schedule_timeout=schedule_timeout,
            execution_timeout=execution_timeout,
            parents=parents,
            retries=retries,
            rate_limits=rate_limits,
            desired_worker_labels=desired_worker_labels,
            backoff_factor=backoff_factor,
            backoff_max_seconds=backoff_max_seconds,
        )
        return cast(
            "BatchTaskDecorator[TWorkflowInput]",
            lambda fn: self._add(fn, StepType.DEFAULT, batch=batch, **options),
        )

    def on_failure_task(
        self,
        *,
        name: str | None = None,
        schedule_timeout: Duration = DEFAULT_SCHEDULE_TIMEOUT,
        execution_timeout: Duration = DEFAULT_EXECUTION_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        rate_limits: list[RateLimit] | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        concurrency: int | list[ConcurrencyExpression] | None = None,
    ) -> TaskDecorator[TWorkflowInput]:
        """Declare the task that runs as soon as any task of a run fails."""
        options = dict(locals())
        del options["self"]
        return self._special(StepType.ON_FAILURE, options)

    def on_success_task(
        self,
        *,
        name: str | None = None,
        schedule_timeout: Duration = DEFAULT_SCHEDULE_TIMEOUT,
        execution_timeout: Duration = DEFAULT_EXECUTION_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        rate_limits: list[RateLimit] | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        concurrency: int | list[ConcurrencyExpression] | None = None,
    ) -> TaskDecorator[TWorkflowInput]:
        """Declare the task that runs after every other task of a run completed."""
        options = dict(locals())
        del options["self"]
        return self._special(StepType.ON_SUCCESS, options)

    # -- building ----------------------------------------------------------------

    def _special(
        self, step_type: StepType, options: dict[str, Any]
    ) -> TaskDecorator[TWorkflowInput]:
        """The on-failure / on-success decorator: one per workflow; no task defaults."""
        attr = "_on_failure" if step_type is StepType.ON_FAILURE else "_on_success"
        label = "on_failure" if step_type is StepType.ON_FAILURE else "on_success"

        def decorator(fn: Callable[..., Any]) -> Task[TWorkflowInput, Any]:
            existing: Task[TWorkflowInput, Any] | None = getattr(self, attr)
            if existing is not None:
                raise InvalidDefinitionError(
                    f"workflow {self.name!r} already has an {label} task "
                    f"({existing.name!r}); only one is allowed"
                )
            task = self._add(fn, step_type, apply_defaults=False, **options)
            setattr(self, attr, task)
            return task

        return cast("TaskDecorator[TWorkflowInput]", decorator)

    def _add(
        self,
        fn: Callable[..., Any],
        step_type: StepType,
        *,
        name: str | None = None,
        schedule_timeout: Duration = DEFAULT_SCHEDULE_TIMEOUT,
        execution_timeout: Duration = DEFAULT_EXECUTION_TIMEOUT,
        parents: list[Task[TWorkflowInput, Any]] | None = None,
        retries: int = DEFAULT_RETRIES,
        rate_limits: list[RateLimit] | None = None,
        desired_worker_labels: dict[str, DesiredWorkerLabel]
        | list[DesiredWorkerLabel]
        | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        concurrency: int | ConcurrencyExpression | list[ConcurrencyExpression] | None = None,
        wait_for: list[Condition | OrGroup] | None = None,
        skip_if: list[Condition | OrGroup] | None = None,
        cancel_if: list[Condition | OrGroup] | None = None,
        slot_cost: int | None = None,
        is_durable: bool = False,
        eviction_policy: EvictionPolicy | None = None,
        batch: BatchTaskConfig | None = None,
        apply_defaults: bool = True,
    ) -> Task[TWorkflowInput, Any]:
        base = (name or getattr(fn, "__name__", "") or "").lower()
        if not base:
            raise InvalidDefinitionError(f"workflow {self.name!r}: a task needs a name")
        suffix = {StepType.ON_FAILURE: "-on-failure", StepType.ON_SUCCESS: "-on-success"}
        task_name = base + suffix.get(step_type, "")
        where = f"workflow {self.name!r}, task {task_name!r}"
        check_signature(fn, where)
        if any(t.name == task_name for t in self.all_tasks):
            raise InvalidDefinitionError(f"{where}: duplicate task name")
        if slot_cost is not None and slot_cost <= 0:
            raise InvalidDefinitionError(f"{where}: slot_cost must be a positive integer")
        if retries < 0:
            raise InvalidDefinitionError(f"{where}: retries must be 0 or more")
        if backoff_factor is not None and backoff_factor <= 0:
            raise InvalidDefinitionError(f"{where}: backoff_factor must be positive")
        if backoff_max_seconds is not None and backoff_max_seconds <= 0:
            raise InvalidDefinitionError(f"{where}: backoff_max_seconds must be positive")
        parent_list = list(parents or [])
        for parent in parent_list:
            if not isinstance(parent, Task):
                raise InvalidDefinitionError(
                    f"{where}: parents must be Task objects returned by a task decorator, "
                    f"got {parent!r}"
                )
            if parent.workflow is not self:
                raise InvalidDefinitionError(
                    f"{where}: parent {parent.name!r} belongs to workflow "
                    f"{parent.workflow.name!r}, not to this workflow"
                )
            if parent not in self.tasks:
                raise InvalidDefinitionError(
                    f"{where}: parent {parent.name!r} is not a task defined earlier in this "
                    f"workflow"
                )
        if len({id(p) for p in parent_list}) != len(parent_list):
            raise InvalidDefinitionError(f"{where}: a parent is listed twice")

        defaults = self.config.task_defaults if apply_defaults else TaskDefaults()
        sched = _fallback(schedule_timeout, DEFAULT_SCHEDULE_TIMEOUT, defaults.schedule_timeout)
        exec_ = _fallback(execution_timeout, DEFAULT_EXECUTION_TIMEOUT, defaults.execution_timeout)
        retries = _fallback(retries, DEFAULT_RETRIES, defaults.retries)
        backoff_factor = _fallback(backoff_factor, None, defaults.backoff_factor)
        backoff_max_seconds = _fallback(backoff_max_seconds, None, defaults.backoff_max_seconds)
        try:
            sched_td = to_timedelta(sched, "schedule_timeout")
            exec_td = to_timedelta(exec_, "execution_timeout")
        except ValueError as exc:
            raise InvalidDefinitionError(f"{where}: {exc}") from exc
        if sched_td.total_seconds() <= 0 or exec_td.total_seconds() <= 0:
            raise InvalidDefinitionError(f"{where}: timeouts must be positive durations")

        try:
            rate_limit_specs(list(rate_limits or []), where)
            label_specs(desired_worker_labels, where)
        except ValueError as exc:
            raise InvalidDefinitionError(str(exc)) from exc
        for limit in rate_limits or []:
            ignored = [f for f in ("limit", "duration") if f in limit.model_fields_set]
            if limit.static_key and ignored:
                warn_user(
                    f"{where}: rate limit {limit.static_key!r}: "
                    f"{' and '.join(f'`{f}`' for f in ignored)} ignored for a static key "
                    f"(its limit and window are what hatchet.rate_limits.put set)",
                    UserWarning,
                )

        labels: dict[str, DesiredWorkerLabel] = {}
        if isinstance(desired_worker_labels, dict):
            labels = dict(desired_worker_labels)
        elif desired_worker_labels:
            labels = {str(lbl.key): lbl for lbl in desired_worker_labels}

        task: Task[TWorkflowInput, Any] = Task(
            fn=fn,
            workflow=self,
            type=step_type,
            name=task_name,
            schedule_timeout=sched_td,
            execution_timeout=exec_td,
            parents=parent_list,
            retries=retries,
            rate_limits=list(rate_limits or []),
            desired_worker_labels=labels,
            backoff_factor=backoff_factor,
            backoff_max_seconds=backoff_max_seconds,
            concurrency=normalize_concurrency(concurrency, where),
            wait_for=list(wait_for or []),
            skip_if=list(skip_if or []),
            cancel_if=list(cancel_if or []),
            slot_cost=slot_cost or 1,
            is_durable=is_durable,
            eviction_policy=eviction_policy,
            batch=batch,
        )
        check_conditions(
            where,
            _ancestors(parent_list),
            {"wait_for": task.wait_for, "skip_if": task.skip_if, "cancel_if": task.cancel_if},
        )
        if step_type is StepType.DEFAULT:
            self.tasks.append(task)
        self._shape = None
        self._by_name = None
        WorkflowDefinition.tasks_added += 1
        return task

    def shape(self) -> WorkflowShape:
        """The DAG as data for the store (cached until a task is added)."""
        if self._shape is not None:
            return self._shape
        if not self.tasks:
            raise InvalidDefinitionError(f"workflow {self.name!r} has no tasks")
        parents: dict[str, tuple[str, ...]] = {
            t.name: tuple(p.name for p in t.parents) for t in self.tasks
        }
        if self._on_success is not None:
            has_children = {p for ps in parents.values() for p in ps}
            leaves = tuple(t.name for t in self.tasks if t.name not in has_children)
            parents[self._on_success.name] = leaves
        order = _topological(self.name, parents)
        children: dict[str, list[str]] = {name: [] for name in order}
        for name in order:
            for parent in parents[name]:
                children[parent].append(name)
        descendants: dict[str, tuple[str, ...]] = {}
        for name in reversed(order):
            seen: dict[str, None] = {}
            for child in children[name]:
                seen[child] = None
                for d in descendants[child]:
                    seen[d] = None
            descendants[name] = tuple(seen)
        by_name = {t.name: t for t in self.all_tasks}

        def task_shape(name: str) -> TaskShape:
            t = by_name[name]
            return TaskShape(
                name=name,
                parents=parents.get(name, ()),
                children=tuple(children.get(name, ())),
                descendants=descendants.get(name, ()),
                schedule_timeout=t.schedule_timeout.total_seconds(),
                execution_timeout=t.execution_timeout.total_seconds(),
                slot_cost=t.slot_cost,
                is_durable=t.is_durable,
                conditions=condition_defs(t, self.config_namespace()),
                concurrency=concurrency_specs(t.concurrency, f"task {name!r}"),
                rate_limits=rate_limit_specs(t.rate_limits, f"task {name!r}"),
                labels=label_specs(t.desired_worker_labels, f"task {name!r}"),
                batch=batch_spec(t.batch),
            )

        shapes = {name: task_shape(name) for name in order}
        on_failure = task_shape(self._on_failure.name) if self._on_failure else None
        count = len(shapes) + (1 if on_failure else 0)
        config = self.config
        self._shape = WorkflowShape(
            self.name,
            shapes,
            on_failure,
            is_dag=count > 1,
            on_events=tuple(config.on_events),
            default_filters=tuple(
                (f.expression, f.scope, json.dumps(f.payload)) for f in config.default_filters
            ),
            default_priority=int(config.default_priority),
            default_metadata_json=json.dumps(config.default_additional_metadata),
            concurrency=concurrency_specs(config.concurrency, f"workflow {self.name!r}"),
            idempotency=idempotency_spec(config.idempotency, f"workflow {self.name!r}"),
            sticky=StickyStrategy(config.sticky).value if config.sticky else None,
            on_crons=tuple(config.on_crons),
            cron_input_json=self.cron_input_json,
            cron_missed=config.cron_missed,
        )
        return self._shape

    def validate_input(self, input: Any) -> str:
        """Validate a trigger's input and return it as JSON text."""
        from hatchlite.exceptions import InputValidationError

        if input is None or (isinstance(input, dict) and not input):
            input = {}
        try:
            if (
                isinstance(input, BaseModel)
                and isinstance(self.input_validator_type, type)
                and isinstance(input, self.input_validator_type)
            ):
                value = input
            else:
                if isinstance(input, BaseModel):
                    input = input.model_dump()
                value = self.input_adapter.validate_python(input, context=SERDE)
            text = self.input_adapter.dump_json(value, context=SERDE).decode()
        except ValidationError as exc:
            raise InputValidationError(
                f"input for workflow {self.name!r} does not validate against "
                f"{getattr(self.input_validator_type, '__name__', self.input_validator_type)}: "
                f"{exc}"
            ) from exc
        PayloadTooLargeError.check(
            text, self.max_payload_bytes(), f"the input of workflow {self.name!r}"
        )
        return text

    def parse_input(self, text: str) -> Any:
        return self.input_adapter.validate_json(text, context=SERDE)


def batch_config(
    where: str,
    max_size: int,
    interval: timedelta | None,
    group_key: str | None,
    group_max_runs: int | None,
    broadcast: bool,
) -> BatchTaskConfig:
    """A batch task's settings, checked (Hatchet's rules, and the group key's CEL)."""
    if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1:
        raise InvalidDefinitionError(f"{where}: batch_max_size must be a positive integer")
    if interval is not None and interval.total_seconds() <= 0:
        raise InvalidDefinitionError(f"{where}: batch_max_interval must be positive when provided")
    if group_max_runs is not None and group_max_runs <= 0:
        raise InvalidDefinitionError(
            f"{where}: batch_group_max_runs must be a positive integer when provided"
        )
    if group_key is not None:
        try:
            check_cel(group_key, f"{where}: batch_group_key")
        except InvalidCELError as exc:
            raise InvalidDefinitionError(str(exc)) from exc
    return BatchTaskConfig(
        batch_max_size=max_size,
        batch_max_interval=interval,
        batch_group_key=group_key,
        batch_group_max_runs=group_max_runs,
        broadcast_output=broadcast,
    )


def batch_spec(config: BatchTaskConfig | None) -> BatchSpec | None:
    if config is None:
        return None
    interval = config.batch_max_interval
    return BatchSpec(
        max_size=config.batch_max_size,
        interval=interval.total_seconds() if interval is not None else None,
        group_key=config.batch_group_key,
        group_max_runs=config.batch_group_max_runs,
        broadcast=config.broadcast_output,
    )


def _ancestors(parents: list[Task[Any, Any]]) -> set[str]:
    seen: set[str] = set()
    stack = list(parents)
    while stack:
        task = stack.pop()
        if task.name not in seen:
            seen.add(task.name)
            stack.extend(task.parents)
    return seen


def _check_triggers(config: WorkflowConfig) -> None:
    """Event keys and default filters, checked when the workflow is declared."""
    where = f"workflow {config.name!r}"
    for key in config.on_events:
        if not isinstance(key, str) or not key:
            raise InvalidDefinitionError(f"{where}: on_events keys must be non-empty strings")
    if isinstance(config.on_crons, str):
        raise InvalidDefinitionError(f"{where}: on_crons must be a list of cron expressions")
    for expression in config.on_crons:
        try:
            parse(expression)
        except InvalidCronError as exc:
            raise InvalidDefinitionError(f"{where}: on_crons: {exc}") from exc
    try:
        check_missed_policy(config.cron_missed, where)
    except InvalidCronError as exc:
        raise InvalidDefinitionError(str(exc)) from exc
    for default in config.default_filters:
        if not default.scope:
            raise InvalidDefinitionError(f"{where}: a default filter needs a non-empty scope")
        try:
            check_boolean(default.expression, f"{where}, default filter (scope {default.scope!r})")
        except InvalidCELError as exc:
            raise InvalidDefinitionError(str(exc)) from exc
        try:
            json.dumps(default.payload)
        except (TypeError, ValueError) as exc:
            raise InvalidDefinitionError(
                f"{where}, default filter (scope {default.scope!r}): payload is not JSON: {exc}"
            ) from exc


def _fallback(value: Any, decorator_default: Any, workflow_default: Any) -> Any:
    """Hatchet's rule: the workflow's TaskDefaults apply only where the decorator
    argument equals the decorator's own default."""
    if value == decorator_default and workflow_default is not None:
        return workflow_default
    return value


def _topological(workflow: str, parents: dict[str, tuple[str, ...]]) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        mark = state.get(name, 0)
        if mark == 2:
            return
        if mark == 1:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise InvalidDefinitionError(f"workflow {workflow!r}: tasks form a cycle: {cycle}")
        state[name] = 1
        for parent in parents[name]:
            if parent not in parents:
                raise InvalidDefinitionError(
                    f"workflow {workflow!r}, task {name!r}: unknown parent {parent!r}"
                )
            visit(parent, [*path, name])
        state[name] = 2
        order.append(name)

    for name in parents:
        visit(name, [])
    return order
