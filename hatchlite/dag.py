"""Workflow and task definitions: the decorators, their validation, and the DAG shape.

Nothing here does I/O. A definition error raises `InvalidDefinitionError` (a
`ValueError`) naming the workflow, the task and what is wrong, at decoration time.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast, overload

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from hatchlite.conditions import Condition, OrGroup, flatten
from hatchlite.exceptions import IllegalTaskOutputError, InvalidDefinitionError
from hatchlite.store.records import TaskShape, WorkflowShape
from hatchlite.types import (
    DEFAULT_EVICTION_POLICY,
    ConcurrencyExpression,
    DefaultFilter,
    DesiredWorkerLabel,
    Duration,
    EmptyModel,
    EvictionPolicy,
    JSONMap,
    Priority,
    RateLimit,
    StepType,
    StickyStrategy,
    TaskDefaults,
    to_timedelta,
)

if TYPE_CHECKING:
    from hatchlite.context import Context
    from hatchlite.durable import DurableContext

TWorkflowInput = TypeVar("TWorkflowInput")
R = TypeVar("R")

DEFAULT_SCHEDULE_TIMEOUT = timedelta(minutes=5)
DEFAULT_EXECUTION_TIMEOUT = timedelta(seconds=60)
DEFAULT_RETRIES = 0

TaskFunc = Callable[[Any, Any], Any]
R2 = TypeVar("R2")


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


@dataclasses.dataclass
class WorkflowConfig:
    """The `hatchet.workflow(...)` / `hatchet.task(...)` parameters of one workflow."""

    name: str
    description: str | None = None
    input_validator: type[Any] | None = None
    on_events: list[str] = dataclasses.field(default_factory=list)
    on_crons: list[str] = dataclasses.field(default_factory=list)
    cron_input: Any = None
    version: str | None = None
    sticky: StickyStrategy | None = None
    default_priority: int = Priority.LOW
    concurrency: list[ConcurrencyExpression] = dataclasses.field(default_factory=list)
    task_defaults: TaskDefaults = dataclasses.field(default_factory=TaskDefaults)
    default_filters: list[DefaultFilter] = dataclasses.field(default_factory=list)
    default_additional_metadata: JSONMap = dataclasses.field(default_factory=dict)
    idempotency: Any = None


def normalize_concurrency(
    value: int | ConcurrencyExpression | list[ConcurrencyExpression] | None, where: str
) -> list[ConcurrencyExpression]:
    if value is None:
        return []
    if isinstance(value, bool):
        raise InvalidDefinitionError(f"{where}: invalid concurrency {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise InvalidDefinitionError(f"{where}: concurrency must be a positive number of runs")
        return [ConcurrencyExpression.from_int(value)]
    if isinstance(value, ConcurrencyExpression):
        return [value]
    return list(value)


def check_priority(priority: int | None, where: str) -> int | None:
    if priority is None:
        return None
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 3:
        raise ValueError(
            f"{where}: priority must be 1, 2 or 3 (Priority.LOW/MEDIUM/HIGH), got {priority!r}"
        )
    return int(priority)


def _return_type(fn: Callable[..., Any]) -> Any:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = getattr(fn, "__annotations__", {})
    if "return" not in hints:
        return EmptyModel
    ret = hints["return"]
    if ret is None or ret is type(None):
        return EmptyModel
    return ret


def _check_signature(fn: Callable[..., Any], where: str) -> None:
    if not callable(fn):
        raise InvalidDefinitionError(f"{where}: the decorated object is not a function")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    positional = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    has_varargs = any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values())
    if len(positional) < 2 and not has_varargs:
        raise InvalidDefinitionError(
            f"{where}: a task function takes (input, ctx); {fn.__name__} takes "
            f"{len(positional)} positional parameter(s)"
        )


class Task(Generic[TWorkflowInput, R]):
    """One task of a workflow, as declared by a decorator."""

    def __init__(
        self,
        *,
        fn: TaskFunc,
        workflow: WorkflowDefinition[TWorkflowInput],
        type: StepType,
        name: str,
        schedule_timeout: timedelta,
        execution_timeout: timedelta,
        parents: list[Task[TWorkflowInput, Any]],
        retries: int,
        rate_limits: list[RateLimit],
        desired_worker_labels: dict[str, DesiredWorkerLabel],
        backoff_factor: float | None,
        backoff_max_seconds: int | None,
        concurrency: list[ConcurrencyExpression],
        wait_for: list[Condition | OrGroup],
        skip_if: list[Condition | OrGroup],
        cancel_if: list[Condition | OrGroup],
        slot_cost: int,
        is_durable: bool,
        eviction_policy: EvictionPolicy | None,
    ) -> None:
        self.fn = fn
        self.workflow = workflow
        self.type = type
        self.name = name
        self.schedule_timeout = schedule_timeout
        self.execution_timeout = execution_timeout
        self.parents = parents
        self.retries = retries
        self.rate_limits = rate_limits
        self.desired_worker_labels = desired_worker_labels
        self.backoff_factor = backoff_factor
        self.backoff_max_seconds = backoff_max_seconds
        self.concurrency = concurrency
        self.wait_for = flatten(wait_for)
        self.skip_if = flatten(skip_if)
        self.cancel_if = flatten(cancel_if)
        self.slot_cost = slot_cost
        self.is_durable = is_durable
        self.eviction_policy = eviction_policy
        self.is_async_function = inspect.iscoroutinefunction(fn)
        self.output_validator_type: Any = _return_type(fn)
        self.output_validator: TypeAdapter[Any] = TypeAdapter(self.output_validator_type)

    def __repr__(self) -> str:
        return f"<Task {self.workflow.name}:{self.name}>"

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def backoff_seconds(self, retry_number: int) -> float:
        """Delay before retry `retry_number` (1-based), as Hatchet's engine computes it."""
        if not self.backoff_factor:
            return 0.0
        cap = self.backoff_max_seconds or 86400
        try:
            return float(min(cap, self.backoff_factor**retry_number))
        except OverflowError:
            return float(cap)

    # -- outputs ---------------------------------------------------------------

    def dump_output(self, value: Any) -> str | None:
        """JSON text of a task's return value; None when it returned nothing (falsy)."""
        if not value:
            if isinstance(value, BaseModel) or dataclasses.is_dataclass(value):
                pass  # an empty model is still an output
            else:
                return None
        if isinstance(value, dict):
            try:
                text = json.dumps(value, separators=(",", ":"))
            except (TypeError, ValueError):
                text = json.dumps(to_jsonable_python(value), separators=(",", ":"))
        elif isinstance(value, BaseModel):
            text = value.model_dump_json()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            text = TypeAdapter(type(value)).dump_json(value).decode()
        else:
            raise IllegalTaskOutputError(
                f"Tasks must return either a dictionary, a Pydantic BaseModel, or a dataclass; "
                f"task {self.name!r} of workflow {self.workflow.name!r} returned "
                f"{type(value).__name__}"
            )
        if "\\u0000" in text:
            raise IllegalTaskOutputError(
                f"task {self.name!r} returned output containing a NUL character (\\u0000)"
            )
        return text

    def parse_output(self, text: str | None) -> R:
        """The stored output validated into the task's declared return type."""
        data = json.loads(text) if text else {}
        return cast(R, self.output_validator.validate_python(data))

    # -- unit testing ------------------------------------------------------------

    def mock_run(
        self,
        input: TWorkflowInput | None = None,
        additional_metadata: JSONMap | None = None,
        parent_outputs: dict[str, JSONMap] | None = None,
        retry_count: int = 0,
        lifespan: Any = None,
        dependencies: dict[str, Any] | None = None,
    ) -> R:
        """Call the function with a fake context, outside any engine."""
        if self.is_async_function:
            raise TypeError(f"{self.name} is async; use aio_mock_run")
        ctx = self._mock_context(additional_metadata, parent_outputs, retry_count, lifespan)
        return cast(R, self.fn(self._mock_input(input), ctx, **(dependencies or {})))

    async def aio_mock_run(
        self,
        input: TWorkflowInput | None = None,
        additional_metadata: JSONMap | None = None,
        parent_outputs: dict[str, JSONMap] | None = None,
        retry_count: int = 0,
        lifespan: Any = None,
        dependencies: dict[str, Any] | None = None,
    ) -> R:
        if not self.is_async_function:
            raise TypeError(f"{self.name} is not async; use mock_run")
        ctx = self._mock_context(additional_metadata, parent_outputs, retry_count, lifespan)
        result = self.fn(self._mock_input(input), ctx, **(dependencies or {}))
        return cast(R, await result)

    def _mock_input(self, input: Any) -> Any:
        if input is None:
            return self.workflow.input_adapter.validate_python({})
        return input

    def _mock_context(
        self,
        additional_metadata: JSONMap | None,
        parent_outputs: dict[str, JSONMap] | None,
        retry_count: int,
        lifespan: Any,
    ) -> Context:
        from hatchlite.context import mock_context

        return mock_context(
            self,
            additional_metadata=additional_metadata or {},
            parent_outputs=parent_outputs or {},
            retry_count=retry_count,
            lifespan=lifespan,
        )


