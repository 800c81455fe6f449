"""A worker as the engine sees it: which workflows it serves and its slot pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hatchlite.ids import new_id
from hatchlite.scheduler.threads import TaskThreadPool
from hatchlite.store.records import ClaimRequest

if TYPE_CHECKING:
    from hatchlite.runnables import BaseWorkflow
    from hatchlite.scheduler.execution import Execution

DEFAULT_SLOTS = 100
DEFAULT_DURABLE_SLOTS = 1000


def action_id(workflow_name: str, task_name: str) -> str:
    """Hatchet's name for what a worker can run: `workflow:task`, workflow lower-cased."""
    return f"{workflow_name.lower()}:{task_name}"


class LocalWorker:
    """Slots of one worker in this process. `workflows=None` serves every workflow the
    process defines (the implicit worker)."""

    def __init__(
        self,
        name: str,
        workflows: list[BaseWorkflow[Any]] | None,
        slots: int,
        durable_slots: int,
        labels: dict[str, str | int] | None = None,
    ) -> None:
        self.id = new_id()
        self.name = name
        self.workflows = workflows
        self.slots = slots
        self.durable_slots = durable_slots
        self.labels = labels if labels is not None else {}  # the Worker's own dict
        self.used = 0
        self.used_durable = 0
        self.waiting = 0  # durable tasks waiting in memory (they keep their durable slots)
        self.accepting = True
        self.paused = False  # paused through the workers API: takes no new tasks
        self.suspects = 0  # running suspect tasks (see ClaimedTask.suspect): nothing else
        self.lifespan_value: Any = None
        self.running: dict[str, Execution] = {}
        # Slots bound how many tasks run; threads are made on demand, with headroom for
        # sync tasks that released their slot or outlived their timeout.
        self.executor = TaskThreadPool(max(1, slots) + 64, f"hatchlite-{name}")
        self.tasks_done = 0
        self._runnable_cache: (
            tuple[object, tuple[str, ...], frozenset[tuple[str, str]], bool] | None
        ) = None

    @property
    def implicit(self) -> bool:
        return self.workflows is None

    def served(self, defined: dict[str, BaseWorkflow[Any]]) -> tuple[str, ...]:
        if self.workflows is None:
            return tuple(defined)
        return tuple(wf.name for wf in self.workflows)

    def action_ids(self, defined: dict[str, BaseWorkflow[Any]]) -> list[str]:
        """Hatchet's action ids (`workflow:task`, the workflow lower-cased) it serves."""
        return [
            action_id(wf.name, task.name)
            for name in self.served(defined)
            if (wf := defined.get(name)) is not None
            for task in wf.all_tasks
        ]

    def _runnable(
        self, defined: dict[str, BaseWorkflow[Any]], version: object
    ) -> tuple[tuple[str, ...], frozenset[tuple[str, str]], bool]:
        """(workflows served, (workflow, task) pairs it can run, serves durable tasks),
        recomputed only when the process's definitions change."""
        if self._runnable_cache is None or self._runnable_cache[0] != version:
            served = self.served(defined)
            pairs = frozenset(
                (name, task.name)
                for name in served
                if (wf := defined.get(name)) is not None
                for task in wf.all_tasks
            )
            durable = self._serves_durable(served, defined)
            self._runnable_cache = (version, served, pairs, durable)
        _, served, pairs, durable = self._runnable_cache
        return served, pairs, durable

    def claim_request(
        self, defined: dict[str, BaseWorkflow[Any]], version: object = 0, evictable: int = 0
    ) -> ClaimRequest | None:
        """What this worker can take now; `evictable`: durable slots that evicting
        waiting durable tasks would free."""
        if not self.accepting or self.paused or self._suspect_running():
            return None
        served, runnable, serves_durable = self._runnable(defined, version)
        free = max(0, self.slots - self.used)
        free_durable = max(0, self.durable_slots - self.used_durable) + evictable
        # Durable slots only count when a served workflow has durable tasks; otherwise
        # the claim would fetch rows it cannot take.
        if free_durable and not serves_durable:
            free_durable = 0
        if free <= 0 and free_durable <= 0:
            return None
        busy = self.used + self.used_durable > self.waiting
        return ClaimRequest(self.id, served, free, free_durable, runnable, busy, self.labels)

    def _serves_durable(
        self, served: tuple[str, ...], defined: dict[str, BaseWorkflow[Any]]
    ) -> bool:
        for name in served:
            wf = defined.get(name)
            if wf is not None and any(t.is_durable for t in wf.all_tasks):
                return True
        return False

    def _suspect_running(self) -> bool:
        """A suspect task runs alone, but not while it waits (a durable wait: its
        children must be able to run)."""
        return bool(self.suspects) and any(
            e.claimed.suspect and e.slot_held and not e.suspended for e in self.running.values()
        )

    def take(self, execution: Execution) -> None:
        self.running[execution.task_id] = execution
        self.suspects += execution.claimed.suspect
        self._hold(execution)

    def release(self, execution: Execution) -> None:
        """Give back the execution's slot (once), when it ends, waits, or calls
        release_slot()."""
        if not execution.slot_held:
            return
        execution.slot_held = False
        if execution.task.is_durable:
            self.used_durable -= 1
        else:
            self.used -= execution.task.slot_cost

    def _hold(self, execution: Execution) -> None:
        execution.slot_held = True
        if execution.task.is_durable:
            self.used_durable += 1
        else:
            self.used += execution.task.slot_cost

    def forget(self, execution: Execution) -> None:
        self.release(execution)
        if self.running.get(execution.task_id) is execution:
            del self.running[execution.task_id]
            self.suspects -= execution.claimed.suspect
        self.tasks_done += 1

    @property
    def busy(self) -> bool:
        return bool(self.running)
