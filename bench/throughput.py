"""Throughput and trigger-to-start latency of hatchlite, with Huey and DBOS as peers and
the raw SQLite limit, plus the rest of issue 14's figures (keyed concurrency, fan-out,
cross-process latency, cost of growth, memory per in-flight run), checked against the
issue's targets.

    python bench/throughput.py [--n N] [--reps R] [--peers/--no-peers] [--quick]
        [--growth-runs N] [--growth-db PATH] [--memory-n N] [--profile] ...

Every system runs no-op tasks on a fresh SQLite file in a temporary directory, on
this machine, in this one invocation, so the printed ratios compare like with like.

Definitions (the same for every system):

* throughput: task runs completed per second of wall time, from just before the first
  trigger call to the last completion. hatchlite triggers all N runs with one
  `aio_run_many` and the clock stops when it has returned every result. A peer's clock
  stops when the body of its last task returns (results are fetched afterwards, untimed),
  which favours the peers slightly. Each throughput workload is timed R times
  (workloads alternating, a fresh file each time) and reported as the median rate.
* trigger-to-start latency: the delay between the trigger call and the task function
  starting, measured with `time.perf_counter()` in the same process. Runs are triggered
  one at a time (each waits for the previous run to finish), so this measures latency,
  not queueing; hatchlite is also measured with many concurrent callers ("under load").

hatchlite runs in this process; each peer in a child process (throughput_peers.py); the
other figures come from throughput_scale.py, which reuses flow_control.py and
cross_process.py; throughput_targets.py prints the issue's targets beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import platform
import pstats
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import throughput_scale
from benchkit import (
    Row,
    Skip,
    check,
    latency_row,
    progress,
    repeated,
    spread,
    version,
)
from pydantic import BaseModel
from throughput_peers import HUEY_WORKERS, run_peer
from throughput_targets import print_targets

import hatchlite
from hatchlite import Context, EmptyModel, Hatchet, Standalone, Workflow
from hatchlite.ids import new_id

# -- defaults ------------------------------------------------------------------------

DEFAULT_N = 5000  # hatchlite runs per throughput workload
DEFAULT_LATENCY_N = 1000  # sequential runs per latency measurement
DEFAULT_REPS = 3  # repetitions of each throughput workload
QUICK_N = 1000
QUICK_LATENCY_N = 200
QUICK_REPS = 1
LOAD_CALLERS = 32  # concurrent callers for "latency under load"
FAN_OUT_CHILDREN = 10_000  # children spawned by one task
DEFAULT_CROSS_N = 500  # cross-process runs, 1 at a time
QUICK_CROSS_N = 100
DEFAULT_GROWTH_RUNS = 1_000_000  # finished runs stored for the cost of growth
QUICK_GROWTH_RUNS = 100_000
DEFAULT_MEMORY_N = 20_000  # in-flight runs for the memory figure
QUICK_MEMORY_N = 5_000
RAW_MIN_N = 20_000  # task runs of the raw SQLite measurement, at least


# -- hatchlite -----------------------------------------------------------------------


class Stamp(BaseModel):
    """Input of the latency tasks: `time.perf_counter()` at the trigger call."""

    t0: float


def make_noop(calls: list[None], sync: bool) -> Callable[[EmptyModel, Context], Any]:
    """A no-op task body (it only counts its calls), as `def` or `async def`."""
    if sync:

        def noop_sync(input: EmptyModel, ctx: Context) -> None:
            calls.append(None)

        return noop_sync

    async def noop_async(input: EmptyModel, ctx: Context) -> None:
        calls.append(None)

    return noop_async


def make_stamp(delays: list[float], sync: bool) -> Callable[[Stamp, Context], Any]:
    """A task body that records how long after its trigger it started."""
    if sync:

        def stamp_sync(input: Stamp, ctx: Context) -> None:
            delays.append(time.perf_counter() - input.t0)

        return stamp_sync

    async def stamp_async(input: Stamp, ctx: Context) -> None:
        delays.append(time.perf_counter() - input.t0)

    return stamp_async


def flavour(sync: bool) -> str:
    return "def (thread pool)" if sync else "async def"


@contextlib.asynccontextmanager
async def fresh_hatchet(tmp: Path, name: str) -> AsyncIterator[Hatchet]:
    """A client on a new SQLite file, closed (engine stopped) on exit."""
    client = Hatchet(db=str(tmp / f"hatchlite-{name}.db"), auto_worker=True)
    try:
        yield client
    finally:
        await client.aio_close()


def define_chain(client: Hatchet, calls: list[None], sync: bool) -> Workflow[EmptyModel]:
    """A 3-task chain a -> b -> c of no-op tasks."""
    wf: Workflow[EmptyModel] = client.workflow(name=f"chain3_{'sync' if sync else 'async'}")
    a = wf.task(name="a")(make_noop(calls, sync))
    b = wf.task(name="b", parents=[a])(make_noop(calls, sync))
    wf.task(name="c", parents=[b])(make_noop(calls, sync))
    return wf


async def hatchlite_single(tmp: Path, n: int, sync: bool, rep: int = 0) -> Row:
    calls: list[None] = []
    async with fresh_hatchet(tmp, f"single-{int(sync)}-{rep}") as client:
        task: Standalone[Any, None] = client.task(name=f"noop_{'sync' if sync else 'async'}")(
            make_noop(calls, sync)
        )
        await task.aio_run()  # warm up: open the database, start the engine and worker
        calls.clear()
        start = time.perf_counter()
        results = await task.aio_run_many([task.create_bulk_run_item() for _ in range(n)])
        seconds = time.perf_counter() - start
    check(len(results) == n and len(calls) == n, f"expected {n} runs, saw {len(calls)}")
    return Row(
        "hatchlite",
        f"1-task run, {flavour(sync)}",
        n,
        n,
        seconds,
        f"single-{'sync' if sync else 'async'}",
    )


async def hatchlite_chain(tmp: Path, n: int, sync: bool, rep: int = 0) -> Row:
    calls: list[None] = []
    async with fresh_hatchet(tmp, f"chain-{int(sync)}-{rep}") as client:
        wf = define_chain(client, calls, sync)
        await wf.aio_run()
        calls.clear()
        start = time.perf_counter()
        results = await wf.aio_run_many([wf.create_bulk_run_item() for _ in range(n)])
        seconds = time.perf_counter() - start
    check(len(results) == n and len(calls) == 3 * n, f"expected {3 * n} task runs")
    return Row(
        "hatchlite",
        f"3-task DAG a->b->c, {flavour(sync)}",
        n,
        3 * n,
        seconds,
        f"chain-{'sync' if sync else 'async'}",
    )


async def hatchlite_latency(tmp: Path, count: int, sync: bool, callers: int = 1) -> Row:
    """`callers` concurrent loops, each triggering runs one at a time with `aio_run`."""
    delays: list[float] = []
    async with fresh_hatchet(tmp, f"latency-{int(sync)}-{callers}") as client:
        task: Standalone[Stamp, None] = client.task(
            name=f"stamp_{'sync' if sync else 'async'}", input_validator=Stamp
        )(make_stamp(delays, sync))
        for _ in range(10):  # warm up
            await task.aio_run(Stamp(t0=time.perf_counter()))
        delays.clear()
        per_caller = max(1, count // callers)

        async def caller() -> None:
            for _ in range(per_caller):
                await task.aio_run(Stamp(t0=time.perf_counter()))

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        seconds = time.perf_counter() - start
    check(len(delays) == per_caller * callers, "a latency run did not start")
    if callers == 1:
        return latency_row(
            "hatchlite",
            f"trigger->start, 1 at a time, {flavour(sync)}",
            f"latency-{'sync' if sync else 'async'}",
            delays,
            seconds,
        )
    return latency_row(
        "hatchlite",
        f"trigger->start, {callers} callers, {flavour(sync)}",
        "latency-load",
        delays,
        seconds,
    )


RAW_BATCH = 256  # task runs per transaction in the raw SQLite measurement


def raw_sqlite(tmp: Path, n: int, rep: int = 0) -> Row:
    """The floor a SQLite-backed engine stands on: what stdlib `sqlite3` does with the
    three writes a minimal engine needs per task run (insert it queued, claim it,
    complete it with its output), each write group-committed for RAW_BATCH task runs
    (three transactions per group: an engine commits a trigger, a claim and a completion
    apart), on one connection, WAL + synchronous=NORMAL as hatchlite ships, with a
    status index and time-ordered ids as hatchlite's; no Python engine around it."""
    conn = sqlite3.connect(tmp / f"raw-{rep}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        """CREATE TABLE task_runs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
               status TEXT NOT NULL, input TEXT NOT NULL, output TEXT, worker_id TEXT,
               created_at REAL NOT NULL, started_at REAL, finished_at REAL)"""
    )
    conn.execute("CREATE INDEX task_runs_queued ON task_runs (status) WHERE status = 'QUEUED'")
    ids = [new_id() for _ in range(n)]
    start = time.perf_counter()
    for at in range(0, n, RAW_BATCH):
        part = ids[at : at + RAW_BATCH]
        now = time.time()
        for sql, params in (
            (
                "INSERT INTO task_runs (id, status, input, created_at) VALUES (?, 'QUEUED', '{}', ?)",
                [(i, now) for i in part],
            ),
            (
                "UPDATE task_runs SET status = 'RUNNING', worker_id = 'w', started_at = ? "
                "WHERE id = ? AND status = 'QUEUED'",
                [(now, i) for i in part],
            ),
            (
                "UPDATE task_runs SET status = 'COMPLETED', output = '{}', finished_at = ? "
                "WHERE id = ? AND status = 'RUNNING'",
                [(now, i) for i in part],
            ),
        ):
            conn.execute("BEGIN")
            conn.executemany(sql, params)
            conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    done = conn.execute("SELECT count(*) FROM task_runs WHERE status = 'COMPLETED'").fetchone()
    conn.close()
    check(done[0] == n, f"raw sqlite3 completed {done[0]} of {n}")
    return Row(
        "sqlite3",
        f"raw limit: 3 writes per task run, {RAW_BATCH} per commit",
        n,
        n,
        seconds,
        "single-async",
    )


async def hatchlite_suite(tmp: Path, n: int, latency_n: int, reps: int) -> list[Row]:
    """The four throughput workloads `reps` times, alternating (one row each, with every
    repetition's rate), then the three latency measurements once."""
    done: dict[str, list[Row]] = {}
    for rep in range(reps):
        for sync in (False, True):
            for workload in (hatchlite_single, hatchlite_chain):
                row = await workload(tmp, n, sync, rep)
                done.setdefault(row.key, []).append(row)
                progress(f"rep {rep + 1}: {row.workload}: {row.rate:,.0f} task-runs/s")
    rows = [repeated(reps_rows) for reps_rows in done.values()]
    for sync in (False, True):
        rows.append(await hatchlite_latency(tmp, latency_n, sync))
    rows.append(await hatchlite_latency(tmp, 2 * latency_n, False, callers=LOAD_CALLERS))
    return rows


def raw_limit(tmp: Path, n: int, reps: int) -> Row:
    """`raw_sqlite` `reps` times: one row with every repetition's rate."""
    rows = [raw_sqlite(tmp, n, rep) for rep in range(reps)]
    progress(f"raw sqlite3 limit: {repeated(rows).rate:,.0f} task-runs/s")
    return repeated(rows)


# -- where hatchlite's time goes (--profile) --------------------------------------------


async def hatchlite_profile(tmp: Path, n: int, limit: int = 10) -> None:
    """Profile the 1-task and 3-task workloads on each hatchlite thread: the caller's,
    the engine loop's and the database thread's (cProfile sees one thread at a time)."""
    from hatchlite.scheduler.runtime import RUNTIME

    profiles = {
        "caller thread": cProfile.Profile(),
        "engine loop thread": cProfile.Profile(),
        "database thread": cProfile.Profile(),
    }
    calls: list[None] = []
    async with fresh_hatchet(tmp, "profile") as client:
        task: Standalone[Any, None] = client.task(name="noop")(make_noop(calls, False))
        chain = define_chain(client, calls, False)
        await task.aio_run()
        await chain.aio_run()
        db = client._engine.store.db  # bench-only peek at internals, to reach its thread

        async def on_engine_loop(fn: Callable[[], None]) -> None:
            fn()

        def switch(on: bool) -> None:
            """Turn the engine loop's and the database thread's profilers on or off."""
            engine_prof = profiles["engine loop thread"]
            db_prof = profiles["database thread"]
            RUNTIME.call(on_engine_loop, engine_prof.enable if on else engine_prof.disable)

            def on_db_thread(conn: sqlite3.Connection) -> None:
                if on:
                    db_prof.enable()
                else:
                    db_prof.disable()

            db.run_sync(on_db_thread, write=False)

        await asyncio.to_thread(switch, True)
        profiles["caller thread"].enable()
        start = time.perf_counter()
        await task.aio_run_many([task.create_bulk_run_item() for _ in range(n)])
        await chain.aio_run_many([chain.create_bulk_run_item() for _ in range(n)])
        seconds = time.perf_counter() - start
        profiles["caller thread"].disable()
        await asyncio.to_thread(switch, False)
    print(
        f"\nProfile: {n} 1-task runs + {n} 3-task DAG runs (async def), {seconds:.2f}s "
        f"under cProfile. Top {limit} hatchlite functions by cumulative time, per thread:"
    )
    root = str(Path(hatchlite.__file__).resolve().parent)
    for name, prof in profiles.items():
        stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
        entries = [
            (cum, tot, calls_n, f"{Path(file).relative_to(Path(root).parent)}:{line} {func}")
            for (file, line, func), (_, calls_n, tot, cum, _) in stats.items()
            if file.startswith(root)
        ]
        entries.sort(reverse=True)
        print(f"\n  {name}:")
        print(f"    {'cum s':>7} {'own s':>7} {'calls':>8}  function")
        for cum, tot, calls_n, label in entries[:limit]:
            print(f"    {cum:7.3f} {tot:7.3f} {calls_n:8d}  {label}")


# -- what to measure -------------------------------------------------------------------


@dataclass
class Plan:
    """What to measure, from the command line."""

    n: int
    latency_n: int
    reps: int
    peers: dict[str, tuple[int, int]]  # name: (N, latency N); empty with --no-peers
    scale: throughput_scale.ScalePlan  # the other figures


# -- report ----------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    base = {r.key: r for r in rows if r.system == "hatchlite"}
    header = (
        f"{'system':<10} {'workload':<50} {'N':>6} {'seconds':>8} {'task-runs/s':>12} "
        f"{'vs hatchlite':>12} {'p50 ms':>8} {'p99 ms':>8} {'reps: min-max/s':>17}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ref = base.get(r.key)
        if r.system == "hatchlite":
            ratio = "base"
        elif ref is not None and ref.rate > 0:
            ratio = f"{r.rate / ref.rate:.3f}x"
        else:
            ratio = "-"
        p50 = f"{r.p50_ms:.2f}" if r.p50_ms is not None else ""
        p99 = f"{r.p99_ms:.2f}" if r.p99_ms is not None else ""
        reps = f"{len(r.rates)}: {spread(r.rates)}" if len(r.rates) > 1 else ""
        print(
            f"{r.system:<10} {r.workload:<50} {r.n:>6} {r.seconds:>8.3f} {r.rate:>12,.0f} "
            f"{ratio:>12} {p50:>8} {p99:>8} {reps:>17}"
        )


def print_summary(rows: list[Row]) -> None:
    base = {r.key: r for r in rows if r.system == "hatchlite"}
    lines = []
    for r in rows:
        ref = base.get(r.key)
        if r.system == "hatchlite" or ref is None or r.rate <= 0:
            continue
        if r.system == "sqlite3":
            lines.append(
                f"  {ref.rate / r.rate:5.1%}  of the raw SQLite limit: hatchlite "
                f"'{ref.workload}' {ref.rate:,.0f}/s, raw {r.rate:,.0f}/s"
            )
            continue
        if ref.p50_ms is not None and r.p50_ms is not None and r.p99_ms is not None:
            lines.append(
                f"  trigger->start p50/p99: hatchlite {ref.p50_ms:.2f}/{ref.p99_ms:.2f} ms, "
                f"{r.system} {r.p50_ms:.2f}/{r.p99_ms:.2f} ms  ({r.workload})"
            )
        else:
            lines.append(
                f"  {ref.rate / r.rate:5.1f}x  hatchlite '{ref.workload}' over "
                f"{r.system} '{r.workload}'"
            )
    if lines:
        print("\nhatchlite vs peers (task-runs/s ratio on the matching workload):")
        print("\n".join(lines))


# -- header and main ---------------------------------------------------------------------


def machine() -> str:
    """CPU model, cores, memory and kernel of this machine."""
    cpu, mem = platform.processor() or "unknown CPU", ""
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(
            (
                ln.split(":", 1)[1].strip()
                for ln in info.splitlines()
                if ln.startswith("model name")
            ),
            cpu,
        )
    with contextlib.suppress(OSError, ValueError, IndexError):
        total = next(
            ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")
        )
        mem = f", {int(total.split()[1]) / 2**20:.0f} GB RAM"
    return (
        f"{platform.machine()}, {cpu}, {os.cpu_count()} cores{mem}, "
        f"{platform.system()} {platform.release()}"
    )


def load() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine moves the figures."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def revision() -> str:
    """The git commit of the hatchlite checkout, and whether hatchlite/ differs from it."""
    root = Path(hatchlite.__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "hatchlite"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "git: unknown"
    return f"git {head}{', hatchlite/ modified' if dirty else ''}"


def print_header(plan: Plan) -> None:
    print(
        f"hatchlite {version('hatchlite')} ({revision()}) | huey {version('huey')} | "
        f"dbos {version('dbos')} | Python {platform.python_version()} | SQLite "
        f"{sqlite3.sqlite_version}"
    )
    print(f"Machine: {machine()}; load average {load()} at the start")
    print(
        "Storage: a fresh SQLite file per workload, in a temp dir. Journal/sync as each "
        "system ships: hatchlite WAL + synchronous=NORMAL; Huey WAL + SQLite's default "
        "(FULL); DBOS rollback journal + default (FULL)."
    )
    peers = ", ".join(f"{name} N={n}" for name, (n, _) in plan.peers.items()) or "off"
    more = plan.scale
    growth = f"{more.growth_runs:,} stored runs" if more.growth_runs else "off"
    if more.growth_db is not None:
        growth += f" (file {more.growth_db})"
    print(
        f"Settings: N={plan.n:,} runs per throughput workload x {plan.reps} reps (median); "
        f"latency N={plan.latency_n:,} (+{2 * plan.latency_n:,} over {LOAD_CALLERS} callers); "
        f"raw SQLite N={max(plan.n, RAW_MIN_N):,}; peers: {peers} (Huey {HUEY_WORKERS} "
        f"threads); keyed: N={more.n:,} over 1,000 keys; fan-out {more.fan_out:,} children; "
        f"cross-process N={more.cross_n:,}; growth: {growth}, dispatch N={more.n:,}; memory: "
        f"{more.memory_n:,} in-flight runs; hatchlite's implicit worker: 100 slots."
    )


COUNTS = {  # option: (default, with --quick, help)
    "--n": (
        DEFAULT_N,
        QUICK_N,
        "hatchlite runs per throughput workload, keyed and growth dispatch; peers use at "
        "most 2000 (Huey) and 500 (DBOS)",
    ),
    "--latency-n": (
        DEFAULT_LATENCY_N,
        QUICK_LATENCY_N,
        "sequential runs per hatchlite latency measurement",
    ),
    "--reps": (
        DEFAULT_REPS,
        QUICK_REPS,
        "repetitions of each throughput workload; the median is reported",
    ),
    "--fan-out": (FAN_OUT_CHILDREN, FAN_OUT_CHILDREN, "children spawned by one task"),
    "--cross-n": (DEFAULT_CROSS_N, QUICK_CROSS_N, "cross-process runs, 1 at a time; 0 skips"),
    "--growth-runs": (
        DEFAULT_GROWTH_RUNS,
        QUICK_GROWTH_RUNS,
        "finished runs stored for the cost of growth; 0 skips",
    ),
    "--memory-n": (
        DEFAULT_MEMORY_N,
        QUICK_MEMORY_N,
        "in-flight runs for the memory figure; 0 skips",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    for name, (default, quick, help) in COUNTS.items():
        parser.add_argument(
            name, type=int, default=None, help=f"{help} (default {default:,}, --quick {quick:,})"
        )
    parser.add_argument(
        "--growth-db",
        type=Path,
        default=None,
        help="build the growth database at this path and keep it; if it exists, reuse it "
        "as it is (its finished runs are counted) instead of building",
    )
    parser.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run Huey and DBOS (default: on)",
    )
    parser.add_argument("--quick", action="store_true", help="small N, for a smoke run")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile hatchlite (cProfile per thread) and print where its time goes",
    )
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[Plan, argparse.Namespace]:
    parser = build_parser()
    args = parser.parse_args(argv)
    count = {}
    for name, (default, quick, _) in COUNTS.items():
        given = getattr(args, name[2:].replace("-", "_"))
        count[name] = given if given is not None else (quick if args.quick else default)
    if min(count[k] for k in ("--n", "--latency-n", "--reps", "--fan-out")) < 1:
        parser.error("--n, --latency-n, --reps and --fan-out must be positive")
    if min(count[k] for k in ("--cross-n", "--growth-runs", "--memory-n")) < 0:
        parser.error("--cross-n, --growth-runs and --memory-n must not be negative")
    n, reps, latency_n = count["--n"], count["--reps"], count["--latency-n"]
    peers = {}
    if args.peers:
        # Peers are slower: cap their N so the whole script stays within minutes.
        latency = min(latency_n, 50 if args.quick else 100)
        peers = {
            "huey": (min(n, 500 if args.quick else 2000), latency),
            "dbos": (min(n, 150 if args.quick else 500), latency),
        }
    more = throughput_scale.ScalePlan(
        n=n,
        reps=reps,
        fan_out=count["--fan-out"],
        cross_n=count["--cross-n"],
        growth_runs=count["--growth-runs"],
        growth_db=args.growth_db,
        memory_n=count["--memory-n"],
    )
    return Plan(n, latency_n, reps, peers, more), args


def main(argv: Sequence[str] | None = None) -> int:
    plan, args = parse_args(argv)
    began = time.perf_counter()
    print_header(plan)
    rows: list[Row] = []
    skips: list[Skip] = []
    with tempfile.TemporaryDirectory(prefix="bench-hatchlite-") as tmp_name:
        tmp = Path(tmp_name)
        progress(f"hatchlite (N={plan.n} x {plan.reps} reps, latency N={plan.latency_n}) ...")
        rows += asyncio.run(hatchlite_suite(tmp, plan.n, plan.latency_n, plan.reps))
        rows.append(raw_limit(tmp, max(plan.n, RAW_MIN_N), plan.reps))
        more = throughput_scale.measure_all(tmp, plan.scale, skips)
    for name, (peer_n, peer_latency_n) in plan.peers.items():
        peer_rows, peer_skips = run_peer(name, peer_n, peer_latency_n, plan.reps)
        rows += peer_rows
        skips += peer_skips
    if not plan.peers:
        skips.append(Skip("peers", "--no-peers"))

    print()
    print_table(rows)
    print(
        "\ntask-runs/s: task runs completed per second of wall time, first trigger to last "
        f"completion (a 3-task run counts 3); the median of {plan.reps} repetition(s) "
        "(seconds: the median too; reps: the slowest and fastest).\nvs hatchlite: this row's "
        "task-runs/s / hatchlite's on the matching workload (peers run sync `def` tasks in "
        "threads, so they are compared with hatchlite's `def` rows).\np50/p99: trigger call "
        "-> task function start, in-process perf_counter; 'seconds' there is the whole "
        "sequence (one, not repeated)."
    )
    print_summary(rows)
    unlimited = next((r for r in rows if r.system == "hatchlite" and r.key == "single-async"), None)
    throughput_scale.print_all(more, plan.scale, unlimited.rate if unlimited else None)
    print_targets(rows, more, plan.reps, LOAD_CALLERS)
    for skip in skips:
        print(f"skipped: {skip.system}: {skip.reason}")
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as profile_tmp:
            asyncio.run(hatchlite_profile(Path(profile_tmp), plan.n))
    print(f"\ntotal wall time {time.perf_counter() - began:.1f}s; load average {load()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
