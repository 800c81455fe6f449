"""The figures of issue 14 that bench/throughput.py measures beyond plain throughput and
in-process latency, each on fresh SQLite files in the caller's temp dir:

* keyed concurrency: flow_control.py's `keys` scenario (1,000 keys, `max_runs=1`) and
  its `unlimited` one, alternating, R times (imported from flow_control.py);
* fan-out: one `async def` task spawns C children of a no-op task with one
  `await child.aio_run_many([...])` and returns; the clock runs from the parent's
  trigger to its result, and the rate is C / that time;
* cross-process trigger->start: cross_process.py's `--worker DB` child process serves
  the task and this process triggers it, 1 at a time with no gap, after warm-up
  (`cross_process.sequential`, imported);
* cost of growth: N finished 1-task runs stored through hatchlite's own API, then
  dispatch throughput on that file beside a fresh one, and `runs.list()` (its first
  page) on both;
* memory per in-flight run: in a child process of its own (this script, `--memory MODE
  N`), RSS before and after N runs of a task that awaits an event are triggered.

Not run on its own but by throughput.py, except as the memory child:

    python bench/throughput_scale.py --memory {running,queued} N
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cross_process
import flow_control
from benchkit import (
    Skip,
    check,
    percentile,
    print_result,
    progress,
    python_cmd,
    rss_bytes,
    run_child,
    spread,
)
from pydantic import BaseModel

from hatchlite import Context, EmptyModel, Hatchet, Standalone, WorkerStatus

GROWTH_BATCH = 5_000  # runs per aio_run_many while storing the finished runs
LIST_WARMUP = 3
LIST_CALLS = 20  # timed runs.list() calls per database
QUEUED_SLOTS = 100  # the implicit worker's slot count (hatchlite.scheduler.workers)
MEMORY_WARMUP = 200  # runs held and released before RSS is read the first time
MEMORY_SETTLE = 0.5  # seconds between the last start and the RSS read
MEMORY_TIMEOUT = 300.0  # seconds for one memory child process


def file_bytes(path: Path) -> int:
    """Size of a SQLite file with its -wal."""
    return sum(
        Path(str(path) + suffix).stat().st_size
        for suffix in ("", "-wal")
        if Path(str(path) + suffix).exists()
    )


# -- keyed concurrency -------------------------------------------------------------------


@dataclass
class Keyed:
    """flow_control.py's `unlimited` and `keys` task-runs/s, one per repetition."""

    n: int
    keys: int
    unlimited: list[float]
    keyed: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.keyed) / statistics.median(self.unlimited)


async def keyed_concurrency(tmp: Path, n: int, reps: int) -> Keyed:
    result = Keyed(n, flow_control.KEYS, [], [])
    for rep in range(reps):
        result.unlimited.append(
            await flow_control._measure(flow_control._unlimited, n, result.keys, tmp)
        )
        result.keyed.append(await flow_control._measure(flow_control._keyed, n, result.keys, tmp))
        progress(
            f"keyed rep {rep + 1}: unlimited {result.unlimited[-1]:,.0f}/s, "
            f"{result.keys:,} keys {result.keyed[-1]:,.0f}/s"
        )
    return result


# -- fan-out -------------------------------------------------------------------------------


class FanOut(BaseModel):
    children: int


async def fan_out_once(path: Path, children: int) -> float:
    """Seconds from triggering a parent that spawns `children` no-op children with one
    `aio_run_many` to its result."""
    calls: list[None] = []
    client = Hatchet(db=str(path), auto_worker=True)
    try:

        @client.task(name="fanout_child")
        async def child(input: EmptyModel, ctx: Context) -> None:
            calls.append(None)

        @client.task(name="fanout_parent", input_validator=FanOut)
        async def parent(input: FanOut, ctx: Context) -> dict[str, int]:
            items = [child.create_bulk_run_item() for _ in range(input.children)]
            results = await child.aio_run_many(items)
            return {"children": len(results)}

        await parent.aio_run(FanOut(children=10))  # warm up: engine, worker, both tasks
        calls.clear()
        start = time.perf_counter()
        out: Any = await parent.aio_run(FanOut(children=children))
        seconds = time.perf_counter() - start
    finally:
        await client.aio_close()
    check(out == {"children": children}, f"fan-out parent returned {out!r}")
    check(len(calls) == children, f"fan-out ran {len(calls)} of {children} children")
    return seconds


