"""A worker process for the operations tests: a task that streams numbered chunks with
small awaited gaps, and a task that waits for a file (to hold a slot busy on demand)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from pydantic import BaseModel

from hatchlite import Context, Hatchet, Standalone

GATE_ENV = "HATCHLITE_TEST_GATE_DIR"


class StreamInput(BaseModel):
    chunks: int
    gap: float = 0.005


class GateInput(BaseModel):
    name: str


Streamer = Standalone[StreamInput, dict[str, int]]
Gated = Standalone[GateInput, dict[str, int]]


def define(hatchet: Hatchet) -> tuple[Streamer, Gated]:
    @hatchet.task(name="ops_streamer", input_validator=StreamInput)
    async def ops_streamer(input: StreamInput, ctx: Context) -> dict[str, int]:
        for index in range(input.chunks):
            await ctx.aio_put_stream(f"chunk-{index}")
            await asyncio.sleep(input.gap)
        return {"pid": os.getpid()}

    @hatchet.task(name="ops_gated", input_validator=GateInput)
    async def ops_gated(input: GateInput, ctx: Context) -> dict[str, int]:
        gates = Path(os.environ[GATE_ENV])
        (gates / f"{input.name}.started").touch()
        while not (gates / f"{input.name}.release").exists():
            await asyncio.sleep(0.01)
        return {"pid": os.getpid()}

    return ops_streamer, ops_gated


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    hatchet = Hatchet(db=sys.argv[1])
    hatchet.worker("ops-worker", slots=4, workflows=list(define(hatchet))).start()


if __name__ == "__main__":
    main()
