"""Throughput of runs under concurrency limits, beside the same runs unlimited, in one
process and one run of this script (issue 9: "1,000 distinct keys at max_runs=1 at least
half the unlimited rate").

    python bench/flow_control.py [--n N] [--reps R] [--quick]

Every scenario opens a fresh SQLite file in a temp dir, defines one standalone async
no-op task, and times one `aio_run_many` of N runs (created in one transaction; the clock
stops when every result is back, as in throughput.py), with the implicit worker (100
slots). Scenarios:

  unlimited   no limit.
  keys        `concurrency=ConcurrencyExpression("input.key", max_runs=1)`, the runs spread
              round-robin over 1,000 keys (task-level: a standalone's limit is its task's).
  hot key     the same limit, every run on one key: the runs go one at a time.
  wf keys     as `keys`, the limit on a 1-task workflow (`hatchet.workflow(concurrency=)`):
              each run holds its key until it ends.
  rate limit  a static rate limit far above the load (`rate_limits.put(key, 10**9)`):
              the claim's cost of taking units.

Each is timed R times, scenarios alternating; the figure is the median task-run rate,
printed with its ratio to `unlimited` from the same run. The hot key's N is N / 10: it
is bounded by one run's round trip through the engine, not by throughput.
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
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import BaseModel

from hatchlite import (
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    Context,
    Hatchet,
    RateLimit,
    RateLimitDuration,
)

DEFAULT_N = 5_000
QUICK_N = 1_000
DEFAULT_REPS = 3
QUICK_REPS = 2
KEYS = 1_000
HOT_DIVISOR = 10


class Keyed(BaseModel):
    key: str


def _limit() -> ConcurrencyExpression:
    return ConcurrencyExpression(
        expression="input.key",
        max_runs=1,
        limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
    )


async def _measure(
    make: Callable[[Hatchet], Awaitable[object]], n: int, keys: int, folder: Path
) -> float:
    """Task runs per second for `n` runs of the task `make` defines, over `keys` keys."""
    path = str(folder / f"bench-{time.monotonic_ns()}.db")
    client = Hatchet(db=path)
    try:
        task = await make(client)
        items = [task.create_bulk_run_item(Keyed(key=f"k{i % keys}")) for i in range(n)]  # type: ignore[attr-defined]
        await task.aio_run(Keyed(key="warm-up"))  # type: ignore[attr-defined]  # worker, imports
        start = time.perf_counter()
        await task.aio_run_many(items)  # type: ignore[attr-defined]  # one transaction, as throughput.py
        elapsed = time.perf_counter() - start
    finally:
        await client.aio_close()
    _check_all_completed(path, n + 1)
    return n / elapsed


def _check_all_completed(path: str, expected: int) -> None:
    conn = sqlite3.connect(path)
    try:
        done = conn.execute("SELECT count(*) FROM workflow_runs WHERE status = 'COMPLETED'")
        count = int(done.fetchone()[0])
    finally:
        conn.close()
    if count != expected:
        raise SystemExit(f"{path}: {count} of {expected} runs completed")


async def _unlimited(client: Hatchet) -> object:
    @client.task(name="unlimited", input_validator=Keyed)
    async def unlimited(input: Keyed, ctx: Context) -> None:
        return None

    return unlimited


async def _keyed(client: Hatchet) -> object:
    @client.task(name="keyed", input_validator=Keyed, concurrency=_limit())
    async def keyed(input: Keyed, ctx: Context) -> None:
        return None

    return keyed


async def _workflow_keyed(client: Hatchet) -> object:
    wf = client.workflow(name="wf_keyed", input_validator=Keyed, concurrency=_limit())

    @wf.task()
    async def only(input: Keyed, ctx: Context) -> None:
        return None

    return wf


async def _rate_limited(client: Hatchet) -> object:
    await client.rate_limits.aio_put("bench", 10**9, RateLimitDuration.MINUTE)

    @client.task(
        name="rate_limited", input_validator=Keyed, rate_limits=[RateLimit(static_key="bench")]
    )
    async def rate_limited(input: Keyed, ctx: Context) -> None:
        return None

    return rate_limited


SCENARIOS: list[tuple[str, Callable[[Hatchet], Awaitable[object]], int, int]] = [
    # name, definition, keys, divisor of N
    ("unlimited", _unlimited, KEYS, 1),
    ("keys (1,000, max_runs=1)", _keyed, KEYS, 1),
    ("wf keys (1,000, max_runs=1)", _workflow_keyed, KEYS, 1),
    ("rate limit (never reached)", _rate_limited, KEYS, 1),
    ("hot key (1, max_runs=1)", _keyed, 1, HOT_DIVISOR),
]


def _versions() -> str:
    return (
        f"hatchlite {importlib.metadata.version('hatchlite')} | Python "
        f"{platform.python_version()} | SQLite {sqlite3.sqlite_version} | "
        f"{platform.machine()}, {os.cpu_count()} cores"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help=f"runs per repetition ({DEFAULT_N})")
    parser.add_argument("--reps", type=int, default=None, help=f"repetitions ({DEFAULT_REPS})")
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_N}, {QUICK_REPS} reps")
    args = parser.parse_args()
    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    reps = args.reps or (QUICK_REPS if args.quick else DEFAULT_REPS)
    logging.getLogger("hatchlite").setLevel(logging.ERROR)
    print(_versions())
    print(
        f"N={n} runs per repetition (hot key: {n // HOT_DIVISOR}), {reps} repetitions, "
        f"no-op async tasks, implicit worker (100 slots)"
    )
    rates: dict[str, list[float]] = {name: [] for name, *_ in SCENARIOS}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(reps):
            for name, make, keys, divisor in SCENARIOS:
                rate = await _measure(make, n // divisor, keys, Path(tmp))
                rates[name].append(rate)
                print(f"  rep {rep + 1}: {name}: {rate:,.0f} task runs/s", file=sys.stderr)
    base = statistics.median(rates["unlimited"])
    print(f"{'scenario':<30} {'task runs/s':>12} {'vs unlimited':>13}")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:<30} {median:>12,.0f} {median / base:>12.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