async def fan_out(tmp: Path, children: int, reps: int) -> list[float]:
    """Children per second, one per repetition (a fresh file each)."""
    rates = []
    for rep in range(reps):
        rates.append(children / await fan_out_once(tmp / f"fanout-{rep}.db", children))
        progress(f"fan-out rep {rep + 1}: {children:,} children, {rates[-1]:,.0f}/s")
    return rates


# -- cross-process trigger->start ------------------------------------------------------------


@dataclass
class CrossProcess:
    starts: list[float]  # trigger->start, seconds (wall clock across the processes)
    trips: list[float]  # task.run() call -> result, seconds
    worker_exit: str  # how the worker process ended on SIGTERM


def cross_process_latency(tmp: Path, n: int) -> CrossProcess:
    """cross_process.py's `1 at a time, no gap` variant: its worker process serves the
    task on `tmp`/cross-process.db; this process (trigger-only) runs `n` after warm-up.
    Blocking (sync `task.run`): call it outside an event loop."""
    db = tmp / "cross-process.db"
    client = Hatchet(db=str(db), auto_worker=False)
    task = cross_process.define_task(client)
    # A run queued before the worker exists, so the two processes do not race to
    # create the file (as cross_process.py does); the engine's warning that no worker
    # serves it yet is expected here.
    log = logging.getLogger("hatchlite")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        first = task.run_no_wait(cross_process.Stamp(t=time.time()))
    finally:
        log.setLevel(level)
    worker = cross_process.WorkerProcess(db, tmp / "cross-process-worker.log")
    outcome: list[tuple[list[float], list[float], float]] = []
    errors: list[BaseException] = []

    def measure() -> None:
        try:
            cross_process.check_output(first.result(), os.getpid(), False)
            outcome.append(cross_process.sequential(task, n, None, False))
        except BaseException as exc:
            errors.append(exc)

    # A daemon thread with a deadline: a worker that dies or hangs must not hang the bench.
    thread = threading.Thread(target=measure, name="bench-cross-process", daemon=True)
    thread.start()
    thread.join(cross_process.WORKER_READY_TIMEOUT + 30 + n * 0.05)
    if thread.is_alive() or errors:
        worker.stopping = True
        worker.proc.kill()
        worker.proc.wait()
        why = repr(errors[0]) if errors else "timed out"
        raise RuntimeError(f"cross-process: {why}; worker output: {worker.output() or '(none)'}")
    code, seconds, note = worker.stop()
    client.close()
    starts, trips, _ = outcome[0]
    return CrossProcess(starts, trips, f"exit code {code} after {seconds:.2f}s {note}".strip())


# -- cost of growth ------------------------------------------------------------------------


@dataclass
class Growth:
    stored: int  # finished runs in the big file before the measurement
    build_seconds: float | None  # None: an existing --growth-db was reused
    file_bytes: int  # the big file (+ -wal) once built and closed
    n: int  # runs dispatched per measurement
    empty: list[float]  # task-runs/s on a fresh file, one per repetition
    full: list[float]  # task-runs/s on the big file
    empty_list_ms: list[float]  # runs.list() first page, each call
    full_list_ms: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.full) / statistics.median(self.empty)


def define_growth_task(client: Hatchet) -> Standalone[EmptyModel, Any]:
    @client.task(name="growth_noop")
    async def growth_noop(input: EmptyModel, ctx: Context) -> None:
        return None

    return growth_noop


async def store_runs(path: Path, count: int) -> float:
    """Store `count` finished runs of the growth task on `path`; returns seconds taken.
    Through the public API (`aio_run_many` of GROWTH_BATCH at a time), in a client that
    is closed before anything is timed on the file."""
    client = Hatchet(db=str(path), auto_worker=True)
    task = define_growth_task(client)
    began = time.perf_counter()
    try:
        done = 0
        while done < count:
            size = min(GROWTH_BATCH, count - done)
            await task.aio_run_many([task.create_bulk_run_item() for _ in range(size)])
            done += size
            if done % 100_000 == 0 or done == count:
                spent = time.perf_counter() - began
                progress(f"growth: {done:>9,} runs stored, {spent:6.1f}s ({done / spent:,.0f}/s)")
    finally:
        await client.aio_close()
    return time.perf_counter() - began


