"""A 4-task diamond whose tasks record every execution in a side-effect file, shared by
the crash tests and the worker processes they start and kill."""

from __future__ import annotations

import os
import random
import sys
import time

from pydantic import BaseModel

from hatchlite import Context, Hatchet, Workflow
from tests.procs import effects
from tests.procs.effects import EFFECTS_ENV as EFFECTS_ENV


class Job(BaseModel):
    n: int


def record(event: str, ctx: Context) -> None:
    """Append one line per event; O_APPEND writes of one line are atomic."""
    effects.record(event, ctx.workflow_run_id, ctx.task_name)


def work(ctx: Context) -> dict[str, object]:
    record("start", ctx)
    time.sleep(random.uniform(0.002, 0.02))
    record("end", ctx)
    return {"task": ctx.task_name, "pid": os.getpid()}


def build(hatchet: Hatchet) -> Workflow[Job]:
    wf = hatchet.workflow(name="crashdag", input_validator=Job)

    @wf.task()
    def a(input: Job, ctx: Context) -> dict[str, object]:
        return work(ctx)

    @wf.task(parents=[a])
    def b(input: Job, ctx: Context) -> dict[str, object]:
        return work(ctx)

    @wf.task(parents=[a])
    def c(input: Job, ctx: Context) -> dict[str, object]:
        return work(ctx)

    @wf.task(parents=[b, c])
    def d(input: Job, ctx: Context) -> dict[str, object]:
        assert ctx.task_output(b)["task"] == "b" and ctx.task_output(c)["task"] == "c"
        return {**work(ctx), "n": input.n}

    return wf


def main() -> None:
    db, slots = sys.argv[1], int(sys.argv[2])
    hatchet = Hatchet(db=db)
    wf = build(hatchet)
    hatchet.worker(f"crash-worker-{os.getpid()}", slots=slots, workflows=[wf]).start()


if __name__ == "__main__":
    main()
