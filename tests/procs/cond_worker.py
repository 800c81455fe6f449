"""A worker for the test that SIGKILLs it while tasks wait on conditions: a DAG whose
second task waits for a (short, real) sleep AND an event, and a durable task waiting
for an event. Every execution is recorded in a side-effect file."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from hatchlite import (
    Context,
    DurableContext,
    Hatchet,
    SleepCondition,
    Standalone,
    UserEventCondition,
    Workflow,
)
from tests.procs.effects import EFFECTS_ENV as EFFECTS_ENV
from tests.procs.effects import record

SLEEP = timedelta(seconds=1.5)
DAG_EVENT = "cond:go"
DURABLE_EVENT = "cond:durable"


class Job(BaseModel):
    n: int


def build(
    hatchet: Hatchet,
) -> tuple[Workflow[Job], Standalone[Job, dict[str, Any]]]:
    wf = hatchet.workflow(name="condflow", input_validator=Job)

    @wf.task()
    def prepare(input: Job, ctx: Context) -> dict[str, int]:
        record("prepare", ctx.workflow_run_id)
        return {"n": input.n}

    @wf.task(
        parents=[prepare],
        wait_for=[SleepCondition(SLEEP), UserEventCondition(event_key=DAG_EVENT)],
        cancel_if=[UserEventCondition(event_key="cond:abort")],
    )
    def gated(input: Job, ctx: Context) -> dict[str, Any]:
        record("gated", ctx.workflow_run_id)
        return {"n": ctx.task_output(prepare)["n"], "trigger": ctx.trigger_data}

    @hatchet.durable_task(name="condwait", input_validator=Job)
    async def condwait(input: Job, ctx: DurableContext) -> dict[str, Any]:
        record("durable-start", ctx.workflow_run_id)
        payload = await ctx.aio_wait_for_event(DURABLE_EVENT, f"input.n == {input.n}")
        record("durable-woke", ctx.workflow_run_id)
        return {"event": payload}

    return wf, condwait


def main() -> None:
    hatchet = Hatchet(db=sys.argv[1])
    wf, condwait = build(hatchet)
    hatchet.worker(f"cond-{os.getpid()}", slots=4, workflows=[wf, condwait]).start()


if __name__ == "__main__":
    main()
