"""Memory and resume time of N sleeping durable tasks on one worker process, without
durable eviction (every sleeping task keeps its coroutine in the worker's memory).

    python bench/durable_memory.py [--n N ...] [--reps R] [--durable-slots D]
                                   [--heap/--no-heap] [--quick]

For each N, on a fresh SQLite file in a temp dir:

  worker      a child process (`--worker DB`, this script again) runs
              `Hatchet(db, clock=TestClock(), auto_worker=False)` and
              `hatchet.worker(..., durable_slots=D).aio_start()`, serving one durable task:
              `await ctx.aio_sleep_for(timedelta(hours=1))`, then it appends
              `time.perf_counter()` to a list and returns None. It takes commands on
              stdin and answers one JSON line each on stdout: `mem` (gc.collect(), then
              VmRSS and VmHWM from /proc/self/status and the count of gc-tracked
              objects; once all are asleep, also VmRSS after glibc's malloc_trim(0),
              then VmHWM is reset through /proc/self/clear_refs),
              `advance` (move its TestClock 1 h 1 s forward), `stats` (wake-to-resume
              of every task since the last `advance`), `quit`. Its TestClock and this
              side's start at the same instant and move together, so the runs this
              side creates are due by the worker's clock.
  this side   triggers from its own client on the same file (`auto_worker=False`), so
              the inputs, run items and refs it builds are not in the worker's RSS. One
              untimed warm-up run goes through the whole path (sleep, advance, resume),
              then `mem` gives the RSS before. One `aio_run_many_no_wait` of N runs
              follows; its client is closed as soon as it returns, so the worker is the
              only engine on the file. This side polls the file (read-only, every 20 ms)
              until N sleep waits are PENDING: "to all asleep" runs from the trigger
              call to then. After 1 s more, `mem` gives the RSS after; (after - before)
              / N is the bytes per sleeping task. Then `advance`: the sleeps all come
              due at once; "resume all" runs from the clock's move (wall time, taken in
              the worker) until this side sees N+1 runs COMPLETED. Per task,
              wake-to-resume is the clock's move to the task's line after its sleep
              (both perf_counter in the worker): p50/p99, and the first to resume.
              A last `mem` waits until the worker has let go of the tasks too (runs
              are COMPLETED in the file before the worker has let go of every attempt:
              "attempts end" is the clock's move to the end of the last attempt's
              asyncio task, seen by a done-callback; "released" to the moment fewer
              than 10% of the gc-tracked objects the sleepers added are left, looked at
              every second), and gives the
              RSS, the peak during the resume and the gc-tracked objects left.

Each N is measured R times (a new file and worker each time); the figures are medians.
With --heap (the default), one more worker at the smallest N runs with tracemalloc
started just before the trigger (after the warm-up; it slows the worker and adds to its
RSS, so that run is reported apart): the Python heap per sleeping task and the top 10
allocation sites of the sleeping tasks, by line.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import importlib.metadata
import json
import logging
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from hatchlite import DurableContext, Hatchet, Standalone
from hatchlite.testing import TestClock

DEFAULT_NS = (10_000, 100_000)
QUICK_NS = (2_000, 10_000)
DEFAULT_REPS = 1
DURABLE_SLOTS = 1_000  # hatchlite's default for a worker serving durable tasks
SLEEP = timedelta(hours=1)
ADVANCE = SLEEP + timedelta(seconds=1)
POLL = 0.02
SETTLE = 1.0  # seconds between "all asleep" and reading the RSS
TIMEOUT = 600.0  # seconds any one phase may take
TASK_NAME = "bench_sleeper"
TOP = 10


class Nap(BaseModel):
    i: int


# -- the worker process ------------------------------------------------------------------

RESUMED: list[float] = []  # perf_counter of each task's line after its sleep
FINISHED: list[float] = []  # perf_counter of the end of each resumed attempt's asyncio task


def _finished(task: asyncio.Task[Any]) -> None:
    FINISHED.append(time.perf_counter())


def define_task(client: Hatchet) -> Standalone[Nap, Any]:
    @client.durable_task(name=TASK_NAME, input_validator=Nap)
    async def sleeper(input: Nap, ctx: DurableContext) -> None:
        await ctx.aio_sleep_for(SLEEP)
        RESUMED.append(time.perf_counter())
        current = asyncio.current_task()  # the attempt's own task (Execution._run)
        if current is not None:
            current.add_done_callback(_finished)

    return sleeper


def _proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, bytes."""
    found: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) * 1024
    return found


