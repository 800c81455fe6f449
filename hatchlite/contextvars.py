"""The context variables Hatchet's SDK sets while a task runs, for programs that read
them (`hatchet_sdk.runnables.contextvars`), set the same way by hatchlite.

`workflow_spawn_indices` counts, per running attempt (`ctx_action_key`, Hatchet's
`"<task run id>/<retry count>"`), the child runs it has spawned: the next child without
an explicit `child_index` gets the count as its index. A program may change the count
(Hatchet's own tests lower it to force two children onto one index).
"""

from __future__ import annotations

from collections import Counter
from contextvars import ContextVar

from hatchlite.types import JSONMap

ActionKey = str

ctx_action_key: ContextVar[ActionKey | None] = ContextVar("ctx_action_key", default=None)
ctx_workflow_run_id: ContextVar[str | None] = ContextVar("ctx_workflow_run_id", default=None)
ctx_step_run_id: ContextVar[str | None] = ContextVar("ctx_step_run_id", default=None)
ctx_worker_id: ContextVar[str | None] = ContextVar("ctx_worker_id", default=None)
ctx_additional_metadata: ContextVar[JSONMap | None] = ContextVar(
    "ctx_additional_metadata", default=None
)
ctx_task_retry_count: ContextVar[int | None] = ContextVar("ctx_task_retry_count", default=0)

workflow_spawn_indices: Counter[ActionKey] = Counter()


def action_key(task_run_id: str, retry_count: int) -> ActionKey:
    return f"{task_run_id}/{retry_count}"


def next_spawn_index(key: ActionKey) -> int:
    index = workflow_spawn_indices[key]
    workflow_spawn_indices[key] = index + 1
    return index