def completed_runs(path: Path) -> int:
    """Finished runs on `path` (a read-only bench peek at the file)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT count(*) FROM workflow_runs WHERE status = 'COMPLETED'")
        return int(row.fetchone()[0])
    finally:
        conn.close()


async def dispatch(path: Path, n: int, list_ms: list[float] | None) -> float:
    """Task-runs/s of one `aio_run_many` of `n` growth runs on `path` (timed as
    throughput.py's 1-task rows); then, if `list_ms` is given, append the milliseconds of
    LIST_CALLS `runs.list()` calls (the first page: a day back, 50 rows) to it."""
    client = Hatchet(db=str(path), auto_worker=True)
    try:
        task = define_growth_task(client)
        await task.aio_run()  # warm up: open the file, start the engine and worker
        start = time.perf_counter()
        results = await task.aio_run_many([task.create_bulk_run_item() for _ in range(n)])
        seconds = time.perf_counter() - start
        check(len(results) == n, f"growth dispatch returned {len(results)} of {n}")
        if list_ms is not None:
            for i in range(LIST_WARMUP + LIST_CALLS):
                began = time.perf_counter()
                page = await client.runs.aio_list()
                if i >= LIST_WARMUP:
                    list_ms.append((time.perf_counter() - began) * 1000)
            check(len(page.rows) > 0, "runs.list() returned no rows")
    finally:
        await client.aio_close()
    return n / seconds


async def growth(tmp: Path, stored: int, n: int, reps: int, keep: Path | None) -> Growth:
    """Dispatch on a file of `stored` finished runs (built at `keep`, or reused if
    `keep` exists) beside fresh files, alternating, `reps` times."""
    path = keep if keep is not None else tmp / "growth.db"
    build: float | None = None
    if path.exists():
        progress(f"growth: reusing {path} ...")
    else:
        progress(f"growth: storing {stored:,} finished runs, {GROWTH_BATCH:,} per aio_run_many ...")
        build = await store_runs(path, stored)
    result = Growth(completed_runs(path), build, file_bytes(path), n, [], [], [], [])
    for rep in range(reps):
        last = rep == reps - 1
        empty_list = result.empty_list_ms if last else None
        result.empty.append(await dispatch(tmp / f"growth-empty-{rep}.db", n, empty_list))
        result.full.append(await dispatch(path, n, result.full_list_ms if last else None))
        progress(
            f"growth rep {rep + 1}: empty {result.empty[-1]:,.0f}/s, "
            f"{result.stored:,} stored {result.full[-1]:,.0f}/s"
        )
    return result


# -- memory per in-flight run (in a child process) -------------------------------------------


class Gate:
    """Holds the task runs that await it until `open()`. Its asyncio.Event is made by
    the first waiter, on the engine's loop, where `async def` tasks run."""

    def __init__(self) -> None:
        self.started = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    async def wait(self) -> None:
        self.started += 1
        if self._event is None:
            self._loop = asyncio.get_running_loop()
            self._event = asyncio.Event()
        await self._event.wait()

    def open(self) -> None:
        """Release every waiter, now and later; safe from any thread."""
        if self._loop is not None and self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)