class WorkerState:
    def __init__(self, clock: TestClock, heap: bool) -> None:
        self.clock = clock
        self.heap = heap
        self.snapshot: tracemalloc.Snapshot | None = None
        self.advanced_at = 0.0
        self.objects: dict[str, int] = {}

    def handle(self, command: str, arg: str) -> dict[str, Any]:
        if command == "mem":  # arg: before, asleep, done
            idle = self._wait_idle() if arg == "done" else None
            gc.collect()
            self.objects[arg] = len(gc.get_objects())
            reply: dict[str, Any] = {**_proc_status(), "objects": self.objects[arg]}
            if idle is not None:
                reply.update(idle)
            if self.heap and arg == "before":
                tracemalloc.start()
                self.snapshot = tracemalloc.take_snapshot()
            elif self.heap and arg == "asleep":
                reply["heap"] = self._heap()
            if arg == "asleep":
                # What glibc gives back when asked: heap it keeps after Python freed it
                # (a diagnostic; the RSS before is read untrimmed). malloc_trim itself
                # raises VmHWM (by ~120 MB at N=10,000), so the peak starts over after it.
                ctypes.CDLL("libc.so.6").malloc_trim(0)
                reply["trimmed"] = _proc_status()["VmRSS"]
                with open("/proc/self/clear_refs", "w") as clear_refs:
                    clear_refs.write("5")  # reset VmHWM to the current RSS
            return reply
        if command == "advance":
            RESUMED.clear()
            FINISHED.clear()
            self.advanced_at = time.perf_counter()
            wall = time.time()
            self.clock.advance(ADVANCE)
            return {"wall": wall}
        if command == "stats":
            delays = sorted(t - self.advanced_at for t in list(RESUMED))
            return {"delays": delays}
        raise ValueError(f"unknown command {command!r}")

    def _wait_idle(self) -> dict[str, float]:
        """Seconds from `advance` until the last resumed attempt's asyncio task ended
        (`ended`), and until the worker let go of the attempts (`released`: after a
        gc.collect(), fewer than 10% of the gc-tracked objects the sleepers added are
        left; looked at every second). The runs are COMPLETED in the file before the
        worker's engine has released every attempt."""
        deadline = time.monotonic() + TIMEOUT / 2  # inside this side's wait for the reply
        while len(FINISHED) < len(RESUMED) and time.monotonic() < deadline:
            time.sleep(0.05)
        ended = max(FINISHED, default=self.advanced_at) - self.advanced_at
        added = self.objects["asleep"] - self.objects["before"]
        while time.monotonic() < deadline:
            gc.collect()
            if len(gc.get_objects()) - self.objects["before"] < 0.1 * added:
                break
            time.sleep(1.0)
        return {"ended": ended, "released": time.perf_counter() - self.advanced_at}

    def _heap(self) -> dict[str, Any]:
        assert self.snapshot is not None
        after = tracemalloc.take_snapshot()
        filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
        before = self.snapshot.filter_traces(filters)
        after = after.filter_traces(filters)
        diff = after.compare_to(before, "lineno")
        total = sum(d.size_diff for d in diff)
        top = [
            {
                "where": f"{_short(d.traceback[0].filename)}:{d.traceback[0].lineno}",
                "bytes": d.size_diff,
                "blocks": d.count_diff,
            }
            for d in diff[:TOP]
        ]
        by_file = after.compare_to(before, "filename")[:TOP]
        files = [{"where": _short(d.traceback[0].filename), "bytes": d.size_diff} for d in by_file]
        tracemalloc.stop()
        return {"total": total, "top": top, "files": files}


