"""Throughput of batch tasks beside the same work done one task run at a time, in one
process and one run of this script.

    python bench/batch_throughput.py [--n N] [--reps R] [--quick]

Every scenario opens a fresh SQLite file in a temp dir, defines one standalone task, and
times one `aio_run_many` of N runs (created in one transaction; the clock stops when
every result is back, as in throughput.py), with the implicit worker (100 slots) in this
process. Each member's work is the same tiny computation, `{"v": input.n * 2}`.

  one-by-one    `@hatchet.task`, `async def`: one call per run, one slot each.
  batch B       `@hatchet.batch_task(batch_max_size=B, batch_max_interval=50 ms)`,
                `async def`: one call per batch of up to B members, one slot per batch.

Each comes in three costs:

  no-op               the computation alone.
  5 ms/call           each call, one-by-one or batch, first awaits a fixed 5 ms: a round
                      trip to an external API that takes bulk requests. Up to 100 calls
                      are in flight at once (one per slot), so the waits overlap.
  5 ms/call, serial   the same, but the API takes one request at a time (the wait is
                      under an `asyncio.Lock`): calls queue behind it, the case batching
                      is for. Its N is N / 10 (one-by-one is bound to 200 runs/s).

Each scenario is timed R times, scenarios alternating; the figure is the median rate of
member task runs completed, printed with its ratio to one-by-one of the same cost from
the same run, and the median number of handler calls (batches) per repetition.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hatchlite import BatchMemberId, Context, Hatchet

DEFAULT_N = 20_000
QUICK_N = 2_000
DEFAULT_REPS = 3
QUICK_REPS = 2
BATCH_SIZES = (10, 100)
BATCH_INTERVAL = timedelta(milliseconds=50)
CALL_COST = 0.005  # seconds awaited per call in the "5 ms/call" scenarios
SERIAL_DIVISOR = 10  # N / this for the serial scenarios


class Item(BaseModel):
    n: int


@dataclass(frozen=True)
class Cost:
    label: str
    seconds: float  # awaited per call
    serial: bool  # one call at a time awaits it
    divisor: int  # of N


COSTS = [
    Cost("no-op", 0.0, False, 1),
    Cost("5 ms/call", CALL_COST, False, 1),
    Cost("5 ms/call, serial", CALL_COST, True, SERIAL_DIVISOR),
]


@dataclass(frozen=True)
class Scenario:
    batch_size: int | None  # None: one-by-one
    cost: Cost

    @property
    def name(self) -> str:
        kind = "one-by-one" if self.batch_size is None else f"batch {self.batch_size}"
        return f"{kind}, {self.cost.label}"

    @property
    def baseline(self) -> str:
        return Scenario(None, self.cost).name


SCENARIOS = [Scenario(b, cost) for cost in COSTS for b in (None, *BATCH_SIZES)]


def define(client: Hatchet, scenario: Scenario, calls: list[int]) -> Any:
    """The scenario's task; `calls` gets the number of members of each call."""
    cost = scenario.cost
    api = asyncio.Lock()  # the external API, when it takes one request at a time

    async def call_api() -> None:
        if cost.serial:
            async with api:
                await asyncio.sleep(cost.seconds)
        elif cost.seconds:
            await asyncio.sleep(cost.seconds)

    if scenario.batch_size is None:

        @client.task(name="one_by_one", input_validator=Item)
        async def one_by_one(input: Item, ctx: Context) -> dict[str, int]:
            await call_api()
            calls.append(1)
            return {"v": input.n * 2}

        return one_by_one

    @client.batch_task(
        name="batched",
        input_validator=Item,
        batch_max_size=scenario.batch_size,
        batch_max_interval=BATCH_INTERVAL,
    )
    async def batched(
        inputs: dict[BatchMemberId, Item], ctx: Context
    ) -> dict[BatchMemberId, dict[str, int]]:
        await call_api()
        calls.append(len(inputs))
        return {member: {"v": item.n * 2} for member, item in inputs.items()}

    return batched


async def measure(scenario: Scenario, n: int, folder: Path) -> tuple[float, int]:
    """(member task runs per second, handler calls) for `n` runs of `scenario`."""
    calls: list[int] = []
    client = Hatchet(db=str(folder / f"bench-{time.monotonic_ns()}.db"))
    try:
        task = define(client, scenario, calls)
        items = [task.create_bulk_run_item(Item(n=i)) for i in range(n)]
        await task.aio_run(Item(n=-1))  # warm up: database, engine, worker, imports
        calls.clear()
        start = time.perf_counter()
        results = await task.aio_run_many(items)
        elapsed = time.perf_counter() - start
    finally:
        await client.aio_close()
    if results != [{"v": i * 2} for i in range(n)] or sum(calls) != n:
        raise SystemExit(f"{scenario.name}: wrong results ({sum(calls)} of {n} members ran)")
    return n / elapsed, len(calls)


def versions() -> str:
    return (
        f"hatchlite {importlib.metadata.version('hatchlite')} | Python "
        f"{platform.python_version()} | SQLite {sqlite3.sqlite_version} | "
        f"{platform.platform()}, {os.cpu_count()} cores"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help=f"runs per repetition ({DEFAULT_N})")
    parser.add_argument("--reps", type=int, default=None, help=f"repetitions ({DEFAULT_REPS})")
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_N}, {QUICK_REPS} reps")
    args = parser.parse_args()
    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    reps = args.reps or (QUICK_REPS if args.quick else DEFAULT_REPS)
    if n < 1 or reps < 1:
        parser.error("--n and --reps must be positive")
    logging.getLogger("hatchlite").setLevel(logging.ERROR)
    print(versions())
    print(
        f"N={n} runs per repetition (serial: {n // SERIAL_DIVISOR}), {reps} repetitions, "
        f"async def tasks, implicit worker (100 slots), "
        f"batch_max_interval={BATCH_INTERVAL.total_seconds() * 1000:g} ms",
        flush=True,
    )

    def size(scenario: Scenario) -> int:
        return max(1, n // scenario.cost.divisor)

    rates: dict[str, list[float]] = {s.name: [] for s in SCENARIOS}
    calls: dict[str, list[int]] = {s.name: [] for s in SCENARIOS}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            for scenario in SCENARIOS:
                rate, count = await measure(scenario, size(scenario), Path(tmp))
                rates[scenario.name].append(rate)
                calls[scenario.name].append(count)
                print(
                    f"  rep {rep + 1}: {scenario.name}: {rate:,.0f} runs/s, {count} calls",
                    file=sys.stderr,
                )
    print(f"{'scenario':<30} {'N':>7} {'runs/s':>9} {'vs one-by-one':>14} {'calls':>7}")
    for scenario in SCENARIOS:
        median = statistics.median(rates[scenario.name])
        base = statistics.median(rates[scenario.baseline])
        count = int(statistics.median(calls[scenario.name]))
        print(
            f"{scenario.name:<30} {size(scenario):>7} {median:>9,.0f} {median / base:>13.2f}x "
            f"{count:>7,.0f}"
        )
    print(
        "\nruns/s: member task runs completed per second, first trigger to last result "
        "(median of repetitions).\nvs one-by-one: against one-by-one of the same cost. "
        "calls: handler calls per repetition (median)."
    )
    print(f"total wall time {time.perf_counter() - began:.1f}s")


if __name__ == "__main__":
    asyncio.run(main())
