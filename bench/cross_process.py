"""Cross-process latency of hatchlite: a trigger-only process and a worker process on
one SQLite file, compared with the same task run in one process.

    python bench/cross_process.py [--n N] [--burst N] [--idle-n N] [--quick]

This process is the trigger-only side (`Hatchet(db=..., auto_worker=False)`, as a web
app would be); a child process (`--worker DB`) serves the task with
`hatchet.worker(...).start()` and is stopped with SIGTERM at the end. The worker learns
of a new run by polling SQLite's `PRAGMA data_version`, and the trigger-only process
learns of its result the same way (see hatchlite/scheduler/engine.py: every POLL_ACTIVE
while there was activity within ACTIVE_WINDOW, else every POLL_IDLE).

Definitions:

* trigger->start: `time.time()` taken just before the trigger call and carried in the
  input; the task (a no-op `async def`) returns `time.time() - input.t` as its first
  act. Wall clock, so it is comparable across the two processes.
* round trip: `time.perf_counter()` around `task.run(...)` in the triggering process,
  i.e. trigger call to result returned.
* Runs are triggered one at a time (each `task.run` waits for its result), with no gap,
  with a random 0-20 ms gap, or with a gap just past ACTIVE_WINDOW (so the worker's
  poller has dropped to its idle interval). The burst triggers N runs with one
  `run_many` (5 times, pooled); its per-run trigger->start includes queueing behind the
  earlier runs of the burst, and its runs/s is runs / summed wall time of the bursts.
  A burst's clock (and its `t`) starts before its N run items are built (~2 ms for 200).
* in-process: the same task on another SQLite file, triggered in this process and run
  by the implicit worker (no polling involved: the trigger wakes the engine directly).
  It is measured first, before the worker process exists.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchkit import percentile
from pydantic import BaseModel

from hatchlite import Context, Hatchet, Standalone
from hatchlite.scheduler.engine import ACTIVE_WINDOW, POLL_ACTIVE, POLL_IDLE

# -- defaults ------------------------------------------------------------------------

DEFAULT_N = 500  # sequential runs per one-at-a-time variant
DEFAULT_BURST = 200  # runs in the run_many burst
BURST_REPEATS = 5  # bursts per mode (one burst lasts ~20 ms: too noisy alone)
DEFAULT_IDLE_N = 16  # runs with a gap past ACTIVE_WINDOW (each costs ~1.2 s)
QUICK_N = 100
QUICK_IDLE_N = 4
WARMUP = 20  # untimed runs before each measured variant
GAP_MAX = 0.020  # the random-gap variant sleeps uniform(0, GAP_MAX) between runs
IDLE_GAP = (ACTIVE_WINDOW + 0.1, ACTIVE_WINDOW + 0.3)  # the idle variant's gap range
WORKER_SLOTS = 100
WORKER_READY_TIMEOUT = 30.0  # seconds for the worker process to run its first task
STOP_TIMEOUT = 15.0  # seconds the worker may take to exit after SIGTERM
TASK_NAME = "cross_process_stamp"


# -- the task (defined the same way in both processes) ---------------------------------


class Stamp(BaseModel):
    """Input: `time.time()` at the trigger call."""

    t: float


# Any, not dict: hatchlite's `task` decorator types an `async def` task's output as the
# coroutine (Hatchet's SDK unwraps it); `check_output` checks the output at run time.
StampTask = Standalone[Stamp, Any]


def define_task(client: Hatchet) -> StampTask:
    @client.task(name=TASK_NAME, input_validator=Stamp)
    async def stamp(input: Stamp, ctx: Context) -> dict[str, Any]:
        return {"delay": time.time() - input.t, "pid": os.getpid()}

    return stamp


def serve(db: str, slots: int) -> int:
    """`--worker DB`: serve the task until SIGTERM."""
    client = Hatchet(db=db, auto_worker=False)
    task = define_task(client)
    client.worker("bench-cross-process", slots=slots, workflows=[task]).start()
    return 0


# -- measuring -----------------------------------------------------------------------


@dataclass
class Row:
    mode: str  # "cross-process" or "in-process"
    variant: str
    key: str  # rows with the same key are compared across modes
    starts: list[float]  # trigger->start, seconds
    seconds: float  # wall time of the whole sequence (incl. gaps) or of the burst
    round_trips: list[float] = field(default_factory=list)  # seconds; empty for a burst
    bursts: list[float] = field(default_factory=list)  # seconds of each burst

    @property
    def rate(self) -> float:
        return len(self.starts) / self.seconds if self.seconds > 0 else 0.0


def check(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


def check_output(out: Any, pid: int, same_process: bool) -> float:
    check(isinstance(out, dict) and "delay" in out, f"unexpected task output {out!r}")
    where = "in this process" if same_process else "in the worker process"
    check((out["pid"] == pid) == same_process, f"task did not run {where} (pid {out['pid']})")
    return float(out["delay"])


def sequential(
    task: StampTask,
    n: int,
    gap: Callable[[], float] | None,
    same_process: bool,
) -> tuple[list[float], list[float], float]:
    """Trigger `n` runs one at a time; return trigger->start delays, round trips, wall time."""
    me = os.getpid()
    for _ in range(WARMUP):
        check_output(task.run(Stamp(t=time.time())), me, same_process)
    starts: list[float] = []
    trips: list[float] = []
    began = time.perf_counter()
    for _ in range(n):
        if gap is not None:
            time.sleep(gap())
        t0 = time.perf_counter()
        out = task.run(Stamp(t=time.time()))
        trips.append(time.perf_counter() - t0)
        starts.append(check_output(out, me, same_process))
    return starts, trips, time.perf_counter() - began


def burst(
    task: StampTask, n: int, repeats: int, same_process: bool
) -> tuple[list[float], list[float]]:
    """`repeats` times, trigger `n` runs with one `run_many` and wait for all of them.
    Returns every run's trigger->start delay and the wall time of each burst."""
    me = os.getpid()
    warm = [task.create_bulk_run_item(Stamp(t=time.time())) for _ in range(WARMUP)]
    for out in task.run_many(warm):
        check_output(out, me, same_process)
    starts: list[float] = []
    seconds: list[float] = []
    for _ in range(repeats):
        time.sleep(0.05)  # let the previous burst's stragglers (result polling) settle
        began = time.perf_counter()
        t = time.time()
        outs = task.run_many([task.create_bulk_run_item(Stamp(t=t)) for _ in range(n)])
        seconds.append(time.perf_counter() - began)
        check(len(outs) == n, f"run_many returned {len(outs)} results for {n} runs")
        starts += [check_output(out, me, same_process) for out in outs]
    return starts, seconds