def _short(filename: str) -> str:
    for marker in ("/hatchlite/", "/site-packages/", "/lib/python"):
        if marker in filename:
            return marker.strip("/") + "/" + filename.split(marker, 1)[1]
    return filename


async def serve(db: str, start: float, durable_slots: int, heap: bool) -> int:
    """`--worker DB`: serve the sleeper and answer commands on stdin until `quit`."""
    logging.getLogger("hatchlite").setLevel(logging.ERROR)
    clock = TestClock(datetime.fromtimestamp(start, UTC))
    client = Hatchet(db=db, clock=clock, auto_worker=False)
    task = define_task(client)
    worker = client.worker("bench-durable-memory", durable_slots=durable_slots, workflows=[task])
    serving = asyncio.create_task(worker.aio_start())
    state = WorkerState(clock, heap)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            command, _, arg = line.strip().partition(" ")
            if command in ("quit", ""):
                break
            reply = state.handle(command, arg)
            print(json.dumps(reply), flush=True)
    finally:
        worker.stop()
        await asyncio.wait_for(serving, 30)
        await client.aio_close()
    return 0


# -- this side ---------------------------------------------------------------------------


class WorkerProcess:
    """The `--worker DB` child: commands on its stdin, JSON replies on its stdout, its
    stderr in a log file."""

    def __init__(self, db: str, start: float, log: Path, durable_slots: int, heap: bool) -> None:
        self.log_path = log
        self._log = log.open("wb")
        argv = [sys.executable, str(Path(__file__).resolve()), "--worker", db, "--start"]
        argv += [repr(start)]
        argv += ["--durable-slots", str(durable_slots)] + (["--heap"] if heap else [])
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        self.pid = int(self._read()["ready"])

    def _read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.proc.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            self.proc.wait(5)
            raise SystemExit(f"worker exited with code {self.proc.returncode}:\n{self.output()}")
        value = json.loads(line)
        assert isinstance(value, dict)
        return value

    async def ask(self, command: str) -> dict[str, Any]:
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()
        return await asyncio.wait_for(asyncio.to_thread(self._read), TIMEOUT)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace").strip()

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(60)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.proc.kill()
            self.proc.wait()
        finally:
            self._log.close()
        if self.proc.returncode != 0:
            raise SystemExit(f"worker exited with code {self.proc.returncode}")


