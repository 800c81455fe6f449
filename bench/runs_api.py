"""Latency of the runs API (`runs.list`, `runs.get`, `runs.get_details`, task metrics) on
a database holding N finished runs, beside the same calls on an empty database.

    python bench/runs_api.py [--n N] [--quick] [--reps R] [--keep PATH] [--no-plans]

The N runs are made through hatchlite's own API, in one process, on a fresh SQLite file:
`run_many` batches of about 1,000 runs of a no-op standalone task and of a 3-task DAG
(a -> b -> c), a third without `additional_metadata` and the rest with
{"customer": "c<i % 100>"}, 2% failing (a task raises) and 3 a batch cancelled. A
`hatchlite.testing.TestClock` moves forward between batches, so `created_at` spans
SPAN (10 days) ending now. Then every call is timed R times (after a warm-up) in this
process with the engine and its implicit worker open, as a service would call it.

Then, unless --no-plans, the SQL each call runs is captured by calling the store's query
functions (hatchlite/store/views.py) on a read-only sqlite3 connection to the same file,
and printed with its `EXPLAIN QUERY PLAN` and the time that statement alone takes; a plan
that scans workflow_runs or task_runs without an index or walks a whole index, and a
statement over 5 ms, are flagged.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import os
import platform
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel

from hatchlite import (
    BulkCancelReplayOpts,
    Context,
    Hatchet,
    Standalone,
    V1TaskStatus,
    Workflow,
    WorkflowRunTriggerConfig,
)
from hatchlite.store import views
from hatchlite.store.shapes import ShapeCache
from hatchlite.testing import TestClock

# -- defaults ------------------------------------------------------------------------

DEFAULT_N = 100_000
QUICK_N = 5_000
DEFAULT_REPS = 100
QUICK_REPS = 50
WARMUP = 5
BATCH = 1_000  # runs per batch (one run_many per workflow)
SPAN = timedelta(days=10)  # created_at of the N runs spans this, ending now
CANCELLED_PER_BATCH = 3
FAIL_EVERY = 50  # run i fails when i % FAIL_EVERY == 1 (2%)
DEEP_OFFSET = 5_000
PLAN_REPS = 5  # timings of each captured SQL statement
SLOW_MS = 10.0  # a call slower than this (p50, N-run DB) is starred
STATEMENT_SLOW_MS = 5.0  # a statement slower than this (median) is flagged


class Job(BaseModel):
    """Input of every bench run."""

    i: int = 0
    fail: bool = False
    hold: bool = False  # wait until cancelled


# -- the workflows ---------------------------------------------------------------------


@dataclass
class Bench:
    hatchet: Hatchet
    clock: TestClock
    single: Standalone[Job, dict[str, Any]]
    dag: Workflow[Job]


def define(hatchet: Hatchet, clock: TestClock) -> Bench:
    async def noop(input: Job, ctx: Context) -> dict[str, Any]:
        if input.fail:
            raise RuntimeError(f"bench run {input.i} fails on purpose")
        if input.hold:
            await asyncio.sleep(3600)  # real time: ends when the run is cancelled
        return {"i": input.i}

    single = hatchet.task(name="bench-single", input_validator=Job)(noop)

    dag: Workflow[Job] = hatchet.workflow(name="bench-dag", input_validator=Job)

    async def a(input: Job, ctx: Context) -> dict[str, int]:
        return {"a": input.i}

    async def b(input: Job, ctx: Context) -> dict[str, int]:
        return {"b": input.i}

    async def c(input: Job, ctx: Context) -> dict[str, int]:
        if input.fail:
            raise RuntimeError(f"bench DAG run {input.i} fails on purpose in c")
        return {"c": input.i}

    ta = dag.task(name="a")(a)
    tb = dag.task(name="b", parents=[ta])(b)
    dag.task(name="c", parents=[tb])(c)
    return Bench(hatchet, clock, single, dag)


def metadata(i: int) -> dict[str, str] | None:
    return None if i % 3 == 0 else {"customer": f"c{i % 100}"}


def open_bench(path: Path, start: datetime) -> Bench:
    clock = TestClock(start)
    hatchet = Hatchet(db=str(path), clock=clock)
    return define(hatchet, clock)


def build(bench: Bench, n: int) -> tuple[float, dict[str, int]]:
    """Create `n` finished runs in batches; returns seconds taken and runs by kind."""
    batches = max(1, -(-n // BATCH))
    step = SPAN / batches
    kinds = {"single": 0, "dag": 0, "failed": 0, "cancelled": 0}
    began = time.perf_counter()
    # Each failing run logs a warning on the "hatchlite" logger; these fail on purpose.
    log = logging.getLogger("hatchlite")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        build_batches(bench, n, batches, step, kinds, began)
    finally:
        log.setLevel(level)
    return time.perf_counter() - began, kinds


def build_batches(
    bench: Bench, n: int, batches: int, step: timedelta, kinds: dict[str, int], began: float
) -> None:
    """`batches` batches of up to BATCH runs, the clock moved `step` after each."""
    h, single, dag = bench.hatchet, bench.single, bench.dag
    i = 0
    for batch in range(batches):
        size = min(BATCH, n - i)
        cancel = min(CANCELLED_PER_BATCH, size // 100)
        singles: list[WorkflowRunTriggerConfig] = []
        dags: list[WorkflowRunTriggerConfig] = []
        for j in range(i, i + size - cancel):
            job = Job(i=j, fail=j % FAIL_EVERY == 1)
            kinds["failed"] += job.fail
            target = dags if j % 5 < 2 else singles  # 40% DAG runs
            wf: Standalone[Job, dict[str, Any]] | Workflow[Job] = dag if target is dags else single
            target.append(wf.create_bulk_run_item(job, additional_metadata=metadata(j)))
        kinds["dag"] += len(dags)
        kinds["single"] += len(singles)
        held = [
            single.create_bulk_run_item(Job(i=j, hold=True), additional_metadata=metadata(j))
            for j in range(i + size - cancel, i + size)
        ]
        refs = single.run_many_no_wait(held) if held else []
        single.run_many(singles, return_exceptions=True)
        dag.run_many(dags, return_exceptions=True)
        if refs:
            ids = [ref.workflow_run_id for ref in refs]
            h.runs.bulk_cancel(BulkCancelReplayOpts(ids=ids))
            wait_finished(h, ids)
            kinds["cancelled"] += len(ids)
        i += size
        if batch < batches - 1:
            bench.clock.advance(step)
        if (batch + 1) % 10 == 0 or batch == batches - 1:
            print(f"    {i:>7,} runs, {time.perf_counter() - began:6.1f}s", flush=True)


def wait_finished(h: Hatchet, ids: list[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for run_id in ids:
        while h.runs.get_status(run_id) not in (
            V1TaskStatus.CANCELLED,
            V1TaskStatus.COMPLETED,
            V1TaskStatus.FAILED,
        ):
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} did not finish after cancel")
            time.sleep(0.002)


# -- timing ----------------------------------------------------------------------------


@dataclass
class Timing:
    p50_ms: float
    p95_ms: float
    rows: int | None


@dataclass
class Op:
    name: str
    call: Callable[[], Any]
    query: views.RunQuery | None = None  # for the plan: what `call` asks the store
    kind: str = "list"  # list | run | metrics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of `values` (0 < q <= 100)."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def measure(call: Callable[[], Any], reps: int) -> Timing:
    result = None
    for _ in range(WARMUP):
        result = call()
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    rows = len(result.rows) if result is not None and hasattr(result, "rows") else None
    return Timing(percentile(samples, 50), percentile(samples, 95), rows)


def operations(bench: Bench, dag_run_id: str, worker_id: str) -> list[Op]:
    """What is timed; each list's RunQuery is the one `hatchet.runs` builds for it."""
    h = bench.hatchet
    now = bench.clock.time()
    day, week = now - 86400, now - 7 * 86400
    wf_id = bench.dag.id
    week_ago = bench.clock.now() - timedelta(days=7)
    return [
        Op("runs.list()  [since 1 day, limit 50]", h.runs.list, views.RunQuery(since=day)),
        Op(
            "runs.list(since=7 days ago)",
            lambda: h.runs.list(since=week_ago),
            views.RunQuery(since=week),
        ),
        Op(
            "runs.list(only_tasks=True)",
            lambda: h.runs.list(only_tasks=True),
            views.RunQuery(since=day, only_tasks=True),
        ),
        Op(
            "runs.list(statuses=[FAILED])",
            lambda: h.runs.list(statuses=[V1TaskStatus.FAILED]),
            views.RunQuery(since=day, statuses=["FAILED"]),
        ),
        Op(
            "runs.list(workflow_ids=[dag.id])",
            lambda: h.runs.list(workflow_ids=[wf_id]),
            views.RunQuery(since=day, workflow_ids=[wf_id]),
        ),
        Op(
            "runs.list(only_tasks, workflow_ids=[dag.id])",
            lambda: h.runs.list(only_tasks=True, workflow_ids=[wf_id]),
            views.RunQuery(since=day, only_tasks=True, workflow_ids=[wf_id]),
        ),
        Op(
            "runs.list(worker_id=<its worker>)",
            lambda: h.runs.list(worker_id=worker_id),
            views.RunQuery(since=day, worker_id=worker_id),
        ),
        Op(
            "runs.list(additional_metadata=c7)",
            lambda: h.runs.list(additional_metadata={"customer": "c7"}),
            views.RunQuery(since=day, additional_metadata={"customer": "c7"}),
        ),
        Op(
            f"runs.list(offset={DEEP_OFFSET})",
            lambda: h.runs.list(offset=DEEP_OFFSET),
            views.RunQuery(since=day, offset=DEEP_OFFSET),
        ),
        Op("runs.get_details(DAG run)", lambda: h.runs.get_details(dag_run_id), kind="run"),
        Op("runs.get(DAG run)", lambda: h.runs.get(dag_run_id), kind="run"),
        Op(
            "metrics.get_task_metrics()",
            h.metrics.get_task_metrics,
            views.RunQuery(since=day),
            kind="metrics",
        ),
    ]