class WorkflowDefinition(Generic[TWorkflowInput]):
    """The tasks of one workflow and the decorators that declare them."""

    def __init__(self, config: WorkflowConfig) -> None:
        self.config = config
        self.tasks: list[Task[TWorkflowInput, Any]] = []
        self._on_failure: Task[TWorkflowInput, Any] | None = None
        self._on_success: Task[TWorkflowInput, Any] | None = None
        self._shape: WorkflowShape | None = None
        self._by_name: dict[str, Task[TWorkflowInput, Any]] | None = None
        validator = config.input_validator or EmptyModel
        self.input_validator_type: Any = validator
        try:
            self.input_adapter: TypeAdapter[Any] = TypeAdapter(validator)
        except Exception as exc:
            raise InvalidDefinitionError(
                f"workflow {config.name!r}: input_validator {validator!r} is not a pydantic "
                f"model, dataclass or dict type: {exc}"
            ) from exc

    @property
    def name(self) -> str:
        return self.config.name

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

        def decorator(fn: Callable[..., Any]) -> Task[TWorkflowInput, Any]:
            return self._add(
                fn,
                StepType.DEFAULT,
                name,
                schedule_timeout,
                execution_timeout,
                parents,
                retries,
                rate_limits,
                desired_worker_labels,
                backoff_factor,
                backoff_max_seconds,
                concurrency,
                wait_for,
                skip_if,
                cancel_if,
                slot_cost,
                is_durable=False,
                eviction_policy=None,
                apply_defaults=True,
            )

        return cast("TaskDecorator[TWorkflowInput]", decorator)

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

        def decorator(fn: Callable[..., Any]) -> Task[TWorkflowInput, Any]:
            return self._add(
                fn,
                StepType.DEFAULT,
                name,
                schedule_timeout,
                execution_timeout,
                parents,
                retries,
                rate_limits,
                desired_worker_labels,
                backoff_factor,
                backoff_max_seconds,
                concurrency,
                wait_for,
                skip_if,
                cancel_if,
                None,
                is_durable=True,
                eviction_policy=eviction_policy,
                apply_defaults=True,
            )

        return cast("DurableTaskDecorator[TWorkflowInput]", decorator)

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

        def decorator(fn: Callable[..., Any]) -> Task[TWorkflowInput, Any]:
            if self._on_failure is not None:
                raise InvalidDefinitionError(
                    f"workflow {self.name!r} already has an on_failure task "
                    f"({self._on_failure.name!r}); only one is allowed"
                )
            task = self._add(
                fn,
                StepType.ON_FAILURE,
                name,
                schedule_timeout,
                execution_timeout,
                None,
                retries,
                rate_limits,
                None,
                backoff_factor,
                backoff_max_seconds,
                concurrency,
                None,
                None,
                None,
                None,
                is_durable=False,
                eviction_policy=None,
                apply_defaults=False,
            )
            self._on_failure = task
            return task

        return cast("TaskDecorator[TWorkflowInput]", decorator)

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

        def decorator(fn: Callable[..., Any]) -> Task[TWorkflowInput, Any]:
            if self._on_success is not None:
                raise InvalidDefinitionError(
                    f"workflow {self.name!r} already has an on_success task "
                    f"({self._on_success.name!r}); only one is allowed"
                )
            task = self._add(
                fn,
                StepType.ON_SUCCESS,
                name,
                schedule_timeout,
                execution_timeout,
                None,
                retries,
                rate_limits,
                None,
                backoff_factor,
                backoff_max_seconds,
                concurrency,
                None,
                None,
                None,
                None,
                is_durable=False,
                eviction_policy=None,
                apply_defaults=False,
            )
            self._on_success = task
            return task

        return cast("TaskDecorator[TWorkflowInput]", decorator)

    # -- building ----------------------------------------------------------------

    def _add(
        self,
        fn: Callable[..., Any],
        step_type: StepType,
        name: str | None,
        schedule_timeout: Duration,
        execution_timeout: Duration,
        parents: list[Task[TWorkflowInput, Any]] | None,
        retries: int,
        rate_limits: list[RateLimit] | None,
        desired_worker_labels: dict[str, DesiredWorkerLabel] | list[DesiredWorkerLabel] | None,
        backoff_factor: float | None,
        backoff_max_seconds: int | None,
        concurrency: int | ConcurrencyExpression | list[ConcurrencyExpression] | None,
        wait_for: list[Condition | OrGroup] | None,
        skip_if: list[Condition | OrGroup] | None,
        cancel_if: list[Condition | OrGroup] | None,
        slot_cost: int | None,
        *,
        is_durable: bool,
        eviction_policy: EvictionPolicy | None,
        apply_defaults: bool,
    ) -> Task[TWorkflowInput, Any]:
        base = (name or getattr(fn, "__name__", "") or "").lower()
        if not base:
            raise InvalidDefinitionError(f"workflow {self.name!r}: a task needs a name")
        suffix = {StepType.ON_FAILURE: "-on-failure", StepType.ON_SUCCESS: "-on-success"}
        task_name = base + suffix.get(step_type, "")
        where = f"workflow {self.name!r}, task {task_name!r}"
        _check_signature(fn, where)
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
        )
        keys = [c.readable_data_key for c in (*task.wait_for, *task.skip_if, *task.cancel_if)]
        if len(keys) != len(set(keys)):
            raise InvalidDefinitionError(
                f"{where}: conditions need distinct readable_data_keys, got {keys}"
            )
        if step_type is StepType.DEFAULT:
            self.tasks.append(task)
        self._shape = None
        self._by_name = None
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
            )

        shapes = {name: task_shape(name) for name in order}
        on_failure = task_shape(self._on_failure.name) if self._on_failure else None
        count = len(shapes) + (1 if on_failure else 0)
        self._shape = WorkflowShape(self.name, shapes, on_failure, is_dag=count > 1)
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
                value = self.input_adapter.validate_python(input)
            return self.input_adapter.dump_json(value).decode()
        except ValidationError as exc:
            raise InputValidationError(
                f"input for workflow {self.name!r} does not validate against "
                f"{getattr(self.input_validator_type, '__name__', self.input_validator_type)}: "
                f"{exc}"
            ) from exc

    def parse_input(self, text: str) -> Any:
        return self.input_adapter.validate_json(text)


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
