"""Workflow and task definitions: the decorators, their validation, and the DAG shape.

Nothing here does I/O. A definition error raises `InvalidDefinitionError` (a
`ValueError`) naming the workflow, the task and what is wrong, at decoration time.
"""

from hatchlite.dag.depends import Depends
from hatchlite.dag.task import (
    DEFAULT_EXECUTION_TIMEOUT,
    DEFAULT_RETRIES,
    DEFAULT_SCHEDULE_TIMEOUT,
    R,
    Task,
    TWorkflowInput,
    WorkflowConfig,
    check_priority,
    normalize_concurrency,
)
from hatchlite.dag.workflow import DurableTaskDecorator, TaskDecorator, WorkflowDefinition

__all__ = [
    "DEFAULT_EXECUTION_TIMEOUT",
    "DEFAULT_RETRIES",
    "DEFAULT_SCHEDULE_TIMEOUT",
    "Depends",
    "DurableTaskDecorator",
    "R",
    "TWorkflowInput",
    "Task",
    "TaskDecorator",
    "WorkflowConfig",
    "WorkflowDefinition",
    "check_priority",
    "normalize_concurrency",
]