def _count(db: str, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


PENDING_SLEEPS = "SELECT count(*) FROM durable_events WHERE kind = 'WAIT' AND status = 'PENDING'"
COMPLETED = "SELECT count(*) FROM workflow_runs WHERE status = 'COMPLETED'"


async def _wait_for(db: str, sql: str, target: int, what: str) -> float:
    """Poll until `sql` counts `target`; returns time.time() of the poll that saw it."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        seen = _count(db, sql)
        if seen >= target:
            return time.time()
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: {seen} of {target} after {TIMEOUT:.0f}s")
        await asyncio.sleep(POLL)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values` (0 < q <= 100)."""
    rank = max(1, round(q / 100 * len(values) + 0.5 - 1e-9))
    return values[min(rank, len(values)) - 1]


async def measure(n: int, folder: Path, durable_slots: int, heap: bool) -> dict[str, Any]:
    db = str(folder / f"bench-{time.monotonic_ns()}.db")
    # Both sides keep their own TestClock, started at the same instant and moved together:
    # the runs this side creates are due (available_at, schedule deadline) by the worker's.
    clock = TestClock()
    worker = WorkerProcess(db, clock.time(), Path(db + ".log"), durable_slots, heap)
    try:
        client = Hatchet(db=db, clock=clock, auto_worker=False)
        try:
            task = define_task(client)
            # Warm-up: one run through sleep, advance and resume (imports, first-use caches).
            warm = await task.aio_run_no_wait(Nap(i=-1))
            await _wait_for(db, PENDING_SLEEPS, 1, "warm-up asleep")
            await worker.ask("advance")
            clock.advance(ADVANCE)
            await asyncio.wait_for(warm.aio_result(), TIMEOUT)
            before = await worker.ask("mem before")
            items = [task.create_bulk_run_item(Nap(i=i)) for i in range(n)]
            start = time.time()
            await task.aio_run_many_no_wait(items)
            triggered = time.time() - start
        finally:
            await client.aio_close()  # the worker's engine is the only one on the file now
        del items
        asleep_at = await _wait_for(db, PENDING_SLEEPS, n, "asleep")
        await asyncio.sleep(SETTLE)
        after = await worker.ask("mem asleep")
        advanced = (await worker.ask("advance"))["wall"]
        done_at = await _wait_for(db, COMPLETED, n + 1, "resumed")
        delays: list[float] = (await worker.ask("stats"))["delays"]
        if len(delays) != n:
            raise SystemExit(f"{len(delays)} of {n} tasks resumed")
        done = await worker.ask("mem done")
    finally:
        worker.stop()
    return {
        "trigger": triggered,
        "asleep": asleep_at - start,
        "rss_before": before["VmRSS"],
        "rss_after": after["VmRSS"],
        "rss_trimmed": after["trimmed"],
        "rss_done": done["VmRSS"],
        "hwm": done["VmHWM"],
        "hwm_asleep": after["VmHWM"],
        "objects": (after["objects"] - before["objects"]) / n,
        "objects_left": (done["objects"] - before["objects"]) / n,
        "ended": done["ended"],
        "released": done["released"],
        "per_task": (after["VmRSS"] - before["VmRSS"]) / n,
        "per_task_trimmed": (after["trimmed"] - before["VmRSS"]) / n,
        "resume": done_at - advanced,
        "first": delays[0],
        "p50": percentile(delays, 50),
        "p99": percentile(delays, 99),
        "heap": after.get("heap"),
    }


def _medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k, v in rows[0].items() if isinstance(v, (int, float))]
    return {k: statistics.median(r[k] for r in rows) for k in keys}


def _versions() -> str:
    return (
        f"hatchlite {importlib.metadata.version('hatchlite')} | Python "
        f"{platform.python_version()} | SQLite {sqlite3.sqlite_version} | "
        f"{platform.machine()}, {os.cpu_count()} cores"
    )


def _mb(x: float) -> str:
    return f"{x / 1e6:,.1f}"


def _print_heap(n: int, heap: dict[str, Any], rss: dict[str, Any]) -> None:
    total = heap["total"]
    print(
        f"\ntracemalloc, N={n:,} (separate run; tracemalloc on from just before the trigger): "
        f"Python heap {total / n:,.0f} B per sleeping task ({_mb(total)} MB); RSS of that "
        f"run {rss['per_task']:,.0f} B per task"
    )
    print(f"top {TOP} allocation sites, bytes per sleeping task:")
    for row in heap["top"]:
        print(f"  {row['bytes'] / n:>8,.0f} B  {row['blocks'] / n:>6.1f} blocks  {row['where']}")
    print(f"top {TOP} files, bytes per sleeping task:")
    for row in heap["files"]:
        print(f"  {row['bytes'] / n:>8,.0f} B  {row['where']}")