def measure_all(
    bench: Bench, dag_run_id: str, worker_id: str, reps: int, only: Callable[[Op], bool]
) -> dict[str, Timing]:
    out = {}
    for op in operations(bench, dag_run_id, worker_id):
        if only(op):
            out[op.name] = measure(op.call, reps)
    return out


# -- query plans -----------------------------------------------------------------------


@dataclass
class Statement:
    sql: str
    params: tuple[Any, ...]
    plan: list[str] = field(default_factory=list)
    ms: float = 0.0


class Recorder:
    """Stands in for the store's sqlite3 connection: records each statement it runs."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.statements: list[Statement] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        self.statements.append(Statement(sql, tuple(params)))
        return self._conn.execute(sql, params)


def capture(conn: sqlite3.Connection, op: Op, dag_run_id: str) -> list[Statement]:
    recorder = Recorder(conn)
    fake = cast(sqlite3.Connection, recorder)
    shapes = ShapeCache()
    if op.kind == "run":
        views.run_bundle_txn(fake, shapes, dag_run_id)
    elif op.kind == "metrics":
        assert op.query is not None
        views.task_counts_txn(fake, op.query)
    else:
        assert op.query is not None
        views.page_bundle_txn(fake, shapes, op.query)
    for st in recorder.statements:
        rows = conn.execute("EXPLAIN QUERY PLAN " + st.sql, st.params).fetchall()
        st.plan = [str(row[3]) for row in rows]
        samples = []
        for _ in range(PLAN_REPS):
            start = time.perf_counter()
            conn.execute(st.sql, st.params).fetchall()
            samples.append((time.perf_counter() - start) * 1000)
        st.ms = statistics.median(samples)
    return recorder.statements


# Aliases and table names the store uses for the two big tables.
FULL_SCAN = re.compile(r"\bSCAN (r|t|workflow_runs|task_runs)\b(?! USING)")
INDEX_WALK = re.compile(r"\bSCAN (r|t|workflow_runs|task_runs) USING (COVERING )?INDEX")


def plan_flags(st: Statement) -> tuple[list[str], list[str]]:
    """(problems, notes) of a plan: a scan of workflow_runs or task_runs without an
    index, or a walk of a whole index, is a problem; a sort is a note (it is cheap when
    it sorts the few task runs of a page, which is where the store has them)."""
    problems, notes = [], []
    for line in st.plan:
        if FULL_SCAN.search(line):
            problems.append(f"FULL TABLE SCAN: {line}")
        elif INDEX_WALK.search(line):
            problems.append(f"walks a whole index: {line}")
        if "TEMP B-TREE" in line:
            notes.append("sorts its matches")
    return problems, notes


def short_sql(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


def print_plans(path: Path, bench: Bench, dag_run_id: str, worker_id: str) -> list[str]:
    """Print each call's statements, plans and times; return the flagged ones."""
    flagged: list[str] = []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for op in operations(bench, dag_run_id, worker_id):
            print(f"\n== {op.name}")
            for st in capture(conn, op, dag_run_id):
                problems, notes = plan_flags(st)
                slow = st.ms > STATEMENT_SLOW_MS
                print(f"  {st.ms:8.2f} ms  {short_sql(st.sql)[:160]}")
                for line in st.plan:
                    print(f"               | {line}")
                if problems or slow:
                    print(f"               <-- {'; '.join(problems) or 'slow'}")
                    tags = problems + (["slow"] if slow else []) + notes
                    flagged.append(
                        f"{op.name}: {st.ms:.1f} ms: {short_sql(st.sql)[:110]} ... "
                        f"[{'; '.join(tags)}]"
                    )
    finally:
        conn.close()
    return flagged


