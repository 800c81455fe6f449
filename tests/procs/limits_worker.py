"""A worker serving one task limited by GROUP_ROUND_ROBIN `max_runs=1` per `input.group`,
for the test that two worker processes on one database file respect the limit together.

Usage: python -m tests.procs.limits_worker DB SLOTS
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from pydantic import BaseModel

from hatchlite import (
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    Context,
    Hatchet,
    Standalone,
)


class Job(BaseModel):
    group: str
    n: int


def build(hatchet: Hatchet) -> Standalone[Job, dict[str, float]]:
    @hatchet.task(
        name="serial-per-group",
        input_validator=Job,
        concurrency=ConcurrencyExpression(
            expression="input.group",
            max_runs=1,
            limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
        ),
    )
    async def serial(input: Job, ctx: Context) -> dict[str, float]:
        began = time.time()
        await asyncio.sleep(0.01)  # long enough for another worker to try the same key
        return {"n": input.n, "pid": os.getpid(), "began": began, "ended": time.time()}

    return serial


def main() -> None:
    hatchet = Hatchet(db=sys.argv[1])
    serial = build(hatchet)
    hatchet.worker("limits-worker", slots=int(sys.argv[2]), workflows=[serial]).start()


if __name__ == "__main__":
    main()