def _print_tables(results: dict[int, list[dict[str, Any]]]) -> None:
    print(
        f"\n{'N':>8} {'RSS before MB':>14} {'RSS asleep MB':>14} {'B/task':>7} "
        f"{'trimmed B/task':>15} {'objs/task':>10} {'peak asleep MB':>15} "
        f"{'peak resume MB':>15} {'RSS done MB':>12} {'objs left/task':>15}"
    )
    for n, rows in results.items():
        med = _medians(rows)
        print(
            f"{n:>8,} {_mb(med['rss_before']):>14} {_mb(med['rss_after']):>14} "
            f"{med['per_task']:>7,.0f} {med['per_task_trimmed']:>15,.0f} "
            f"{med['objects']:>10.1f} {_mb(med['hwm_asleep']):>15} {_mb(med['hwm']):>15} "
            f"{_mb(med['rss_done']):>12} {med['objects_left']:>15.2f}"
        )
    print(
        "B/task: (RSS asleep - RSS before) / N, after gc.collect(); trimmed: the same after "
        "malloc_trim(0) in the worker (freed heap glibc kept); objs/task: gc-tracked objects "
        "added per sleeping task; peak asleep: VmHWM from start to all asleep; peak resume: "
        "VmHWM from the trim to the end (the resume); RSS done: once the worker released the attempts; "
        "objs left/task: gc-tracked objects still there then, per task"
    )
    print(
        f"\n{'N':>8} {'trigger s':>10} {'to asleep s':>12} {'asleep/s':>9} "
        f"{'resume all s':>13} {'resumed/s':>10} {'first ms':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'attempts end s':>15} {'released s':>11}"
    )
    for n, rows in results.items():
        med = _medians(rows)
        print(
            f"{n:>8,} {med['trigger']:>10.2f} {med['asleep']:>12.2f} "
            f"{n / med['asleep']:>9,.0f} {med['resume']:>13.2f} {n / med['resume']:>10,.0f} "
            f"{med['first'] * 1000:>9.0f} {med['p50'] * 1000:>7.0f} {med['p99'] * 1000:>7.0f} "
            f"{med['ended']:>15.2f} {med['released']:>11.2f}"
        )
    print(
        "trigger: the aio_run_many_no_wait call (part of 'to asleep'); to asleep: trigger "
        "call -> N waits PENDING; resume all: clock moved -> N runs COMPLETED; first/p50/p99: "
        "clock moved -> a task's line after its sleep (all N come due at the same instant, "
        "so p50/p99 are mostly queueing behind the other resumes); attempts end: clock moved "
        "-> the last resumed attempt's asyncio task ended; released: clock moved -> under 10% "
        "of the sleepers' gc-tracked objects left in the worker (looked at every second after "
        "'resume all', so +-1 s)"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=None, help=f"N ({DEFAULT_NS})")
    parser.add_argument(
        "--reps", type=int, default=DEFAULT_REPS, help="repetitions per N (0: --heap run only)"
    )
    parser.add_argument("--durable-slots", type=int, default=DURABLE_SLOTS)
    parser.add_argument("--heap", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_NS}")
    parser.add_argument("--worker", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return await serve(args.worker, args.start, args.durable_slots, args.heap)
    ns: list[int] = args.n or list(QUICK_NS if args.quick else DEFAULT_NS)
    logging.getLogger("hatchlite").setLevel(logging.ERROR)
    print(_versions(), flush=True)
    print(
        f"one worker process, durable_slots={args.durable_slots}, TestClock; each task "
        f"sleeps {SLEEP} (no eviction: every sleeper's coroutine stays in memory); "
        f"{args.reps} repetition(s) per N, medians"
    )
    results: dict[int, list[dict[str, Any]]] = {n: [] for n in ns}
    heap_run: dict[str, Any] | None = None
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for n in ns:
                row = await measure(n, Path(tmp), args.durable_slots, heap=False)
                results[n].append(row)
                print(
                    f"  rep {rep + 1}: N={n:,}: asleep {row['asleep']:.2f}s, "
                    f"{row['per_task']:,.0f} B/task, resume all {row['resume']:.2f}s",
                    file=sys.stderr,
                )
        if args.heap:
            heap_run = await measure(min(ns), Path(tmp), args.durable_slots, heap=True)
    if args.reps > 0:
        _print_tables(results)
    if heap_run is not None and heap_run["heap"] is not None:
        _print_heap(min(ns), heap_run["heap"], heap_run)
    print(f"\ntotal {time.perf_counter() - begun:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