# -- report ----------------------------------------------------------------------------


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def file_size(path: Path) -> str:
    parts = []
    for suffix in ("", "-wal"):
        f = Path(str(path) + suffix)
        if f.exists():
            parts.append(f"{f.name} {f.stat().st_size / 1e6:,.1f} MB")
    return ", ".join(parts)


def print_table(
    names: list[str], empty: dict[str, Timing], full: dict[str, Timing], n: int
) -> None:
    head = f"{'operation':<46} {'empty DB p50/p95 ms':>20} {f'{n:,}-run DB p50/p95 ms':>24} {'rows':>5}"
    print(head)
    print("-" * len(head))
    for name in names:
        e, f = empty[name], full[name]
        slow = "  *" if f.p50_ms > SLOW_MS else ""
        rows = "" if f.rows is None else str(f.rows)
        print(
            f"{name:<46} {e.p50_ms:>9.2f} / {e.p95_ms:>7.2f} "
            f"{f.p50_ms:>13.2f} / {f.p95_ms:>7.2f} {rows:>5}{slow}"
        )


def run_empty(tmp: Path, reps: int) -> tuple[dict[str, Timing], float]:
    """Lists and metrics on a database with no runs; get/get_details once it holds one
    DAG run (there is nothing to get before)."""
    bench = open_bench(tmp / "empty.db", datetime.now(UTC))
    try:
        began = time.perf_counter()
        out = measure_all(bench, "-", "-", reps, lambda op: op.kind != "run")
        run_id = bench.dag.run_no_wait(Job()).workflow_run_id
        bench.dag.get_run_ref(run_id).result()
        out |= measure_all(bench, run_id, "-", reps, lambda op: op.kind == "run")
        return out, time.perf_counter() - began
    finally:
        bench.hatchet.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help=f"runs to store (default {DEFAULT_N:,}, --quick {QUICK_N:,})",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help=f"timed calls per operation (default {DEFAULT_REPS}, --quick {QUICK_REPS})",
    )
    parser.add_argument("--quick", action="store_true", help="small N, for a smoke run")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="build the N-run database at this new path and keep it",
    )
    parser.add_argument(
        "--plans",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="print each call's SQL with EXPLAIN QUERY PLAN (default: on)",
    )
    args = parser.parse_args(argv)
    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    reps = args.reps or (QUICK_REPS if args.quick else DEFAULT_REPS)
    if n < 1 or reps < 1:
        parser.error("--n and --reps must be positive")
    if args.keep is not None and args.keep.exists():
        parser.error(f"--keep {args.keep} exists; give a new path")
    # `runs.list(since=...)` over 7 days or more warns, as Hatchet does; expected here.
    warnings.filterwarnings("ignore", message="listing runs over more than 7 days")

    began = time.perf_counter()
    print(
        f"hatchlite {version('hatchlite')} | Python {platform.python_version()} | "
        f"SQLite {sqlite3.sqlite_version} | {platform.machine()}, {os.cpu_count()} cores"
    )
    print(
        f"Storage: a fresh SQLite file in a temp dir (WAL, synchronous=NORMAL), {n:,} finished "
        f"runs created over {SPAN.days} days; {reps} timed calls per operation after "
        f"{WARMUP} warm-up calls, in this process, engine open."
    )
    with tempfile.TemporaryDirectory(prefix="bench-runs-api-") as tmp_name:
        tmp = Path(tmp_name)
        path = args.keep or tmp / "runs.db"
        print(f"  building {n:,} runs in batches of {BATCH:,} ...", flush=True)
        bench = open_bench(path, datetime.now(UTC) - SPAN)
        try:
            seconds, kinds = build(bench, n)
            print(
                f"  built in {seconds:.1f}s ({n / seconds:,.0f} runs/s): {kinds['single']:,} "
                f"standalone, {kinds['dag']:,} DAG, {kinds['cancelled']:,} cancelled; "
                f"{kinds['failed']:,} of them failed; {file_size(path)}",
                flush=True,
            )
            completed = bench.dag.list_runs(limit=1, statuses=[V1TaskStatus.COMPLETED])
            dag_run_id = completed[0].metadata.id
            events = bench.hatchet.runs.get(dag_run_id).task_events
            worker_id = next(e.worker_id for e in events if e.worker_id)
            print(f"  timing on the {n:,}-run database ...", flush=True)
            t0 = time.perf_counter()
            full = measure_all(bench, dag_run_id, worker_id, reps, lambda op: True)
            print(f"    ({time.perf_counter() - t0:.1f}s)", flush=True)
            flagged: list[str] = []
            if args.plans:
                print("\nSQL per call on the N-run database (median of 5, ms) and its plan:")
                flagged = print_plans(path, bench, dag_run_id, worker_id)
            names = [op.name for op in operations(bench, dag_run_id, worker_id)]
        finally:
            bench.hatchet.close()
        size = file_size(path)
        print("\n  timing on an empty database ...", flush=True)
        empty, _ = run_empty(tmp, reps)

    print()
    print_table(names, empty, full, n)
    print(
        f"\nms: wall time of one sync call from this thread, p50/p95 of {reps} calls. "
        f"rows: rows returned on the N-run DB.\n* : p50 over {SLOW_MS:.0f} ms. Empty DB: no "
        "runs for the lists and metrics; get/get_details read its one DAG run.\n"
        f"Database file once the engine is closed: {size} (the -wal size printed after "
        "building is the WAL's high-water mark)"
    )
    if args.plans:
        print(
            f"\nstatements flagged (scan of workflow_runs/task_runs without an index, "
            f"whole-index walk, or over {STATEMENT_SLOW_MS:.0f} ms):"
        )
        for line in flagged or ["none"]:
            print(f"  {line}")
    print(f"\ntotal wall time {time.perf_counter() - began:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
