"""Errors: hatchlite's own under `HatchliteError`, Hatchet's under Hatchet's names."""

from __future__ import annotations

import json
import traceback
from datetime import timedelta
from typing import Any


class HatchliteError(Exception):
    """Root of the errors hatchlite raises for its own reasons."""


class InvalidDefinitionError(HatchliteError, ValueError):
    """A workflow or task definition is invalid (unknown parent, duplicate name, ...)."""


class InputValidationError(HatchliteError, ValueError):
    """A trigger's input does not validate against the workflow's `input_validator`."""


class RunNotFoundError(HatchliteError, ValueError):
    """No workflow run or task run has the given id."""


class DatabaseError(HatchliteError):
    """The database file cannot be used (not a hatchlite database, newer schema, read-only)."""


class PayloadTooLargeError(HatchliteError, ValueError):
    """An input, output, event payload or metadata is larger than the size limit
    (`ClientConfig.grpc_max_send_message_length`, 4 MiB by default, as in Hatchet)."""

    @classmethod
    def check(cls, text: str, limit: int, what: str) -> None:
        """Raise if the UTF-8 form of `text` is over `limit` bytes; `what` names it."""
        if len(text) * 4 <= limit:
            return  # even all 4-byte characters would fit: skip encoding
        size = len(text) if len(text) > limit else len(text.encode())
        if size > limit:
            raise cls(
                f"{what} is {size:,} bytes of JSON or more, over the limit of {limit:,} "
                f"bytes (ClientConfig.grpc_max_send_message_length, as in Hatchet); store "
                f"large data elsewhere and pass a reference"
            )


class EngineClosedError(HatchliteError, RuntimeError):
    """The engine behind this client was closed."""


class SyncCallInEngineLoopError(HatchliteError, RuntimeError):
    """A blocking call was made from the engine's own event loop (inside an async task)."""


class UnenforcedParameterWarning(UserWarning):
    """A parameter hatchlite accepts (for Hatchet compatibility) but does not enforce yet."""


class NonRetryableException(Exception):
    """Raise from a task to fail the attempt without retrying."""


class RetryAfterException(Exception):
    """Raise from a task to retry it after `after` (a retry like any other: it counts
    against the task's `retries`), whatever its backoff."""

    def __init__(self, message: str = "", *, after: timedelta) -> None:
        super().__init__(message)
        self.after = after

    @property
    def after_ms(self) -> int:
        return int(self.after.total_seconds() * 1000)


class IllegalTaskOutputError(Exception):
    """A task returned something that is not a dict, pydantic model, dataclass or falsy value."""


class LifespanSetupError(Exception):
    """The worker's lifespan generator failed during setup or cleanup."""


class LoopAlreadyRunningError(Exception):
    """`worker.start()` was called from a thread that runs an event loop."""


class InvalidDependencyError(HatchliteError):
    """A `Depends(...)` function is invalid: too few parameters, a cycle, or a parameter
    nothing can fill (raised when the task is defined)."""


class DedupeViolationError(Exception):
    """A run with the same deduplication key already exists."""


class NonDeterminismError(Exception):
    """A durable task's replay made a call that does not match its recorded history."""

    def __init__(
        self,
        task_external_id: str,
        invocation_count: int,
        message: str,
        node_id: int,
    ) -> None:
        super().__init__(message)
        self.task_external_id = task_external_id
        self.invocation_count = invocation_count
        self.message = message
        self.node_id = node_id


class TaskRunError(Exception):
    """The error of one failed task run, as stored by the engine."""

    def __init__(
        self,
        exc: str,
        exc_type: str,
        trace: str,
        task_run_external_id: str | None = None,
    ) -> None:
        self.exc = exc
        self.exc_type = exc_type
        self.trace = trace
        self.task_run_external_id = task_run_external_id
        super().__init__(exc)

    def __str__(self) -> str:
        return self.serialize(include_metadata=False)

    def __repr__(self) -> str:
        return f"TaskRunError(exc_type={self.exc_type!r}, exc={self.exc!r})"

    def serialize(self, include_metadata: bool = False) -> str:
        text = f"{self.exc_type}: {self.exc}"
        if self.trace:
            text = f"{text}\n{self.trace}"
        if include_metadata and self.task_run_external_id:
            text = f"{text}\n\n[task_run_external_id={self.task_run_external_id}]"
        return text

    def to_json(self) -> str:
        return json.dumps({"exc_type": self.exc_type, "message": self.exc, "trace": self.trace})

    @classmethod
    def from_json(cls, text: str, task_run_external_id: str | None = None) -> TaskRunError:
        data: dict[str, Any] = json.loads(text)
        return cls(
            exc=str(data.get("message", "")),
            exc_type=str(data.get("exc_type", "Exception")),
            trace=str(data.get("trace", "")),
            task_run_external_id=task_run_external_id,
        )

    @classmethod
    def deserialize(cls, serialized: str) -> TaskRunError:
        head, _, trace = serialized.partition("\n")
        exc_type, _, message = head.partition(": ")
        return cls(exc=message, exc_type=exc_type, trace=trace)

    @classmethod
    def from_exception(cls, exc: BaseException, task_run_external_id: str | None) -> TaskRunError:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(str(exc), type(exc).__name__, trace, task_run_external_id)


class FailedTaskRunExceptionGroup(ValueError):
    """An awaited workflow run failed; `exceptions` holds one `TaskRunError` per failed task."""

    def __init__(self, message: str, exceptions: list[TaskRunError]) -> None:
        self.message = message
        self.exceptions = exceptions
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.message]
        parts.extend(e.serialize() for e in self.exceptions)
        return "\n".join(parts)


class IdempotencyCollisionError(Exception):
    """A trigger hit an idempotency key that is still held: nothing was created."""

    def __init__(self, message: str, existing_run_external_id: str) -> None:
        super().__init__(message)
        self.existing_run_external_id = existing_run_external_id


class BulkTriggerIdempotencyCollisionError(Exception):
    """Some runs of a bulk trigger hit held idempotency keys: the others were created
    (`successful_workflow_run_external_ids`, in order), the colliding ones were not
    (`collisions`: one IdempotencyCollisionError each, in order)."""

    def __init__(
        self,
        message: str,
        successful_workflow_run_external_ids: list[str],
        collisions: list[IdempotencyCollisionError],
    ) -> None:
        super().__init__(message)
        self.successful_workflow_run_external_ids = successful_workflow_run_external_ids
        self.collisions = collisions


class TaskCancelledError(BaseException):
    """Raised inside a task whose run was cancelled; a BaseException so `except Exception`
    in user code cannot swallow it."""


class ResetError(HatchliteError, ValueError):
    """`runs.reset_durable_task` cannot reset the task as asked (nothing was changed)."""


class RestoreError(HatchliteError, ValueError):
    """`runs.restore_task`: the task run is not evicted (nothing was changed)."""
