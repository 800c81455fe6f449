"""Memory and resume time of N sleeping durable tasks on one worker process, without and
with durable eviction, side by side.

    python bench/durable_memory.py [--n N ...] [--mode {both,none,evict}] [--reps R]
                                   [--durable-slots D] [--heap/--no-heap] [--quick]

Two modes (--mode both, the default, measures each N in both, one after the other):

  no eviction          the task is defined with `eviction_policy=None` and the worker has
                       `durable_slots=N`: a waiting durable task keeps its durable slot,
                       so all N can only be asleep at once with N slots, and every sleeper
                       keeps its coroutine (and the attempt around it) in the worker's
                       memory. This is the earlier baseline.
  eviction (defaults)  the task has the default policy (`EvictionPolicy(ttl=15 min,
                       allow_capacity_eviction=True, priority=0)`) and the worker the
                       default durable slots (1,000; --durable-slots D changes it, for
                       this mode only). When a new durable task is claimed and no slot is
                       free, a waiting one is evicted: its coroutine dropped, its task run
                       stored as evicted (task_runs.status 'WAITING', its sleep still a
                       PENDING durable_events entry). The worker so holds at most D
                       sleepers in memory. When the sleeps come due, the evicted runs are
                       queued again and replayed from their durable history (the sleep
                       returns at once), as many at a time as there are free durable slots.
                       The clock's move (1 h 1 s) is also past the 15 min ttl of the
                       sleepers still in memory: they are evicted then too, and replayed
                       like the others (with a real clock a 1 h sleeper would have been
                       evicted by its ttl long before; here the clock stands still until
                       the move, so only capacity evicts while they fall asleep).

For each N and mode, on a fresh SQLite file in a temp dir:

  worker      a child process (`--worker DB`, this script again) runs
              `Hatchet(db, clock=TestClock(), auto_worker=False)` and
              `hatchet.worker(..., durable_slots=...).aio_start()`, serving one durable
              task: `await ctx.aio_sleep_for(timedelta(hours=1))`, then it appends
              `time.perf_counter()` to a list and returns None. It takes commands on
              stdin and answers one JSON line each on stdout: `mem` (gc.collect(), then
              VmRSS, its anonymous part RssAnon, and VmHWM from /proc/self/status, the
              bytes SQLite has malloc'ed (sqlite3_memory_used), the count of gc-tracked
              objects, and the most attempts its worker held in memory at once since the
              last `mem before` or `advance`, sampled every 10 ms; once all are asleep,
              also VmRSS after glibc's malloc_trim(0), then VmHWM is reset through
              /proc/self/clear_refs), `advance` (move its TestClock 1 h 1 s forward),
              `stats` (wake-to-resume of every task since the last `advance`), `quit`.
              Its TestClock and this side's start at the same instant and move together,
              so the runs this side creates are due by the worker's clock.
  this side   triggers from its own client on the same file (`auto_worker=False`), so
              the inputs, run items and refs it builds are not in the worker's RSS. One
              untimed warm-up run goes through the whole path (sleep, advance, resume),
              then `mem` gives the RSS before. One `aio_run_many_no_wait` of N runs
              follows; its client is closed as soon as it returns, so the worker is the
              only engine on the file. This side polls the file (read-only, every 20 ms)
              until N sleep waits are PENDING in durable_events (evicted runs keep theirs):
              "to all asleep" runs from the trigger call to then. After 1 s more, `mem`
              gives the RSS after; (after - before) / N is the bytes per sleeping task,
              and the file gives how many task runs are RUNNING (held by the worker) and
              WAITING (evicted). Then `advance`: the sleeps all come due at once; "resume
              all" runs from the clock's move (wall time, taken in the worker) until this
              side sees N+1 runs COMPLETED. Per task, wake-to-resume is the clock's move
              to the task's line after its sleep (both perf_counter in the worker; for an
              evicted task, the line of its replay): p50/p99, and the first to resume.
              A last `mem` waits until the worker has let go of the tasks too (runs
              are COMPLETED in the file before the worker has let go of every attempt:
              "attempts end" is the clock's move to the end of the last attempt's
              asyncio task, seen by a done-callback; "released" to the moment fewer
              than 10% of the gc-tracked objects the sleepers added are left, looked at
              every second), and gives the RSS, the peak during the resume, the
              gc-tracked objects left and the evictions the file recorded in all
              (DURABLE_EVICTED task events).

Each N and mode is measured R times (a new file and worker each time); the figures are
medians. With --heap (the default), one more worker per mode at the smallest N runs with
tracemalloc started just before the trigger (after the warm-up; it slows the worker and
adds to its RSS, so that run is reported apart): the Python heap per sleeping task and
the top 10 allocation sites of the sleeping tasks, by line.
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

from hatchlite import DurableContext, Hatchet, Standalone, Worker
from hatchlite.testing import TestClock

DEFAULT_NS = (10_000, 100_000)
QUICK_NS = (2_000, 5_000)
DEFAULT_REPS = 1
# --mode: which modes to measure; "none": eviction_policy=None and N durable slots;
# "evict": the default policy and the default durable slots (hatchlite's: 1,000).
MODES = {"none": "no eviction", "evict": "eviction (defaults)"}
SAMPLE = 0.01  # seconds between two looks at how many attempts the worker holds
SLEEP = timedelta(hours=1)
ADVANCE = SLEEP + timedelta(seconds=1)
POLL = 0.02
SETTLE = 1.0  # seconds between "all asleep" and reading the RSS
TIMEOUT = 600.0  # seconds any one phase may take
PROGRESS = 30.0  # seconds between two progress lines of a slow phase (stderr)
TASK_NAME = "bench_sleeper"
TOP = 10


class Nap(BaseModel):
    i: int


# -- the worker process ------------------------------------------------------------------

RESUMED: list[float] = []  # perf_counter of each task's line after its sleep
FINISHED: list[float] = []  # perf_counter of the end of each resumed attempt's asyncio task


def _finished(task: asyncio.Task[Any]) -> None:
    FINISHED.append(time.perf_counter())


def define_task(client: Hatchet, mode: str) -> Standalone[Nap, Any]:
    # "evict": the default eviction policy (the parameter left out); "none": no eviction.
    policy: dict[str, Any] = {"eviction_policy": None} if mode == "none" else {}

    @client.durable_task(name=TASK_NAME, input_validator=Nap, **policy)
    async def sleeper(input: Nap, ctx: DurableContext) -> None:
        await ctx.aio_sleep_for(SLEEP)
        RESUMED.append(time.perf_counter())
        current = asyncio.current_task()  # the attempt's own task (Execution._run)
        if current is not None:
            current.add_done_callback(_finished)

    return sleeper


def _proc_status() -> dict[str, int]:
    """VmRSS and VmHWM of this process, and the parts of VmRSS (RssAnon: heap and
    anonymous maps; RssFile: mapped files; RssShmem: shared memory), bytes."""
    found: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                found[key] = int(value.split()[0]) * 1024
    return found


def _sqlite_memory() -> int:
    """Bytes SQLite has malloc'ed (page caches, statements; sqlite3_memory_used of the
    library the sqlite3 module links, -1 if it cannot be found)."""
    try:
        lib = ctypes.CDLL(sqlite3_lib())
    except OSError:
        return -1
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    return int(lib.sqlite3_memory_used())


def sqlite3_lib() -> str:
    import _sqlite3  # the extension module: the libsqlite3 it loaded is in this process

    with open("/proc/self/maps") as maps:
        for line in maps:
            if "libsqlite3" in line:
                return line.split()[-1]
    return _sqlite3.__file__  # statically linked: the symbols are in the module itself


class WorkerState:
    def __init__(self, clock: TestClock, heap: bool, worker: Worker) -> None:
        self.clock = clock
        self.heap = heap
        self.worker = worker
        self.snapshot: tracemalloc.Snapshot | None = None
        self.advanced_at = 0.0
        self.objects: dict[str, int] = {}
        self.held_peak = 0  # most attempts the worker held at once since the last reset

    def held(self) -> int:
        """Attempts the worker holds in memory now (running or waiting; hatchlite's
        LocalWorker.running, read from this thread: a bench-only look inside)."""
        local = self.worker._local
        return len(local.running) if local is not None else 0

    async def sample(self) -> None:
        while True:
            self.held_peak = max(self.held_peak, self.held())
            await asyncio.sleep(SAMPLE)

    def handle(self, command: str, arg: str) -> dict[str, Any]:
        if command == "mem":  # arg: before, asleep, done
            idle = self._wait_idle() if arg == "done" else None
            gc.collect()
            self.objects[arg] = len(gc.get_objects())
            reply: dict[str, Any] = {**_proc_status(), "objects": self.objects[arg]}
            reply["sqlite"] = _sqlite_memory()
            reply["held"], reply["held_peak"] = self.held(), max(self.held_peak, self.held())
            if arg == "before":
                self.held_peak = 0
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
            self.held_peak = 0
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


async def serve(db: str, start: float, mode: str, durable_slots: int | None, heap: bool) -> int:
    """`--worker DB`: serve the sleeper and answer commands on stdin until `quit`."""
    logging.getLogger("hatchlite").setLevel(logging.ERROR)
    clock = TestClock(datetime.fromtimestamp(start, UTC))
    client = Hatchet(db=db, clock=clock, auto_worker=False)
    task = define_task(client, mode)
    worker = client.worker("bench-durable-memory", durable_slots=durable_slots, workflows=[task])
    serving = asyncio.create_task(worker.aio_start())
    state = WorkerState(clock, heap, worker)
    sampler = asyncio.create_task(state.sample())
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
        sampler.cancel()
        worker.stop()
        await asyncio.wait_for(serving, 30)
        await client.aio_close()
    return 0


# -- this side ---------------------------------------------------------------------------


class WorkerProcess:
    """The `--worker DB` child: commands on its stdin, JSON replies on its stdout, its
    stderr in a log file."""

    def __init__(
        self, db: str, start: float, log: Path, mode: str, durable_slots: int | None, heap: bool
    ) -> None:
        self.log_path = log
        self._log = log.open("wb")
        argv = [sys.executable, str(Path(__file__).resolve()), "--worker", db, "--start"]
        argv += [repr(start), "--mode", mode] + (["--heap"] if heap else ["--no-heap"])
        if durable_slots is not None:
            argv += ["--durable-slots", str(durable_slots)]
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
        """Ask the worker to quit; SystemExit if it did not exit cleanly (unless an error
        is on its way out already: that one is reported, with the worker's log)."""
        failing = sys.exc_info()[1] is not None
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
        if failing:
            log = self.log_path.read_text(errors="replace").strip()
            tail = "\n".join(log.splitlines()[-40:])
            print(f"worker log (exit code {self.proc.returncode}):\n{tail}", file=sys.stderr)
        elif self.proc.returncode != 0:
            raise SystemExit(f"worker exited with code {self.proc.returncode}")


def _count(db: str, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


PENDING_SLEEPS = "SELECT count(*) FROM durable_events WHERE kind = 'WAIT' AND status = 'PENDING'"
COMPLETED = "SELECT count(*) FROM workflow_runs WHERE status = 'COMPLETED'"
HELD = "SELECT count(*) FROM task_runs WHERE status = 'RUNNING'"  # by the worker
EVICTED = "SELECT count(*) FROM task_runs WHERE status = 'WAITING'"  # evicted, not queued yet
EVICTIONS = "SELECT count(*) FROM task_events WHERE event_type = 'DURABLE_EVICTED'"


async def _wait_for(db: str, sql: str, target: int, what: str) -> float:
    """Poll until `sql` counts `target`; returns time.time() of the poll that saw it."""
    begun = time.monotonic()
    deadline, report = begun + TIMEOUT, begun + PROGRESS
    while True:
        seen = _count(db, sql)
        if seen >= target:
            return time.time()
        now = time.monotonic()
        if now > deadline:
            raise SystemExit(f"{what}: {seen} of {target} after {TIMEOUT:.0f}s")
        if now > report:  # a slow phase: show how far it got
            print(f"    {what}: {seen:,} of {target:,} after {now - begun:.0f}s", file=sys.stderr)
            report += PROGRESS
        await asyncio.sleep(POLL)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted `values` (0 < q <= 100)."""
    rank = max(1, round(q / 100 * len(values) + 0.5 - 1e-9))
    return values[min(rank, len(values)) - 1]


async def measure(
    n: int, folder: Path, mode: str, durable_slots: int | None, heap: bool
) -> dict[str, Any]:
    db = str(folder / f"bench-{mode}-{time.monotonic_ns()}.db")
    slots = n if mode == "none" else durable_slots  # None: hatchlite's default
    # Both sides keep their own TestClock, started at the same instant and moved together:
    # the runs this side creates are due (available_at, schedule deadline) by the worker's.
    clock = TestClock()
    worker = WorkerProcess(db, clock.time(), Path(db + ".log"), mode, slots, heap)
    try:
        client = Hatchet(db=db, clock=clock, auto_worker=False)
        try:
            task = define_task(client, mode)
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
        held, evicted = _count(db, HELD), _count(db, EVICTED)
        advanced = (await worker.ask("advance"))["wall"]
        done_at = await _wait_for(db, COMPLETED, n + 1, "resumed")
        delays: list[float] = (await worker.ask("stats"))["delays"]
        if len(delays) != n:
            raise SystemExit(f"{len(delays)} of {n} tasks resumed")
        done = await worker.ask("mem done")
        evictions = _count(db, EVICTIONS)
        log = worker.output()
    finally:
        worker.stop()
    if log:  # the worker logs hatchlite's errors (its level: ERROR) and tracebacks
        print(f"worker log (N={n:,}, {MODES[mode]}):\n{log}", file=sys.stderr)
    return {
        "n": n,
        "mode": mode,
        "log": int(bool(log)),
        "held": held,
        "evicted": evicted,
        "evictions": evictions,
        "held_peak_asleep": after["held_peak"],
        "held_peak_resume": done["held_peak"],
        "trigger": triggered,
        "asleep": asleep_at - start,
        "rss_before": before["VmRSS"],
        "rss_after": after["VmRSS"],
        "rss_trimmed": after["trimmed"],
        "anon_before": before["RssAnon"],
        "anon_after": after["RssAnon"],
        "file_before": before["RssFile"] + before["RssShmem"],
        "file_after": after["RssFile"] + after["RssShmem"],
        "sqlite_before": before["sqlite"],
        "sqlite_after": after["sqlite"],
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


def _print_heap(n: int, mode: str, heap: dict[str, Any], rss: dict[str, Any]) -> None:
    total = heap["total"]
    print(
        f"\ntracemalloc, N={n:,}, {MODES[mode]} (separate run; tracemalloc on from just "
        f"before the trigger): Python heap {total / n:,.0f} B per sleeping task "
        f"({_mb(total)} MB); RSS of that run {rss['per_task']:,.0f} B per task"
    )
    print(f"top {TOP} allocation sites, bytes per sleeping task:")
    for row in heap["top"]:
        print(f"  {row['bytes'] / n:>8,.0f} B  {row['blocks'] / n:>6.1f} blocks  {row['where']}")
    print(f"top {TOP} files, bytes per sleeping task:")
    for row in heap["files"]:
        print(f"  {row['bytes'] / n:>8,.0f} B  {row['where']}")


Key = tuple[int, str]  # (N, mode)


def _label(mode: str) -> str:
    return MODES[mode]


def _print_tables(results: dict[Key, list[dict[str, Any]]]) -> None:
    w = max(len(m) for m in MODES.values())
    print(
        f"\n{'N':>8} {'mode':<{w}} {'trimmed B/task':>15} {'objs/task':>10} "
        f"{'held asleep':>12} {'evicted asleep':>15} {'peak held':>10} {'peak held resume':>17} "
        f"{'anon asleep MB':>15} {'SQLite MB':>10} {'peak asleep MB':>15} "
        f"{'RSS done MB':>12} {'objs left/task':>15}"
    )
    for (n, mode), rows in results.items():
        med = _medians(rows)
        print(
            f"{n:>8,} {_label(mode):<{w}} {med['per_task_trimmed']:>15,.0f} "
            f"{med['objects']:>10.1f} {med['held']:>12,.0f} {med['evicted']:>15,.0f} "
            f"{med['held_peak_asleep']:>10,.0f} {med['held_peak_resume']:>17,.0f} "
            f"{_mb(med['anon_after']):>15} {_mb(med['sqlite_after']):>10} "
            f"{_mb(med['hwm_asleep']):>15} {_mb(med['rss_done']):>12} "
            f"{med['objects_left']:>15.2f}"
        )
    print(
        "trimmed: (RSS asleep - RSS before) / N after malloc_trim(0) in the worker (freed "
        "heap glibc kept); objs/task: gc-tracked objects added per sleeping task; held / "
        "evicted asleep: task runs RUNNING (held by the worker) / WAITING (evicted) in the "
        "file once all are asleep; peak held: most attempts the worker held in memory at "
        "once (LocalWorker.running, sampled every 10 ms), from the trigger to all asleep; "
        "peak held resume: the same from the clock's move to the end; anon asleep: RssAnon "
        "(heap, anonymous maps) once all are asleep; SQLite: sqlite3_memory_used then; "
        "peak asleep: VmHWM from "
        "start to all asleep; RSS done: once the worker released the attempts; objs "
        "left/task: gc-tracked objects still there then, per task"
    )
    print(
        f"\n{'N':>8} {'mode':<{w}} {'trigger s':>10} {'asleep/s':>9} {'resumed/s':>10} "
        f"{'first ms':>9} {'attempts end s':>15} {'released s':>11} {'evictions':>10}"
    )
    for (n, mode), rows in results.items():
        med = _medians(rows)
        print(
            f"{n:>8,} {_label(mode):<{w}} {med['trigger']:>10.2f} {n / med['asleep']:>9,.0f} "
            f"{n / med['resume']:>10,.0f} {med['first'] * 1000:>9.0f} "
            f"{med['ended']:>15.2f} {med['released']:>11.2f} {med['evictions']:>10,.0f}"
        )
    print(
        "trigger: the aio_run_many_no_wait call (part of 'to asleep'); first: clock moved "
        "-> the first task's line after its sleep; attempts end: clock moved -> the last "
        "resumed attempt's asyncio task ended; released: clock moved -> under 10% of the "
        "sleepers' gc-tracked objects left in the worker (looked at every second after "
        "'resume all', so +-1 s); evictions: DURABLE_EVICTED task events in the file at "
        "the end (capacity evictions while putting to sleep, and any at the clock's move)"
    )
    print(
        f"\n{'N':>8} {'mode':<{w}} {'RSS before MB':>14} {'RSS asleep MB':>14} "
        f"{'B/task':>7} {'to asleep s':>12} {'resume all s':>13} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'peak resume MB':>15}"
    )
    for (n, mode), rows in results.items():
        med = _medians(rows)
        print(
            f"{n:>8,} {_label(mode):<{w}} {_mb(med['rss_before']):>14} "
            f"{_mb(med['rss_after']):>14} {med['per_task']:>7,.0f} {med['asleep']:>12.2f} "
            f"{med['resume']:>13.2f} {med['p50'] * 1000:>7.0f} {med['p99'] * 1000:>7.0f} "
            f"{_mb(med['hwm']):>15}"
        )
    print(
        "RSS asleep: the worker's once all N are asleep (+1 s, after gc.collect()); B/task: "
        "(RSS asleep - RSS before) / N; to asleep: trigger call -> N sleep waits PENDING "
        "(evicted ones included); resume all: clock moved -> N runs COMPLETED; p50/p99: "
        "clock moved -> a task's line after its sleep (all N come due at the same instant, "
        "so p50/p99 are mostly queueing behind the other resumes; evicted tasks are "
        "replayed, as many at a time as durable slots are free); peak resume: VmHWM from "
        "after a malloc_trim(0) once all are asleep to the end (the resume)"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=None, help=f"N ({DEFAULT_NS})")
    parser.add_argument(
        "--mode",
        choices=("both", *MODES),
        default="both",
        help="none: eviction_policy=None, durable_slots=N; evict: default policy and "
        "durable slots; both (default): each N in both",
    )
    parser.add_argument(
        "--reps", type=int, default=DEFAULT_REPS, help="repetitions per N (0: --heap run only)"
    )
    parser.add_argument(
        "--durable-slots",
        type=int,
        default=None,
        help="durable slots of the eviction mode's worker (default: hatchlite's, 1000); "
        "the no-eviction worker has N",
    )
    parser.add_argument("--heap", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_NS}")
    parser.add_argument("--worker", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode = "evict" if args.mode == "both" else args.mode
        return await serve(args.worker, args.start, mode, args.durable_slots, args.heap)
    ns: list[int] = args.n or list(QUICK_NS if args.quick else DEFAULT_NS)
    modes = list(MODES) if args.mode == "both" else [args.mode]
    logging.getLogger("hatchlite").setLevel(logging.ERROR)
    print(_versions(), flush=True)
    evict_slots = args.durable_slots if args.durable_slots is not None else "1000 (default)"
    print(
        f"one worker process, TestClock; each task sleeps {SLEEP}; "
        + "; ".join(
            {
                "none": "no eviction: eviction_policy=None, durable_slots=N (every "
                "sleeper's coroutine stays in memory)",
                "evict": f"eviction (defaults): EvictionPolicy(ttl=15 min, capacity "
                f"eviction, priority 0), durable_slots={evict_slots}",
            }[m]
            for m in modes
        )
        + f"; {args.reps} repetition(s) per N and mode, medians",
        flush=True,
    )
    results: dict[Key, list[dict[str, Any]]] = {(n, m): [] for n in ns for m in modes}
    heap_runs: list[dict[str, Any]] = []
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for n in ns:
                for mode in modes:
                    row = await measure(n, Path(tmp), mode, args.durable_slots, heap=False)
                    results[n, mode].append(row)
                    print(
                        f"  rep {rep + 1}: N={n:,} {MODES[mode]}: asleep {row['asleep']:.2f}s, "
                        f"{row['per_task']:,.0f} B/task, held {row['held']:,}, evicted "
                        f"{row['evicted']:,}, resume all {row['resume']:.2f}s, "
                        f"p50/p99 {row['p50'] * 1000:.0f}/{row['p99'] * 1000:.0f} ms "
                        f"({time.perf_counter() - begun:.0f}s in)",
                        file=sys.stderr,
                        flush=True,
                    )
        if args.heap:
            for mode in modes:
                heap_runs.append(await measure(min(ns), Path(tmp), mode, args.durable_slots, True))
    for run in heap_runs:
        if run["heap"] is not None:
            _print_heap(run["n"], run["mode"], run["heap"], run)
    if args.reps > 0:
        _print_tables(results)
    if any(r["log"] for rows in results.values() for r in rows) or any(r["log"] for r in heap_runs):
        print("\nthe worker logged errors (see stderr)")
    print(f"\ntotal {time.perf_counter() - begun:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
