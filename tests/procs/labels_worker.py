"""A labelled worker serving tasks with and without desired worker labels, for the test
that label routing holds across worker processes on one database file.

Usage: python -m tests.procs.labels_worker DB NAME LABELS_JSON SLOTS
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from pydantic import BaseModel

from hatchlite import (
    Context,
    DesiredWorkerLabel,
    Hatchet,
    Standalone,
    WorkerLabelComparator,
)


class Job(BaseModel):
    n: int


class Where(BaseModel):
    n: int
    worker_id: str
    pid: int


Tasks = dict[str, Standalone[Job, Where]]


def build(hatchet: Hatchet) -> Tasks:
    """Four tasks: one needs `gpu == "yes"`, one `memory > 32`, one `memory < 16`
    (the last two in the list and the dict form), one asks for nothing."""

    async def where(input: Job, ctx: Context) -> Where:
        await asyncio.sleep(0.002)  # long enough that both workers take a share
        return Where(n=input.n, worker_id=ctx.worker_id, pid=os.getpid())

    gpu_only = hatchet.task(
        name="gpu-only",
        input_validator=Job,
        desired_worker_labels={"gpu": DesiredWorkerLabel(value="yes", required=True)},
    )(where)
    more_than_32 = DesiredWorkerLabel(
        key="memory", value=32, required=True, comparator=WorkerLabelComparator.GREATER_THAN
    )
    # Hatchet takes the list form here too; hatchlite's `hatchet.task` types only the
    # dict form (Workflow.task takes both), hence the ignore.
    big_memory = hatchet.task(
        name="big-memory", input_validator=Job, desired_worker_labels=[more_than_32]
    )(where)
    small_memory = hatchet.task(
        name="small-memory",
        input_validator=Job,
        desired_worker_labels={
            "memory": DesiredWorkerLabel(
                value=16, required=True, comparator=WorkerLabelComparator.LESS_THAN
            )
        },
    )(where)
    anywhere = hatchet.task(name="anywhere", input_validator=Job)(where)
    return {
        "gpu-only": gpu_only,
        "big-memory": big_memory,
        "small-memory": small_memory,
        "anywhere": anywhere,
    }


def main() -> None:
    db, name, labels, slots = sys.argv[1:5]
    hatchet = Hatchet(db=db)
    tasks = build(hatchet)
    hatchet.worker(
        name, slots=int(slots), labels=json.loads(labels), workflows=list(tasks.values())
    ).start()


if __name__ == "__main__":
    main()
