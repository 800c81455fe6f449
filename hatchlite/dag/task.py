"""Task definitions: `Task`, its output rules, and the checks shared by decorators.

Nothing here does I/O. A definition error raises `InvalidDefinitionError` (a
`ValueError`) naming the workflow, the task and what is wrong, at decoration time.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import json
import typing
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_jsonable_python

from hatchlite.conditions import Condition, OrGroup, flatten
from hatchlite.dag.depends import Dependency, task_dependencies
from hatchlite.exceptions import IllegalTaskOutputError, InvalidDefinitionError
from hatchlite.serde import HATCHET_PYDANTIC_SENTINEL as SERDE
from hatchlite.types import (
    BatchTaskConfig,
    ConcurrencyExpression,
    DefaultFilter,
    DesiredWorkerLabel,
    EmptyModel,
    EvictionPolicy,
    JSONMap,
    Priority,
    RateLimit,
    StepType,
    StickyStrategy,
    TaskDefaults,
)

if TYPE_CHECKING:
    from hatchlite.context import Context
    from hatchlite.dag.workflow import WorkflowDefinition

TWorkflowInput = TypeVar("TWorkflowInput")
R = TypeVar("R")

DEFAULT_SCHEDULE_TIMEOUT = timedelta(minutes=5)
DEFAULT_EXECUTION_TIMEOUT = timedelta(seconds=60)
DEFAULT_RETRIES = 0

TaskFunc = Callable[[Any, Any], Any]


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
    cron_missed: str = "latest"  # hatchlite: which missed cron ticks fire (hatchlite/cron.py)


def normalize_concurrency(
    value: int | ConcurrencyExpression | Sequence[ConcurrencyExpression] | None, where: str
) -> list[ConcurrencyExpression]:
    """The concurrency limits of a definition as a list, each checked (CEL key parses,
    `max_runs` positive, a strategy hatchlite enforces)."""
    from hatchlite.limits import concurrency_specs

    if value is None:
        return []
    if isinstance(value, bool | str | bytes):
        raise InvalidDefinitionError(f"{where}: invalid concurrency {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise InvalidDefinitionError(f"{where}: concurrency must be a positive number of runs")
        return [ConcurrencyExpression.from_int(value)]
    limits = [value] if isinstance(value, ConcurrencyExpression) else list(value)
    try:
        concurrency_specs(limits, where)
    except ValueError as exc:
        raise InvalidDefinitionError(str(exc)) from exc
    return limits


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
    if ret is None or ret is type(None) or ret == "None":  # (unresolved hints are text)
        return EmptyModel
    return ret


def check_signature(fn: Callable[..., Any], where: str) -> None:
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
        batch: BatchTaskConfig | None = None,
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
        self.batch = batch
        self.is_async_function = inspect.iscoroutinefunction(fn)
        # `Depends` parameters, checked now; empty for most tasks (then no cost per attempt)
        self.dependencies: tuple[Dependency, ...] = task_dependencies(
            fn, f"workflow {workflow.name!r}, task {name!r}"
        )
        self.output_validator_type: Any = _return_type(fn)
        if batch is not None and not batch.broadcast_output:
            # A batch handler returns {member id: output}: each member's output is
            # validated with the dict's value type.
            if typing.get_origin(self.output_validator_type) is dict:
                self.output_validator_type = typing.get_args(self.output_validator_type)[1]
            elif self.output_validator_type is EmptyModel:
                self.output_validator_type = Any
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
                # Models (or dataclasses) inside: dumped by the return annotation when it
                # is a mapping type, with the serialization context, as Hatchet does.
                text = self._dump_mapping(value)
        elif isinstance(value, BaseModel):
            text = value.model_dump_json(context=SERDE)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            text = TypeAdapter(type(value)).dump_json(value, context=SERDE).decode()
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

    def _dump_mapping(self, value: dict[Any, Any]) -> str:
        annotation = self.output_validator_type
        if annotation is dict or typing.get_origin(annotation) in (dict, collections.abc.Mapping):
            try:
                return self.output_validator.dump_json(
                    value, context=SERDE, warnings=False
                ).decode()
            except Exception:
                pass  # a value the annotation does not describe: dumped as it is
        jsonable = to_jsonable_python(value, context=SERDE)
        return json.dumps(jsonable, separators=(",", ":"))

    def parse_output(self, text: str | None) -> R:
        """The stored output validated into the task's declared return type."""
        data = json.loads(text) if text else {}
        return cast(R, self.output_validator.validate_python(data, context=SERDE))

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
        """Call the function with a fake context, outside any engine. `Depends`
        parameters are not resolved (as in Hatchet): pass their values as
        `dependencies={"name": value}`."""
        if self.is_async_function:
            raise TypeError(f"{self.name} is not a sync function. Use `aio_mock_run` instead.")
        value = self._mock_input(input)
        ctx = self._mock_context(value, additional_metadata, parent_outputs, retry_count, lifespan)
        kwargs = self._mock_dependencies(dependencies)
        return cast(R, self.fn(value, ctx, **kwargs))

    async def aio_mock_run(
        self,
        input: TWorkflowInput | None = None,
        additional_metadata: JSONMap | None = None,
        parent_outputs: dict[str, JSONMap] | None = None,
        retry_count: int = 0,
        lifespan: Any = None,
        dependencies: dict[str, Any] | None = None,
    ) -> R:
        """The `async` form of `mock_run`."""
        if not self.is_async_function:
            raise TypeError(f"{self.name} is not an async function. Use `mock_run` instead.")
        value = self._mock_input(input)
        ctx = self._mock_context(value, additional_metadata, parent_outputs, retry_count, lifespan)
        kwargs = self._mock_dependencies(dependencies)
        result = self.fn(value, ctx, **kwargs)
        return cast(R, await result)

    def _mock_dependencies(self, dependencies: dict[str, Any] | None) -> dict[str, Any]:
        """The keyword arguments of a mock run; a `TypeError` (the one the call would
        raise) that says what to pass when a dependency without a default is missing."""
        given = dict(dependencies or {})
        if not self.dependencies:
            return given
        params = inspect.signature(self.fn).parameters
        missing = [
            d.name
            for d in self.dependencies
            if d.name not in given and params[d.name].default is inspect.Parameter.empty
        ]
        if missing:
            raise TypeError(
                f"task {self.name!r} has dependencies {missing} with no default: a mock run "
                f"does not resolve `Depends` (as in Hatchet); pass their values as "
                f"dependencies={{{', '.join(f'{n!r}: ...' for n in missing)}}}"
            )
        return given

    def _mock_input(self, input: Any) -> Any:
        if input is None:
            return self.workflow.input_adapter.validate_python({})
        return input

    def _mock_context(
        self,
        input: Any,
        additional_metadata: JSONMap | None,
        parent_outputs: dict[str, JSONMap] | None,
        retry_count: int,
        lifespan: Any,
    ) -> Context:
        from hatchlite.context import mock_context

        return mock_context(
            self,
            input_json=json.dumps(to_jsonable_python(input, context=SERDE)),
            additional_metadata=additional_metadata or {},
            parent_outputs=parent_outputs or {},
            retry_count=retry_count,
            lifespan=lifespan,
        )
