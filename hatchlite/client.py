"""`Hatchet`: the client. Several clients on one database share one engine."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast, overload

from pydantic import BaseModel, Field, field_validator

from hatchlite.clock import SYSTEM_CLOCK, Clock
from hatchlite.context import Context, running_task_engine
from hatchlite.cron import MissedTicks
from hatchlite.dag import (
    DEFAULT_EXECUTION_TIMEOUT,
    DEFAULT_SCHEDULE_TIMEOUT,
    TWorkflowInput,
    WorkflowConfig,
    normalize_concurrency,
)
from hatchlite.dag.registry import Definitions
from hatchlite.dag.site import definition_site, warn_user
from hatchlite.dag.task import check_priority
from hatchlite.exceptions import UnenforcedParameterWarning
from hatchlite.features.cron import CronClient
from hatchlite.features.events import EventClient
from hatchlite.features.filters import CELClient, FiltersClient
from hatchlite.features.logs import LogsClient
from hatchlite.features.metrics import MetricsClient
from hatchlite.features.rate_limits import RateLimitsClient
from hatchlite.features.runs import RunsClient
from hatchlite.features.scheduled import ScheduledClient
from hatchlite.features.workers import WorkersClient
from hatchlite.features.workflows import WorkflowsClient
from hatchlite.runnables import (
    BatchStandaloneDecorator,
    DurableStandaloneDecorator,
    Standalone,
    StandaloneDecorator,
    Workflow,
)
from hatchlite.scheduler.engine import Engine
from hatchlite.scheduler.runtime import RUNTIME
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
    StickyStrategy,
    TaskDefaults,
)
from hatchlite.worker import LifespanFn, Worker

T = TypeVar("T")

DEFAULT_DB = "hatchlite.db"


class ClientConfig(BaseModel):
    """Hatchet's client settings; hatchlite reads the namespace and ignores the rest
    (token, addresses, TLS) so configs written for Hatchet load unchanged."""

    namespace: str = Field(
        default_factory=lambda: os.environ.get("HATCHET_CLIENT_NAMESPACE", ""),
        validate_default=True,
    )
    token: str | None = Field(default_factory=lambda: os.environ.get("HATCHET_CLIENT_TOKEN"))
    tenant_id: str = "hatchlite"
    server_url: str = "hatchlite://local"
    debug: bool = False
    worker_preset_labels: dict[str, str] = Field(default_factory=dict)
    enable_force_kill_sync_threads: bool = False
    terminate_worker_after_num_tasks: int | None = None
    disable_log_capture: bool = False
    force_shutdown_on_shutdown_signal: bool = False
    # The largest input, output, event payload or metadata hatchlite stores (bytes of
    # JSON): Hatchet's gRPC message limit, which bounds the same things there.
    grpc_max_send_message_length: int = Field(
        default_factory=lambda: int(
            os.environ.get("HATCHET_CLIENT_GRPC_MAX_SEND_MESSAGE_LENGTH", 4 * 1024 * 1024)
        ),
        gt=0,
    )

    model_config = {"extra": "allow"}

    @field_validator("namespace")
    @classmethod
    def _normalize(cls, value: str) -> str:
        value = value.strip().lower()
        return value if not value or value.endswith("_") else value + "_"

    def apply_namespace(self, name: str, namespace_override: str | None = None) -> str:
        namespace = self.namespace if namespace_override is None else namespace_override
        if not namespace or name.startswith(namespace):
            return name
        return namespace + name


class _Engines:
    """Engines of this process, one per database file (each `:memory:` is its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[str, Engine] = {}
        self._definitions: dict[str, Definitions[Any]] = {}

    @staticmethod
    def key(path: str) -> str:
        if path == ":memory:" or path.startswith("file:"):
            return path
        return os.path.realpath(path)

    def get(self, key: str, clock: Clock | None, synchronous: str) -> Engine:
        with self._lock:
            engine = self._engines.get(key)
            if engine is not None and not engine.closed:
                if clock is not None and engine.clock is not clock:
                    raise ValueError(
                        f"the engine for {key} already runs on another clock; pass the same "
                        f"clock object to every Hatchet() on one database"
                    )
                return engine
            engine = Engine(key, clock=clock or SYSTEM_CLOCK, synchronous=synchronous)
            # Each `:memory:` database is its own; a file's definitions outlive its engine.
            engine.defined = (
                Definitions()
                if key == ":memory:"
                else self._definitions.setdefault(key, Definitions())
            )
            if key != ":memory:":
                self._engines[key] = engine
            RUNTIME.on_shutdown(engine.close)
            return engine

    def closed(self, engine: Engine) -> None:
        """`engine` was closed: forget it (its file's definitions stay)."""
        with self._lock:
            if self._engines.get(engine.path) is engine:
                del self._engines[engine.path]
        RUNTIME.forget(engine.close)


ENGINES = _Engines()


class Hatchet:
    """The entry point: define workflows and tasks, run them, start workers.

    hatchlite extras (names Hatchet does not use): `db` (a SQLite path or ":memory:";
    default: `$HATCHLITE_DB`, else `hatchlite.db`), `auto_worker` (run tasks in this
    process without an explicit worker; default on unless `HATCHLITE_AUTO_WORKER=0`),
    `clock` (a `hatchlite.testing.TestClock`), `synchronous` (SQLite's setting).
    """

    def __init__(
        self,
        debug: bool | None = None,
        client: Any = None,
        config: ClientConfig | None = None,
        *,
        db: str | None = None,
        auto_worker: bool | None = None,
        clock: Clock | None = None,
        synchronous: str = "NORMAL",
    ) -> None:
        self.config = config or ClientConfig()
        unenforced = [
            name
            for name in ("enable_force_kill_sync_threads", "terminate_worker_after_num_tasks")
            if getattr(self.config, name)
        ]
        if unenforced:
            warn_user(
                f"ClientConfig: {', '.join(unenforced)} accepted but not enforced yet by "
                f"hatchlite (see docs/differences.md)",
                UnenforcedParameterWarning,
            )
        self.db = db or os.environ.get("HATCHLITE_DB") or DEFAULT_DB
        if auto_worker is None:
            auto_worker = os.environ.get("HATCHLITE_AUTO_WORKER", "1").lower() not in (
                "0",
                "false",
                "no",
                "off",
            )
        self._auto_worker = auto_worker
        self._key = ENGINES.key(self.db)
        self._clock = clock
        self._synchronous = synchronous
        self._own_engine: Engine | None = None
        self._follows_task_engine = False  # see hatchlite.testing.redirect
        if self._key == ":memory:":
            self._own_engine = ENGINES.get(self._key, clock, synchronous)
        else:
            ENGINES.get(self._key, clock, synchronous)  # fail early on a clock mismatch
        self.runs = RunsClient(self)
        self.event = EventClient(self)
        self.logs = LogsClient(self)
        self.workers = WorkersClient(self)
        self.rate_limits = RateLimitsClient(self)
        self.cron = CronClient(self)
        self.scheduled = ScheduledClient(self)
        self.workflows = WorkflowsClient(self)
        self.metrics = MetricsClient(self)
        self.filters = FiltersClient(self)
        self.cel = CELClient()

    @property
    def _engine(self) -> Engine:
        if self._follows_task_engine:
            engine = running_task_engine()
            if engine is not None:
                return engine
        if self._own_engine is not None:
            return self._own_engine
        return ENGINES.get(self._key, self._clock, self._synchronous)

    @property
    def clock(self) -> Clock:
        """The clock deadlines are read from (hatchlite extra)."""
        return self._engine.clock

    @property
    def namespace(self) -> str:
        return self.config.namespace

    @property
    def tenant_id(self) -> str:
        return self.config.tenant_id

    @property
    def current_context(self) -> Context | None:
        from hatchlite.context import current_context

        return current_context.get()

    def get_current_context(self) -> Context | None:
        return self.current_context

    async def aio_get_engine_version(self) -> str:
        return "v99.0.0"

    # -- definitions -------------------------------------------------------------

    def _config(
        self,
        name: str,
        description: str | None,
        input_validator: Any,
        on_events: list[str] | None,
        on_crons: list[str] | None,
        cron_input: Any,
        version: str | None,
        sticky: StickyStrategy | None,
        default_priority: int,
        concurrency: Any,
        task_defaults: TaskDefaults,
        default_filters: list[DefaultFilter] | None,
        default_additional_metadata: JSONMap | None,
        idempotency: Any,
        cron_missed: str = "latest",
    ) -> WorkflowConfig:
        if not name:
            raise ValueError("a workflow needs a name")
        full_name = self.config.apply_namespace(name)
        return WorkflowConfig(
            name=full_name,
            description=description,
            input_validator=input_validator,
            on_events=[self.config.apply_namespace(e) for e in on_events or []],
            on_crons=list(on_crons or []),
            cron_input=cron_input,
            version=version,
            sticky=sticky,
            default_priority=check_priority(default_priority, f"workflow {full_name!r}")
            or Priority.LOW,
            concurrency=normalize_concurrency(concurrency, f"workflow {full_name!r}"),
            task_defaults=task_defaults,
            default_filters=list(default_filters or []),
            default_additional_metadata=dict(default_additional_metadata or {}),
            idempotency=idempotency,
            cron_missed=cron_missed,
        )

    @overload
    def workflow(
        self,
        *,
        name: str,
        description: str | None = None,
        input_validator: None = None,
        on_events: list[str] | None = None,
        on_crons: list[str] | None = None,
        cron_input: EmptyModel | None = None,
        cron_missed: MissedTicks = "latest",
        version: str | None = None,
        sticky: StickyStrategy | None = None,
        default_priority: int = Priority.LOW,
        concurrency: int | ConcurrencyExpression | list[ConcurrencyExpression] | None = None,
        task_defaults: TaskDefaults | None = None,
        default_filters: list[DefaultFilter] | None = None,
        default_additional_metadata: JSONMap | None = None,
        idempotency: Any = None,
    ) -> Workflow[EmptyModel]: ...

    @overload
    def workflow(
        self,
        *,
        name: str,
        description: str | None = None,
        input_validator: type[TWorkflowInput],
        on_events: list[str] | None = None,
        on_crons: list[str] | None = None,
        cron_input: TWorkflowInput | None = None,
        cron_missed: MissedTicks = "latest",
        version: str | None = None,
        sticky: StickyStrategy | None = None,
        default_priority: int = Priority.LOW,
        concurrency: int | ConcurrencyExpression | list[ConcurrencyExpression] | None = None,
        task_defaults: TaskDefaults | None = None,
        default_filters: list[DefaultFilter] | None = None,
        default_additional_metadata: JSONMap | None = None,
        idempotency: Any = None,
    ) -> Workflow[TWorkflowInput]: ...

    def workflow(
        self,
        *,
        name: str,
        description: str | None = None,
        input_validator: type[TWorkflowInput] | None = None,
        on_events: list[str] | None = None,
        on_crons: list[str] | None = None,
        cron_input: TWorkflowInput | None = None,
        cron_missed: MissedTicks = "latest",
        version: str | None = None,
        sticky: StickyStrategy | None = None,
        default_priority: int = Priority.LOW,
        concurrency: int | ConcurrencyExpression | list[ConcurrencyExpression] | None = None,
        task_defaults: TaskDefaults | None = None,
        default_filters: list[DefaultFilter] | None = None,
        default_additional_metadata: JSONMap | None = None,
        idempotency: Any = None,
    ) -> Workflow[TWorkflowInput]:
        """Declare a workflow; add tasks with `@wf.task(...)`."""
        config = self._config(
            name,
            description,
            input_validator,
            on_events,
            on_crons,
            cron_input,
            version,
            sticky,
            default_priority,
            concurrency,
            task_defaults or TaskDefaults(),
            default_filters,
            default_additional_metadata,
            idempotency,
            cron_missed,
        )
        wf: Workflow[TWorkflowInput] = Workflow(config, self)
        self._engine.define(wf)
        return wf

    def _standalone(
        self,
        fn: Callable[..., Any],
        *,
        durable: bool,
        name: str | None,
        kwargs: dict[str, Any],
        batch: dict[str, Any] | None = None,
    ) -> Standalone[Any, Any]:
        wf_name = name or fn.__name__
        config = self._config(
            wf_name,
            kwargs["description"],
            kwargs["input_validator"],
            kwargs["on_events"],
            kwargs["on_crons"],
            kwargs["cron_input"],
            kwargs["version"],
            kwargs["sticky"],
            kwargs["default_priority"],
            None,
            TaskDefaults(),
            kwargs["default_filters"],
            kwargs["default_additional_metadata"],
            kwargs["idempotency"],
            kwargs["cron_missed"],
        )
        standalone: Standalone[Any, Any] = Standalone(config, self, definition_site(fn))
        common = dict(
            name=wf_name,
            schedule_timeout=kwargs["schedule_timeout"],
            execution_timeout=kwargs["execution_timeout"],
            retries=kwargs["retries"],
            rate_limits=kwargs["rate_limits"],
            desired_worker_labels=kwargs["desired_worker_labels"],
            backoff_factor=kwargs["backoff_factor"],
            backoff_max_seconds=kwargs["backoff_max_seconds"],
            concurrency=kwargs["concurrency"],
        )
        if batch is not None:
            del common["concurrency"]
            standalone._task = standalone.batch_task(**common, **batch)(fn)
        elif durable:
            standalone._task = standalone.durable_task(
                **common, eviction_policy=kwargs["eviction_policy"]
            )(fn)
        else:
            standalone._task = standalone.task(**common, slot_cost=kwargs["slot_cost"])(fn)
        self._engine.define(standalone)
        return standalone

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        input_validator: None = None,
        on_events: list[str] | None = None,
        on_crons: list[str] | None = None,
        cron_input: Any = None,
        cron_missed: MissedTicks = "latest",
        version: str | None = None,
        sticky: StickyStrategy | None = None,
        default_priority: int = Priority.LOW,
        concurrency: int | ConcurrencyExpression | list[ConcurrencyExpression] | None = None,
        schedule_timeout: Duration = ...,
        execution_timeout: Duration = ...,
        retries: int = 0,
        rate_limits: list[RateLimit] | None = None,
        desired_worker_labels: dict[str, DesiredWorkerLabel]
        | list[DesiredWorkerLabel]
        | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        default_filters: list[DefaultFilter] | None = None,
        default_additional_metadata: JSONMap | None = None,
        idempotency: Any = None,
        slot_cost: int | None = None,
    ) -> StandaloneDecorator[EmptyModel]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        input_validator: type[TWorkflowInput],
        on_events: list[str] | None = None,
        on_crons: list[str] | None = None,
        cron_input: Any = None,
        cron_missed: MissedTicks = "latest",
        version: str | None = None,
        sticky: StickyStrategy | None = None,
        default_priority: int = Priority.LOW,
        concurrency: int | ConcurrencyExpression | list[ConcurrencyExpression] | None = None,
        schedule_timeout: Duration = ...,
        execution_timeout: Duration = ...,
        retries: int = 0,
        rate_limits: list[RateLimit] | None = None,
        desired_worker_labels: dict[str, DesiredWorkerLabel]
        | list[DesiredWorkerLabel]
        | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        default_filters: list[DefaultFilter] | None = None,
        default_additional_metadata: JSONMap | None = None,
        idempotency: Any = None,
        slot_cost: int | None = None,
    ) -> StandaloneDecorator[TWorkflowInput]: ...

    def task(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        input_validator: Any = None,
        on_events: list[str] | None = None,
        on_crons: list[str] | None = None,
        cron_input: Any = None,
        cron_missed: MissedTicks = "latest",
        version: str | None = None,
        sticky: StickyStrategy | None = None,
        default_priority: int = Priority.LOW,
        concurrency: int | ConcurrencyExpression | list[ConcurrencyExpression] | None = None,
        schedule_timeout: Duration = DEFAULT_SCHEDULE_TIMEOUT,
        execution_timeout: Duration = DEFAULT_EXECUTION_TIMEOUT,
        retries: int = 0,
        rate_limits: list[RateLimit] | None = None,
        desired_worker_labels: dict[str, DesiredWorkerLabel]
        | list[DesiredWorkerLabel]
        | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        default_filters: list[DefaultFilter] | None = None,
        default_additional_metadata: JSONMap | None = None,
        idempotency: Any = None,
        slot_cost: int | None = None,
    ) -> StandaloneDecorator[Any]:
        """Declare a standalone task: a workflow of one task, whose `run` returns the
        task's output."""
        kwargs = dict(locals())
        kwargs.pop("self")

        def decorator(fn: Callable[[Any, Context], Any]) -> Standalone[Any, Any]:
            return self._standalone(fn, durable=False, name=name, kwargs=kwargs)

        return cast("StandaloneDecorator[Any]", decorator)

    @overload
    def durable_task(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        input_validator: None = None,
        on_events: list[str] | None = None,
        on_crons: list[str] | None = None,
        cron_input: Any = None,
        cron_missed: MissedTicks = "latest",
        version: str | None = None,
        sticky: StickyStrategy | None = None,
        default_priority: int = Priority.LOW,
        concurrency: int | ConcurrencyExpression | list[ConcurrencyExpression] | None = None,
        schedule_timeout: Duration = ...,
        execution_timeout: Duration = ...,
        retries: int = 0,
        rate_limits: list[RateLimit] | None = None,
        desired_worker_labels: dict[str, DesiredWorkerLabel]
        | list[DesiredWorkerLabel]
        | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        default_filters: list[DefaultFilter] | None = None,
        default_additional_metadata: JSONMap | None = None,
        idempotency: Any = None,
        eviction_policy: EvictionPolicy | None = ...,
    ) -> DurableStandaloneDecorator[EmptyModel]: ...

    @overload
    def durable_task(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        input_validator: type[TWorkflowInput],
        on_events: list[str] | None = None,
        on_crons: list[str] | None = None,
        cron_input: Any = None,
        cron_missed: MissedTicks = "latest",
        version: str | None = None,
        sticky: StickyStrategy | None = None,
        default_priority: int = Priority.LOW,
        concurrency: int | ConcurrencyExpression | list[ConcurrencyExpression] | None = None,
        schedule_timeout: Duration = ...,
        execution_timeout: Duration = ...,
        retries: int = 0,
        rate_limits: list[RateLimit] | None = None,
        desired_worker_labels: dict[str, DesiredWorkerLabel]
        | list[DesiredWorkerLabel]
        | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        default_filters: list[DefaultFilter] | None = None,
        default_additional_metadata: JSONMap | None = None,
        idempotency: Any = None,
        eviction_policy: EvictionPolicy | None = ...,
    ) -> DurableStandaloneDecorator[TWorkflowInput]: ...

    def durable_task(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        input_validator: Any = None,
        on_events: list[str] | None = None,
        on_crons: list[str] | None = None,
        cron_input: Any = None,
        cron_missed: MissedTicks = "latest",
        version: str | None = None,
        sticky: StickyStrategy | None = None,
        default_priority: int = Priority.LOW,
        concurrency: int | ConcurrencyExpression | list[ConcurrencyExpression] | None = None,
        schedule_timeout: Duration = DEFAULT_SCHEDULE_TIMEOUT,
        execution_timeout: Duration = DEFAULT_EXECUTION_TIMEOUT,
        retries: int = 0,
        rate_limits: list[RateLimit] | None = None,
        desired_worker_labels: dict[str, DesiredWorkerLabel]
        | list[DesiredWorkerLabel]
        | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        default_filters: list[DefaultFilter] | None = None,
        default_additional_metadata: JSONMap | None = None,
        idempotency: Any = None,
        eviction_policy: EvictionPolicy | None = DEFAULT_EVICTION_POLICY,
    ) -> DurableStandaloneDecorator[Any]:
        """Declare a standalone durable task (see `DurableContext`)."""
        kwargs = dict(locals())
        kwargs.pop("self")

        def decorator(fn: Callable[[Any, Any], Any]) -> Standalone[Any, Any]:
            return self._standalone(fn, durable=True, name=name, kwargs=kwargs)

        return cast("DurableStandaloneDecorator[Any]", decorator)

    def batch_task(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        input_validator: Any = None,
        version: str | None = None,
        sticky: StickyStrategy | None = None,
        default_priority: int = Priority.LOW,
        schedule_timeout: Duration = DEFAULT_SCHEDULE_TIMEOUT,
        execution_timeout: Duration = DEFAULT_EXECUTION_TIMEOUT,
        rate_limits: list[RateLimit] | None = None,
        desired_worker_labels: dict[str, DesiredWorkerLabel]
        | list[DesiredWorkerLabel]
        | None = None,
        backoff_factor: float | None = None,
        backoff_max_seconds: int | None = None,
        default_filters: list[DefaultFilter] | None = None,
        batch_max_size: int = 1,
        batch_max_interval: timedelta | None = None,
        batch_group_key: str | None = None,
        batch_group_max_runs: int | None = None,
        broadcast_output: bool = False,
        retries: int = 0,
    ) -> BatchStandaloneDecorator[Any]:
        """Declare a standalone batch task (see `Workflow.batch_task`); `retries` is a
        hatchlite extra."""
        kwargs = dict(locals())
        kwargs.pop("self")
        kwargs.update(
            on_events=None,
            on_crons=None,
            cron_input=None,
            cron_missed="latest",
            default_additional_metadata=None,
            idempotency=None,
            concurrency=None,
        )
        batch = {
            "batch_max_size": batch_max_size,
            "batch_max_interval": batch_max_interval,
            "batch_group_key": batch_group_key,
            "batch_group_max_runs": batch_group_max_runs,
            "broadcast_output": broadcast_output,
        }

        def decorator(fn: Callable[[Any, Any], Any]) -> Standalone[Any, Any]:
            return self._standalone(fn, durable=False, name=name, kwargs=kwargs, batch=batch)

        return cast("BatchStandaloneDecorator[Any]", decorator)

    # -- workers -----------------------------------------------------------------

    def worker(
        self,
        name: str,
        slots: int | None = None,
        durable_slots: int | None = None,
        labels: dict[str, str | int] | None = None,
        workflows: list[Any] | None = None,
        lifespan: LifespanFn | None = None,
        *,
        shutdown_grace: float | None = 60.0,
    ) -> Worker:
        """A worker that serves `workflows` on `slots` slots once started.

        `shutdown_grace` (hatchlite extra): seconds a stopping worker waits for running
        tasks before re-queueing them; None waits without limit, as Hatchet does."""
        return Worker(
            self.config.apply_namespace(name),
            self,
            slots=slots,
            durable_slots=durable_slots,
            labels={**self.config.worker_preset_labels, **(labels or {})},
            workflows=workflows,
            lifespan=lifespan,
            shutdown_grace=shutdown_grace,
        )

    # -- hatchlite extras --------------------------------------------------------

    def close(self) -> None:
        """Close this client's engine: stop its workers and close the database."""
        engine = self._engine
        RUNTIME.call(engine.close)
        ENGINES.closed(engine)

    async def aio_close(self) -> None:
        engine = self._engine
        await RUNTIME.acall(engine.close)
        ENGINES.closed(engine)

    # -- Hatchet's embedded engine: hatchlite is one already -------------------------

    @classmethod
    def from_embedded(cls, config: ClientConfig | None = None) -> Hatchet:
        """Hatchet starts a local engine here; hatchlite is that engine, in the process:
        the same as `Hatchet(config=config)` (the database: `HATCHLITE_DB`, else
        hatchlite.db). `config.embedded` settings, if any, have no effect."""
        if config is not None and getattr(config, "embedded", None) is not None:
            warn_user(
                "ClientConfig.embedded has no effect on hatchlite: the engine is embedded",
                UnenforcedParameterWarning,
            )
        return cls(config=config)

    def stop_embedded(self) -> None:
        """Stop the engine (`close()`)."""
        self.close()

    async def aio_stop_embedded(self) -> None:
        await self.aio_close()