@dataclass
class Plan:
    n: int
    burst: int
    idle_n: int
    seed: int


def measure(
    mode: str,
    task: StampTask,
    plan: Plan,
    same_process: bool,
    phase: Callable[[str, float], None],
) -> list[Row]:
    rows: list[Row] = []
    rng = random.Random(plan.seed)

    phase("1 at a time", 30 + plan.n * 0.1)
    starts, trips, secs = sequential(task, plan.n, None, same_process)
    rows.append(Row(mode, "1 at a time, no gap", "seq", starts, secs, trips))

    phase("1 at a time, random gap", 30 + plan.n * 0.12)
    starts, trips, secs = sequential(task, plan.n, lambda: rng.uniform(0.0, GAP_MAX), same_process)
    rows.append(
        Row(mode, f"1 at a time, gap 0-{GAP_MAX * 1000:.0f} ms", "gap", starts, secs, trips)
    )

    if not same_process and plan.idle_n > 0:
        lo, hi = IDLE_GAP
        phase("1 at a time, idle gap", 30 + plan.idle_n * (hi + 0.2))
        starts, trips, secs = sequential(
            task, plan.idle_n, lambda: rng.uniform(lo, hi), same_process
        )
        rows.append(
            Row(mode, f"1 at a time, gap {lo:.1f}-{hi:.1f} s (idle)", "idle", starts, secs, trips)
        )

    phase("burst", 60 + plan.burst * BURST_REPEATS * 0.05)
    starts, each = burst(task, plan.burst, BURST_REPEATS, same_process)
    rows.append(
        Row(
            mode,
            f"burst: run_many of {plan.burst}, x{BURST_REPEATS}",
            "burst",
            starts,
            sum(each),
            bursts=each,
        )
    )
    return rows


# -- the worker process ------------------------------------------------------------------


class Watchdog:
    """A thread that ends the script (killing the worker) if a phase overruns its
    deadline or the worker process exits early, so a hang never blocks the caller."""

    def __init__(self) -> None:
        self.worker: WorkerProcess | None = None
        self.tmp: Path | None = None  # removed on abort
        self._phase = "starting"
        self._deadline = float("inf")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bench-watchdog", daemon=True)
        self._thread.start()

    def phase(self, name: str, seconds: float) -> None:
        self._phase = name
        self._deadline = time.monotonic() + seconds

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(0.1):
            worker = self.worker
            if worker is not None and not worker.stopping:
                code = worker.proc.poll()
                if code is not None:
                    self._abort(f"worker process exited with code {code} during '{self._phase}'")
            if time.monotonic() > self._deadline:
                self._abort(f"'{self._phase}' did not finish in time (hang?)")

    def _abort(self, reason: str) -> None:
        print(f"\nERROR: {reason}", file=sys.stderr, flush=True)
        if self.worker is not None:
            with contextlib.suppress(OSError):
                self.worker.proc.kill()
            print(f"worker output:\n{self.worker.output() or '(none)'}", file=sys.stderr)
        sys.stderr.flush()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        os._exit(2)


