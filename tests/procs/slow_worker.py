"""A worker with one slow task and a lifespan, for the shutdown-signal tests."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncGenerator

from hatchlite import Context, EmptyModel, Hatchet, Standalone

EFFECTS_ENV = "HATCHLITE_TEST_EFFECTS"


def note(text: str) -> None:
    with open(os.environ[EFFECTS_ENV], "a") as fh:
        fh.write(f"{text} {os.getpid()}\n")


def build(hatchet: Hatchet) -> Standalone[EmptyModel, dict[str, int]]:
    @hatchet.task()
    async def slow(input: EmptyModel, ctx: Context) -> dict[str, int]:
        note("start")
        await asyncio.sleep(float(os.environ.get("SLOW_SECONDS", "1.0")))
        note("end")
        return {"pid": os.getpid()}

    return slow


async def lifespan() -> AsyncGenerator[None, None]:
    note("setup")
    yield None
    note("teardown")


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    hatchet = Hatchet(db=sys.argv[1])
    slow = build(hatchet)
    hatchet.worker("slow-worker", slots=2, workflows=[slow], lifespan=lifespan).start()
    note("exited")


if __name__ == "__main__":
    main()
