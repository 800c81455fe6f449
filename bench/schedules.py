"""Crons and one-time schedules: firing, the cost of idle crons, creation rates.

How fast schedules that come due together fire, what idle crons cost the hot path, and
how fast schedules and crons are created, in one process and one run of this script.

    python bench/schedules.py [--n N] [--crons C] [--reps R] [--quick]

Every measurement opens a fresh SQLite file in a temp dir; the tasks are no-op
`async def`. Schedules and crons are stored by one client, which is then closed, and
the measured client opens the same file: so the measured engine starts with them, as
after a deploy, and not with the WAL of thousands of commits the baseline lacks. Parts:

  firing      N one-time schedules of a 1-task workflow (`wf.aio_schedule`), all due at
              the same instant, on a `TestClock` that stands still until the script
              moves it past that instant; timed from the move until all N runs are
              COMPLETED. Beside it, `direct`: the same N runs triggered with one
              `aio_run_many(items, wait_for_result=False)` (one transaction), timed from
              the call until all are COMPLETED. Same setup for both: an explicit worker
              (`hatchet.worker(..., slots=100)`, `aio_start()` on this loop),
              `auto_worker=False`, a test clock, one untimed warm-up run; completion is
              seen the same way, by polling the file every 2 ms from this thread.
  idle crons  plain throughput as flow_control.py's `unlimited` (one `aio_run_many` of
              N runs of a standalone task on the implicit worker, the clock stopped when
              every result is back), with 0 crons and with C API crons (`@yearly`, never
              due during the run) spread over 10 served workflows (the measured task and
              9 other no-op workflows, defined in both cases).
  creation    schedules created per second by sequential `await wf.aio_schedule(...)`
              (the N schedules of `firing`) and crons per second by sequential
              `await hatchet.cron.aio_create(...)` (the C crons of `idle crons`), each in
              the storing client, which runs no worker for the schedules and the
              implicit worker for the crons.

Each is measured R times, parts alternating; the figure is the median, printed with its
ratio to the baseline measured in the same run. Every run is checked to have completed,
every schedule to have fired and every cron to be stored.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

from hatchlite import Context, Hatchet, Standalone, Workflow
from hatchlite.testing import TestClock

DEFAULT_N = 10_000
QUICK_N = 2_000
DEFAULT_REPS = 5
QUICK_REPS = 3
DEFAULT_CRONS = 1_000
CRON_WORKFLOWS = 10
SLOTS = 100
POLL = 0.002
TIMEOUT = 300.0


class Item(BaseModel):
    i: int


async def _noop(input: Item, ctx: Context) -> None:
    return None


def _path(folder: Path) -> str:
    return str(folder / f"bench-{time.monotonic_ns()}.db")


def _check(path: str, runs: int, fired: int = 0) -> None:
    """Every run completed, and `fired` schedules fired (none left)."""
    conn = sqlite3.connect(path)
    try:
        done = conn.execute("SELECT count(*) FROM workflow_runs WHERE status = 'COMPLETED'")
        completed = int(done.fetchone()[0])
        fired_rows = conn.execute("SELECT count(*) FROM scheduled_runs WHERE run_id IS NOT NULL")
        made = int(fired_rows.fetchone()[0])
        left = conn.execute("SELECT count(*) FROM scheduled_runs WHERE fired_at IS NULL")
        pending = int(left.fetchone()[0])
    finally:
        conn.close()
    if completed != runs or made != fired or pending:
        raise SystemExit(
            f"{path}: {completed} of {runs} runs completed, {made} of {fired} schedules "
            f"fired, {pending} not fired"
        )


async def _until_completed(path: str, runs: int) -> None:
    """Return once the file holds `runs` runs and none is queued or running."""
    conn = sqlite3.connect(path)
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            total, active = conn.execute(
                """SELECT (SELECT count(*) FROM workflow_runs),
                          (SELECT count(*) FROM workflow_runs
                           WHERE status IN ('QUEUED', 'RUNNING'))"""
            ).fetchone()
            if total >= runs and not active:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{path}: {total} runs, {active} active after {TIMEOUT} s")
            await asyncio.sleep(POLL)
    finally:
        conn.close()


def _fire_workflow(client: Hatchet) -> Workflow[Item]:
    wf = client.workflow(name="fire", input_validator=Item)
    wf.task(name="noop")(_noop)
    return wf


def _hot_workflows(client: Hatchet) -> tuple[Standalone[Item, None], list[str]]:
    """The measured standalone task and 9 other workflows, all served; their names."""
    task = client.task(name="unlimited", input_validator=Item)(_noop)
    names = [task.name]
    for j in range(1, CRON_WORKFLOWS):
        other = client.workflow(name=f"idle-{j}", input_validator=Item)
        other.task(name="noop")(_noop)
        names.append(other.name)
    return task, names


async def _firing(folder: Path, n: int, scheduled: bool) -> tuple[float, float]:
    """(runs/s from due or trigger to all COMPLETED, schedules created/s or 0)."""
    start = datetime.now(UTC).replace(microsecond=0)
    due = start + timedelta(hours=1)
    path = _path(folder)
    created = 0.0
    if scheduled:  # a process without a worker stores them, as a web app would
        client = Hatchet(db=path, clock=TestClock(start), auto_worker=False)
        try:
            wf = _fire_workflow(client)
            begin = time.perf_counter()
            for i in range(n):
                await wf.aio_schedule(due, Item(i=i))
            created = n / (time.perf_counter() - begin)
        finally:
            await client.aio_close()
    clock = TestClock(start)
    client = Hatchet(db=path, clock=clock, auto_worker=False)
    wf = _fire_workflow(client)
    worker = client.worker("bench", slots=SLOTS, workflows=[wf])
    serving = asyncio.create_task(worker.aio_start())
    try:
        items = [wf.create_bulk_run_item(Item(i=i)) for i in range(n)]
        await wf.aio_run(Item(i=-1))  # the worker serves it: started, imports done
        begin = time.perf_counter()
        if scheduled:
            clock.set(due)
        else:
            await wf.aio_run_many(items, wait_for_result=False)  # one transaction
        await _until_completed(path, n + 1)
        elapsed = time.perf_counter() - begin
    finally:
        worker.stop()
        await serving
        await client.aio_close()
    _check(path, n + 1, n if scheduled else 0)
    return n / elapsed, created


async def _hot_path(folder: Path, n: int, crons: int) -> tuple[float, float]:
    """(task runs/s of one `aio_run_many` of n runs, crons created/s or 0)."""
    path = _path(folder)
    created = 0.0
    if crons:  # stored by an earlier process; the measured one starts with them
        client = Hatchet(db=path)
        try:
            _, names = _hot_workflows(client)
            await client.cron.aio_create(names[0], "warm-up", "@yearly", {"i": -1}, {})
            begin = time.perf_counter()
            for c in range(1, crons):
                name = names[c % len(names)]
                await client.cron.aio_create(name, f"yearly-{c}", "@yearly", {"i": c}, {})
            created = (crons - 1) / (time.perf_counter() - begin)
        finally:
            await client.aio_close()
    client = Hatchet(db=path)
    try:
        task, _ = _hot_workflows(client)
        items = [task.create_bulk_run_item(Item(i=i)) for i in range(n)]
        await task.aio_run(Item(i=-1))  # implicit worker, imports
        begin = time.perf_counter()
        await task.aio_run_many(items)  # one transaction, as flow_control.py
        elapsed = time.perf_counter() - begin
    finally:
        await client.aio_close()
    _check(path, n + 1)
    conn = sqlite3.connect(path)
    try:
        stored = int(conn.execute("SELECT count(*) FROM crons").fetchone()[0])
    finally:
        conn.close()
    if stored != crons:
        raise SystemExit(f"{path}: {stored} of {crons} crons stored")
    return n / elapsed, created


def _versions() -> str:
    return (
        f"hatchlite {importlib.metadata.version('hatchlite')} | Python "
        f"{platform.python_version()} | SQLite {sqlite3.sqlite_version} | "
        f"{platform.machine()}, {os.cpu_count()} cores"
    )


def _table(title: str, unit: str, rows: list[tuple[str, list[float]]], base: str) -> None:
    """Medians, and their ratio to row `base` (the first row), or no ratio if base is ''."""
    medians = [(name, statistics.median(values)) for name, values in rows]
    print()
    print(f"{title:<38} {unit:>12}" + (f" {'vs ' + base:>14}" if base else ""))
    for name, median in medians:
        ratio = f" {median / medians[0][1]:>13.2f}x" if base else ""
        print(f"{name:<38} {median:>12,.0f}{ratio}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help=f"runs per measurement ({DEFAULT_N})")
    parser.add_argument(
        "--crons", type=int, default=DEFAULT_CRONS, help=f"idle API crons ({DEFAULT_CRONS})"
    )
    parser.add_argument("--reps", type=int, default=None, help=f"repetitions ({DEFAULT_REPS})")
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_N}, {QUICK_REPS} reps")
    args = parser.parse_args()
    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    reps = args.reps or (QUICK_REPS if args.quick else DEFAULT_REPS)
    logging.getLogger("hatchlite").setLevel(logging.ERROR)
    print(_versions())
    print(
        f"N={n} runs per measurement, {args.crons} idle crons, {reps} repetitions, "
        f"no-op async tasks, {SLOTS} slots"
    )
    fired: list[float] = []
    direct: list[float] = []
    plain: list[float] = []
    with_crons: list[float] = []
    schedules_created: list[float] = []
    crons_created: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for rep in range(reps):
            rate, made = await _firing(folder, n, scheduled=True)
            fired.append(rate)
            schedules_created.append(made)
            print(
                f"  rep {rep + 1}: fired: {rate:,.0f} runs/s, created {made:,.0f}/s",
                file=sys.stderr,
            )
            rate, _ = await _firing(folder, n, scheduled=False)
            direct.append(rate)
            print(f"  rep {rep + 1}: direct: {rate:,.0f} runs/s", file=sys.stderr)
            rate, _ = await _hot_path(folder, n, 0)
            plain.append(rate)
            print(f"  rep {rep + 1}: 0 crons: {rate:,.0f} runs/s", file=sys.stderr)
            rate, made = await _hot_path(folder, n, args.crons)
            with_crons.append(rate)
            crons_created.append(made)
            print(
                f"  rep {rep + 1}: {args.crons} crons: {rate:,.0f} runs/s, created {made:,.0f}/s",
                file=sys.stderr,
            )
    _table(
        "firing (due -> all COMPLETED)",
        "runs/s",
        [("direct (aio_run_many, no wait)", direct), (f"{n:,} schedules due at once", fired)],
        "direct",
    )
    _table(
        "idle crons (aio_run_many, results)",
        "task runs/s",
        [("0 crons", plain), (f"{args.crons:,} crons (@yearly)", with_crons)],
        "0 crons",
    )
    _table(
        "creation (sequential)",
        "per second",
        [("wf.aio_schedule", schedules_created), ("cron.aio_create", crons_created)],
        "",
    )


if __name__ == "__main__":
    asyncio.run(main())
