"""Workflows and standalone tasks as Hatchet's SDK has them (`hatchet_sdk.runnables`)."""

from hatchlite.runnables.base import BaseWorkflow
from hatchlite.runnables.workflow import (
    BatchStandaloneDecorator,
    DurableStandaloneDecorator,
    Standalone,
    StandaloneDecorator,
    Workflow,
)

__all__ = [
    "BaseWorkflow",
    "BatchStandaloneDecorator",
    "DurableStandaloneDecorator",
    "Standalone",
    "StandaloneDecorator",
    "Workflow",
]
