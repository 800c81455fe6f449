"""A worker process whose tasks misbehave: BaseExceptions, and a task that kills its own
process. Also a workflow `shared` that another process defines differently."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any

from hatchlite import BaseWorkflow, BatchMemberId, Context, EmptyModel, Hatchet


def define(hatchet: Hatchet) -> list[BaseWorkflow[Any]]:
    @hatchet.task(retries=1)
    def interrupts(input: EmptyModel, ctx: Context) -> dict[str, int]:
        raise KeyboardInterrupt

    @hatchet.task()
    async def exits(input: EmptyModel, ctx: Context) -> dict[str, int]:
        raise SystemExit(3)

    @hatchet.task(retries=5)
    def kills_its_process(input: EmptyModel, ctx: Context) -> dict[str, int]:
        os.kill(os.getpid(), signal.SIGKILL)
        return {}

    @hatchet.task()
    def healthy(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"pid": os.getpid()}

    @hatchet.task()
    def innocent(input: EmptyModel, ctx: Context) -> dict[str, int]:
        time.sleep(0.5)
        return {"pid": os.getpid()}

    @hatchet.task()
    def poison(input: EmptyModel, ctx: Context) -> dict[str, int]:
        time.sleep(0.2)  # its neighbours are running when it kills the process
        os.kill(os.getpid(), signal.SIGKILL)
        return {}

    @hatchet.batch_task(batch_max_size=2)
    def poison_batch(inputs: dict[BatchMemberId, EmptyModel], ctx: Context) -> dict[str, Any]:
        os.kill(os.getpid(), signal.SIGKILL)
        return {}

    shared = hatchet.workflow(name="shared")

    @shared.task()
    def beta(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"from": "the worker's version"}

    return [interrupts, exits, kills_its_process, healthy, shared, innocent, poison, poison_batch]


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    hatchet = Hatchet(db=sys.argv[1])
    workflows = define(hatchet)
    hatchet.worker("hardening-worker", workflows=workflows).start()


if __name__ == "__main__":
    main()