class WorkerProcess:
    """The `--worker DB` child; its stdout and stderr go to a log file."""

    def __init__(self, db: Path, log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.stopping = False
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(db)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace").strip()

    def stop(self) -> tuple[int | None, float, str]:
        """SIGTERM, wait up to STOP_TIMEOUT; kill if it hangs. Returns (code, s, note)."""
        self.stopping = True
        began = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        note = ""
        try:
            code: int | None = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            note = f"did not exit within {STOP_TIMEOUT:.0f}s of SIGTERM; killed"
        seconds = time.perf_counter() - began
        self._log.close()
        return code, seconds, note


# -- report ----------------------------------------------------------------------------


def ms(x: float) -> str:
    return f"{x * 1000:.2f}"


def spread(row: Row) -> str:
    """The slowest and fastest single burst of `row`, as runs/s."""
    n = len(row.starts) / len(row.bursts)
    return f"{n / max(row.bursts):,.0f}-{n / min(row.bursts):,.0f} runs/s"


def print_table(rows: list[Row]) -> None:
    base = {r.key: r for r in rows if r.mode == "in-process"}
    left = f"{'mode':<14} {'variant':<34} {'N':>5} "
    starts = f"{'min':>7} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'x in-proc':>9} "
    trips = f" {'p50':>7} {'p99':>7} {'x in-proc':>9} "
    print(
        f"{'':<{len(left)}}{'trigger->start, ms':^{len(starts)}}|{'round trip, ms':^{len(trips)}}|"
    )
    header = f"{left}{starts}|{trips}| {'runs/s':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        # idle rows have no in-process twin: compare them with the no-gap row
        ref = base.get("seq" if r.key == "idle" else r.key)
        mark = "*" if r.key == "idle" else ""
        p50 = percentile(r.starts, 50)
        rt50 = percentile(r.round_trips, 50) if r.round_trips else None
        if r.mode == "in-process":
            ratio = "base"
            rt_ratio = "base" if r.round_trips else "-"
        else:
            ratio = f"{p50 / percentile(ref.starts, 50):.1f}x{mark}" if ref else "-"
            rt_ratio = (
                f"{rt50 / percentile(ref.round_trips, 50):.1f}x{mark}"
                if ref and ref.round_trips and rt50 is not None
                else "-"
            )
        rt = (
            f"{ms(rt50):>7} {ms(percentile(r.round_trips, 99)):>7}"
            if rt50 is not None
            else f"{'-':>7} {'-':>7}"
        )
        print(
            f"{r.mode:<14} {r.variant:<34} {len(r.starts):>5} {ms(min(r.starts)):>7} "
            f"{ms(p50):>7} {ms(percentile(r.starts, 90)):>7} "
            f"{ms(percentile(r.starts, 99)):>7} {ms(max(r.starts)):>7} {ratio:>9} | "
            f"{rt} {rt_ratio:>9} | {r.rate:>7,.0f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help=f"runs per one-at-a-time variant (default {DEFAULT_N}, --quick {QUICK_N})",
    )
    parser.add_argument(
        "--burst", type=int, default=DEFAULT_BURST, help="runs in the run_many burst"
    )
    parser.add_argument(
        "--idle-n",
        type=int,
        default=None,
        help=f"runs with a gap past ACTIVE_WINDOW, cross-process only; 0 skips them "
        f"(default {DEFAULT_IDLE_N}, --quick {QUICK_IDLE_N}; each costs ~{IDLE_GAP[1]:.1f} s)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the random gaps")
    parser.add_argument("--quick", action="store_true", help="small N, for a smoke run")
    parser.add_argument("--worker", metavar="DB", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return serve(args.worker, WORKER_SLOTS)

    plan = Plan(
        n=args.n or (QUICK_N if args.quick else DEFAULT_N),
        burst=args.burst,
        idle_n=args.idle_n
        if args.idle_n is not None
        else (QUICK_IDLE_N if args.quick else DEFAULT_IDLE_N),
        seed=args.seed,
    )
    if plan.n < 1 or plan.burst < 1 or plan.idle_n < 0:
        parser.error("--n and --burst must be positive, --idle-n not negative")

    began = time.perf_counter()
    from importlib.metadata import version

    print(
        f"hatchlite {version('hatchlite')} | Python {platform.python_version()} | "
        f"SQLite {sqlite3.sqlite_version} | {platform.machine()}, {os.cpu_count()} cores"
    )
    print(
        f"Engine polling of other processes' commits (PRAGMA data_version): every "
        f"{POLL_ACTIVE * 1000:g} ms within {ACTIVE_WINDOW:g} s of activity, else every "
        f"{POLL_IDLE * 1000:g} ms. Task: no-op async def; worker slots={WORKER_SLOTS}."
    )
    rows: list[Row] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-cross-process-"))
    watchdog = Watchdog()
    watchdog.tmp = tmp
    worker: WorkerProcess | None = None
    try:
        # 1. In-process baseline, before the worker process exists.
        print(f"  in-process: N={plan.n}, burst {plan.burst} ...", flush=True)
        local = Hatchet(db=str(tmp / "in-process.db"), auto_worker=True)
        rows += measure("in-process", define_task(local), plan, True, watchdog.phase)
        watchdog.phase("closing the in-process client", 30)
        local.close()

        # 2. Cross-process. Create the database here first (a run that waits in the
        # queue), so the two processes do not race to create and migrate the file.
        db = tmp / "cross-process.db"
        client = Hatchet(db=str(db), auto_worker=False)
        task = define_task(client)
        first = task.run_no_wait(Stamp(t=time.time()))
        started = time.perf_counter()
        watchdog.phase("worker start", WORKER_READY_TIMEOUT)
        worker = WorkerProcess(db, tmp / "worker.log")
        watchdog.worker = worker
        check_output(first.result(), os.getpid(), False)
        ready = time.perf_counter() - started
        print(
            f"  cross-process: worker pid {worker.proc.pid} ran its first task "
            f"{ready:.2f}s after spawn; N={plan.n}, idle N={plan.idle_n}, "
            f"burst {plan.burst} ...",
            flush=True,
        )
        rows += measure("cross-process", task, plan, False, watchdog.phase)
        watchdog.phase("stopping the worker", STOP_TIMEOUT + 30)
        code, stop_seconds, note = worker.stop()
        client.close()
        watchdog.stop()
        worker_output = worker.output()
    finally:
        if worker is not None and worker.proc.poll() is None:  # an error above: no leftovers
            worker.stopping = True
            worker.proc.kill()
            worker.proc.wait()
        watchdog.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    order = {"seq": 0, "gap": 1, "idle": 2, "burst": 3}
    rows.sort(key=lambda r: (order[r.key], r.mode != "in-process"))
    print()
    print_table(rows)
    print(
        "\ntrigger->start: time.time() before the trigger call -> first line of the task "
        "(in the worker process for cross-process rows).\nround trip: task.run() call -> "
        "result returned in the triggering process. runs/s: N / wall time of the sequence "
        "(gaps included) or of the burst.\nx in-proc: this row's p50 / the in-process "
        "p50 of the same variant (* idle rows: vs the in-process no-gap row)."
    )
    seq = {r.mode: r for r in rows if r.key == "seq"}
    bursts = {r.mode: r for r in rows if r.key == "burst"}
    print(
        f"\ncross-process cost, 1 at a time: trigger->start p50 "
        f"{ms(percentile(seq['cross-process'].starts, 50))} vs "
        f"{ms(percentile(seq['in-process'].starts, 50))} ms in-process "
        f"({percentile(seq['cross-process'].starts, 50) / percentile(seq['in-process'].starts, 50):.1f}x); "
        f"round trip p50 {ms(percentile(seq['cross-process'].round_trips, 50))} vs "
        f"{ms(percentile(seq['in-process'].round_trips, 50))} ms "
        f"({percentile(seq['cross-process'].round_trips, 50) / percentile(seq['in-process'].round_trips, 50):.1f}x)."
    )
    print(
        f"burst of {plan.burst}: {bursts['cross-process'].rate:,.0f} runs/s cross-process vs "
        f"{bursts['in-process'].rate:,.0f} in-process "
        f"({bursts['cross-process'].rate / bursts['in-process'].rate:.2f}x); single bursts: "
        f"{spread(bursts['cross-process'])} cross-process, {spread(bursts['in-process'])} "
        f"in-process."
    )
    status = "ok" if code == 0 and not note else "UNEXPECTED"
    print(
        f"worker stop: SIGTERM -> exit code {code} after {stop_seconds:.2f}s"
        f"{'; ' + note if note else ''} [{status}]"
    )
    if worker_output:
        print(f"worker output:\n{worker_output}")
    print(f"\ntotal wall time {time.perf_counter() - began:.1f}s")
    return 0 if status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