async def wait_until(what: str, done: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached in {timeout:.0f}s")
        await asyncio.sleep(0.01)


async def hold_and_release(
    task: Standalone[EmptyModel, Any], gate: Gate, n: int, running: int
) -> dict[str, float]:
    """Trigger `n` held runs, wait until `running` of them started, read RSS, release."""
    gc.collect()
    before = rss_bytes()
    began = time.perf_counter()
    refs = await task.aio_run_many_no_wait([task.create_bulk_run_item() for _ in range(n)])
    await wait_until(f"{running} held runs started", lambda: gate.started >= running)
    in_flight = time.perf_counter() - began
    await asyncio.sleep(MEMORY_SETTLE)
    gc.collect()
    after = rss_bytes()
    gate.open()
    began = time.perf_counter()
    await asyncio.gather(*(ref.aio_result() for ref in refs))
    drain = time.perf_counter() - began
    check(gate.started == n, f"{gate.started} of {n} held runs ran")
    return {"before": before, "after": after, "in_flight_s": in_flight, "drain_s": drain}


async def memory_child(tmp: Path, mode: str, n: int) -> dict[str, Any]:
    """`--memory MODE N`: RSS per in-flight run of this process. `running`: a worker
    with N slots, so all N run (each awaiting the gate); `queued`: QUEUED_SLOTS slots,
    so that many run and the rest wait as QUEUED rows."""
    slots = n if mode == "running" else QUEUED_SLOTS
    gates = [Gate(), Gate()]  # warm-up, measured
    client = Hatchet(db=str(tmp / f"memory-{mode}.db"), auto_worker=False)

    @client.task(name="held")
    async def held(input: EmptyModel, ctx: Context) -> None:
        await gates[0].wait()

    worker = client.worker("bench-memory", slots=slots, workflows=[held])
    serving = asyncio.create_task(worker.aio_start())
    try:
        await wait_until("worker healthy", lambda: worker.status == WorkerStatus.HEALTHY)
        await hold_and_release(held, gates[0], MEMORY_WARMUP, min(MEMORY_WARMUP, slots))
        gates.pop(0)
        figures = await hold_and_release(held, gates[0], n, min(n, slots))
    finally:
        worker.stop()
        await serving
        await client.aio_close()
    return {"mode": mode, "n": n, "slots": slots, "running": min(n, slots), **figures}


@dataclass
class Memory:
    mode: str
    n: int
    slots: int
    running: int  # of the n, running (awaiting the gate); the rest queued
    before: float  # RSS, bytes
    after: float
    in_flight_s: float  # trigger -> the last expected start
    drain_s: float  # release -> every result back

    @property
    def per_run(self) -> float:
        return (self.after - self.before) / self.n


def in_flight_memory(mode: str, n: int) -> Memory:
    """Run `memory_child` in a child process; raise with its reason if it fails."""
    progress(f"memory: {n:,} in-flight runs, {mode}, in a child process ...")
    payload, reason = run_child(
        python_cmd("throughput_scale.py", "--memory", mode, str(n)), MEMORY_TIMEOUT
    )
    if payload is None:
        raise RuntimeError(f"memory ({mode}): {reason}")
    return Memory(**payload)


# -- all of them, and their report -------------------------------------------------------


@dataclass
class ScalePlan:
    """What to measure (throughput.py's command line)."""

    n: int  # runs per dispatch measurement (keyed, growth)
    reps: int
    fan_out: int  # children
    cross_n: int  # 0 skips
    growth_runs: int  # 0 skips
    growth_db: Path | None
    memory_n: int  # 0 skips


@dataclass
class ScaleFigures:
    """What `measure_all` measured; None (or empty) where skipped."""

    keyed: Keyed | None = None
    fan_out: list[float] | None = None  # children/s, one per repetition
    cross: CrossProcess | None = None
    growth: Growth | None = None
    memory: list[Memory] = field(default_factory=list)


def attempt(name: str, skips: list[Skip], measure: Callable[[], Any]) -> Any:
    """`measure()`, or None with a skip noted if it raises."""
    try:
        return measure()
    except Exception as exc:
        skips.append(Skip(name, f"{type(exc).__name__}: {exc}"))
        return None


def measure_all(tmp: Path, plan: ScalePlan, skips: list[Skip]) -> ScaleFigures:
    """Every figure of this module, one after the other; a failure is a skip."""
    got = ScaleFigures()
    got.keyed = attempt(
        "keyed concurrency", skips, lambda: asyncio.run(keyed_concurrency(tmp, plan.n, plan.reps))
    )
    got.fan_out = attempt(
        "fan-out", skips, lambda: asyncio.run(fan_out(tmp, plan.fan_out, plan.reps))
    )
    if plan.cross_n:
        progress(f"cross-process: worker process, {plan.cross_n} runs 1 at a time ...")
        got.cross = attempt(
            "cross-process", skips, lambda: cross_process_latency(tmp, plan.cross_n)
        )
    else:
        skips.append(Skip("cross-process", "--cross-n 0"))
    if plan.growth_runs:
        stored, db = plan.growth_runs, plan.growth_db
        got.growth = attempt(
            "cost of growth",
            skips,
            lambda: asyncio.run(growth(tmp, stored, plan.n, plan.reps, db)),
        )
    else:
        skips.append(Skip("cost of growth", "--growth-runs 0"))
    if plan.memory_n:
        for mode in ("running", "queued"):
            found = attempt(
                f"memory ({mode})", skips, partial(in_flight_memory, mode, plan.memory_n)
            )
            if found is not None:
                got.memory.append(found)
    else:
        skips.append(Skip("memory", "--memory-n 0"))
    return got


def median_range(values: Sequence[float], unit: str = "/s") -> str:
    """'median/s' with ' (min-max)' when there are several values."""
    extent = spread(values)
    return f"{statistics.median(values):,.0f}{unit}" + (f" ({extent})" if extent else "")


def ms(seconds: Sequence[float], q: float) -> str:
    return f"{percentile(seconds, q) * 1000:.2f}"


def keyed_text(k: Keyed, reps: str) -> str:
    return (
        f"Keyed concurrency (flow_control.py: N={k.n:,} no-op async runs, implicit worker, "
        f"{reps}):\n  unlimited {median_range(k.unlimited)}, {k.keys:,} keys at max_runs=1 "
        f"{median_range(k.keyed)}: {k.ratio:.2f}x unlimited"
    )


def fan_out_text(rates: list[float], children: int, unlimited: float | None, reps: str) -> str:
    versus = (
        f", {statistics.median(rates) / unlimited:.2f}x the 1-task async def rate "
        f"({unlimited:,.0f}/s)"
        if unlimited
        else ""
    )
    return (
        f"Fan-out (one async def task spawns {children:,} no-op children with one "
        f"aio_run_many; trigger of the parent -> its result, {reps}):\n  "
        f"{median_range(rates, ' children/s')}{versus}"
    )


def cross_text(c: CrossProcess) -> str:
    return (
        f"Cross-process trigger->start (cross_process.py's worker process, slots="
        f"{cross_process.WORKER_SLOTS}; this process trigger-only; 1 at a time, no gap, "
        f"N={len(c.starts)} after {cross_process.WARMUP} warm-up):\n  p50 {ms(c.starts, 50)} "
        f"ms, p99 {ms(c.starts, 99)} ms; round trip p50 {ms(c.trips, 50)} ms; worker on "
        f"SIGTERM: {c.worker_exit}"
    )


def growth_text(g: Growth, reps: str) -> str:
    built = (
        f"stored in {g.build_seconds:.0f}s ({g.stored / g.build_seconds:,.0f} runs/s) with "
        f"aio_run_many of {GROWTH_BATCH:,}"
        if g.build_seconds
        else "an existing --growth-db"
    )
    empty_ms, full_ms = [x / 1000 for x in g.empty_list_ms], [x / 1000 for x in g.full_list_ms]
    return (
        f"Cost of growth ({g.stored:,} finished 1-task runs, {built}; file + -wal "
        f"{g.file_bytes / 1e6:,.0f} MB):\n  dispatch, N={g.n:,} 1-task async def runs "
        f"({reps}): empty file {median_range(g.empty)}, {g.stored:,} stored "
        f"{median_range(g.full)}: {g.ratio:.2f}x\n  runs.list() first page, {LIST_CALLS} "
        f"calls: p50/p99 {ms(empty_ms, 50)}/{ms(empty_ms, 99)} ms empty, "
        f"{ms(full_ms, 50)}/{ms(full_ms, 99)} ms stored"
    )


def memory_text(memory: list[Memory]) -> str:
    lines = [
        "Memory per in-flight run (a child process: RSS after gc.collect(), before the "
        "trigger and once the runs are in flight, awaiting an asyncio.Event):"
    ]
    for m in memory:
        queued = f" + {m.n - m.running:,} queued" if m.n > m.running else ""
        lines.append(
            f"  {m.mode:<8} {m.n:,} runs, worker slots={m.slots:,}: {m.running:,} running"
            f"{queued}; RSS {m.before / 1e6:,.1f} -> {m.after / 1e6:,.1f} MB: "
            f"{m.per_run:,.0f} bytes per run (in flight after {m.in_flight_s:.1f}s; released "
            f"and done in {m.drain_s:.1f}s)"
        )
    return "\n".join(lines)


def print_all(got: ScaleFigures, plan: ScalePlan, unlimited: float | None) -> None:
    """The figures measured, a paragraph each; `unlimited`: hatchlite's 1-task async def
    task-runs/s from throughput.py's table, the fan-out's yardstick."""
    reps = f"median of {plan.reps}" if plan.reps > 1 else "1 repetition"
    texts = [
        keyed_text(got.keyed, reps) if got.keyed else "",
        fan_out_text(got.fan_out, plan.fan_out, unlimited, reps) if got.fan_out else "",
        cross_text(got.cross) if got.cross else "",
        growth_text(got.growth, reps) if got.growth else "",
        memory_text(got.memory) if got.memory else "",
    ]
    for text in texts:
        if text:
            print(f"\n{text}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--memory", nargs=2, metavar=("MODE", "N"), required=True)
    args = parser.parse_args(argv)
    mode, n = args.memory[0], int(args.memory[1])
    if mode not in ("running", "queued") or n < 1:
        parser.error("--memory MODE N: MODE is running or queued, N positive")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        print_result(asyncio.run(memory_child(Path(tmp), mode, n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
