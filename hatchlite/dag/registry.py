"""The workflows defined on one database in this process, by name.

A name (after namespacing) names one definition: defining a second workflow or
standalone task under a taken name from other code raises at definition time, naming
both places, instead of letting one silently run the other's code. Workflow names are
compared case-insensitively, as Hatchet's action ids (`workflow:task`) are.

The same code defining its workflow again (the same module and function: a module
reloaded, a notebook cell run again, a test helper called twice, a client re-created on
the same file) replaces the older definition; the older object then refuses to be run
or served, saying which definition replaced it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from hatchlite.dag.workflow import WorkflowDefinition
from hatchlite.exceptions import InvalidDefinitionError

W = TypeVar("W", bound=WorkflowDefinition[Any])


class Definitions(dict[str, W]):
    """`name -> workflow`, refusing two definitions of one name from different code.
    `version` changes whenever a definition is added or replaced, or a task is added
    to any definition."""

    def __init__(self) -> None:
        super().__init__()
        self._version = 0
        self._lower: dict[str, str] = {}

    @property
    def version(self) -> tuple[int, int]:
        return self._version, WorkflowDefinition.tasks_added

    def define(self, workflow: W) -> None:
        name = workflow.name
        taken = self._lower.get(name.lower())
        existing = self.get(taken) if taken is not None else None
        if existing is workflow:
            return
        if existing is not None:
            if existing.site.key != workflow.site.key:
                kind = "workflow" if taken == name else f"workflow {taken!r} (names differ in case)"
                raise InvalidDefinitionError(
                    f"two definitions use the {kind} name {name!r}: one at "
                    f"{existing.site.where}, another at {workflow.site.where}; give one of "
                    f"them another name (name=...)"
                )
            if workflow.created < existing.created:
                raise stale_error(workflow, existing)
        if taken is not None and taken != name:
            del self[taken]
        self[name] = workflow
        self._lower[name.lower()] = name
        self._version += 1

    def check_current(self, workflow: W) -> None:
        """Raise if `workflow` was replaced by a newer definition of its name."""
        current = self.get(workflow.name)
        if current is not None and current is not workflow:
            raise stale_error(workflow, current)


def stale_error(
    old: WorkflowDefinition[Any], new: WorkflowDefinition[Any]
) -> InvalidDefinitionError:
    return InvalidDefinitionError(
        f"this definition of {old.name!r} (made at {old.site.where}) was replaced by a newer "
        f"one made by the same code (at {new.site.where}); use the newer object"
    )
