"""A durable task that records a time, sleeps, waits for an event and runs a child, for
the tests that SIGKILL its worker during the sleep and during the wait."""

from __future__ import annotations

import os
import sys
from datetime import timedelta

from pydantic import BaseModel

from hatchlite import Context, DurableContext, Hatchet, Standalone
from tests.procs.effects import EFFECTS_ENV as EFFECTS_ENV
from tests.procs.effects import record

SLEEP = timedelta(seconds=1.5)


class Trip(BaseModel):
    n: int


def build(
    hatchet: Hatchet,
) -> tuple[Standalone[Trip, dict[str, object]], Standalone[Trip, dict[str, int]]]:
    @hatchet.task(input_validator=Trip)
    async def souvenir(input: Trip, ctx: Context) -> dict[str, int]:
        record("child", input.n)
        return {"souvenir": input.n}

    @hatchet.durable_task(input_validator=Trip)
    async def journey(input: Trip, ctx: DurableContext) -> dict[str, object]:
        now = await ctx.aio_now()
        record("now", input.n, now.isoformat())
        await ctx.aio_sleep_for(SLEEP)
        record("slept", input.n)
        event = await ctx.aio_wait_for_event("journey:go", f"input.n == {input.n}")
        record("event", input.n)
        child = await souvenir.aio_run(Trip(n=input.n))
        return {"now": now.isoformat(), "event": event, "child": child}

    return journey, souvenir


def main() -> None:
    hatchet = Hatchet(db=sys.argv[1])
    journey, souvenir = build(hatchet)
    hatchet.worker(f"durable-{os.getpid()}", workflows=[journey, souvenir]).start()


if __name__ == "__main__":
    main()
