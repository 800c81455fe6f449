"""Throughput and trigger-to-start latency of hatchlite, with Huey and DBOS as peers.

Every system runs no-op tasks on a fresh SQLite file in a temporary directory, on
this machine, in this one invocation, so the printed ratios compare like with like.

    python bench/throughput.py [--n N] [--peers/--no-peers] [--quick] [--profile]

Definitions (the same for every system):

* throughput: task runs completed per second of wall time, from just before the first
  trigger call to the last completion. hatchlite triggers all N runs with one
  `aio_run_many` and the clock stops when it has returned every result. A peer's clock
  stops when the body of its last task returns (results are fetched afterwards, untimed),
  which favours the peers slightly.
* trigger-to-start latency: the delay between the trigger call and the task function
  starting, measured with `time.perf_counter()` in the same process. Runs are triggered
  one at a time (each waits for the previous run to finish), so this measures latency,
  not queueing; hatchlite is also measured with many concurrent callers ("under load").

hatchlite runs in this process. Each peer runs in a child process of this script (so a
peer that is missing, crashes or hangs is reported as skipped and the rest goes on);
the child measures in-process exactly as hatchlite is measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib.metadata
import importlib.util
import json
import os
import platform
import pstats
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import hatchlite
from hatchlite import Context, EmptyModel, Hatchet, Standalone, Workflow

# -- defaults ------------------------------------------------------------------------

DEFAULT_N = 5000  # hatchlite runs per throughput workload
DEFAULT_LATENCY_N = 1000  # sequential runs per latency measurement
QUICK_N = 1000
QUICK_LATENCY_N = 200
LOAD_CALLERS = 32  # concurrent callers for "latency under load"
HUEY_WORKERS = 4  # Huey consumer threads
PEER_TIMEOUT = 180.0  # seconds before a peer's child process is given up on
WAIT_TIMEOUT = 120.0  # seconds a peer workload may take before it counts as hung
RESULT_MARKER = "BENCH-RESULT "


@dataclass
class Row:
    """One measured workload."""

    system: str
    workload: str
    n: int  # runs triggered
    task_runs: int  # task runs completed (n x tasks per run)
    seconds: float
    key: str  # rows with the same key are compared with hatchlite's row of that key
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.task_runs / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Skip:
    system: str
    reason: str


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of `values` (0 < q <= 100)."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def latency_row(
    system: str, workload: str, key: str, delays: Sequence[float], seconds: float
) -> Row:
    return Row(
        system,
        workload,
        len(delays),
        len(delays),
        seconds,
        key,
        p50_ms=percentile(delays, 50) * 1000,
        p99_ms=percentile(delays, 99) * 1000,
    )


def check(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


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


async def hatchlite_single(tmp: Path, n: int, sync: bool) -> Row:
    calls: list[None] = []
    async with fresh_hatchet(tmp, f"single-{int(sync)}") as client:
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


async def hatchlite_chain(tmp: Path, n: int, sync: bool) -> Row:
    calls: list[None] = []
    async with fresh_hatchet(tmp, f"chain-{int(sync)}") as client:
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


def raw_sqlite(tmp: Path, n: int) -> Row:
    """The floor a SQLite-backed engine stands on: what stdlib `sqlite3` does with the
    three writes a minimal engine needs per task run (insert it queued, claim it,
    complete it with its output), group-committed RAW_BATCH at a time per transaction,
    on one connection, WAL + synchronous=NORMAL as hatchlite ships, with a status
    index; no Python engine around it."""
    conn = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        """CREATE TABLE task_runs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
               status TEXT NOT NULL, input TEXT NOT NULL, output TEXT, worker_id TEXT,
               created_at REAL NOT NULL, started_at REAL, finished_at REAL)"""
    )
    conn.execute("CREATE INDEX task_runs_queued ON task_runs (status) WHERE status = 'QUEUED'")
    ids = [str(uuid.uuid4()) for _ in range(n)]
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


async def hatchlite_suite(tmp: Path, n: int, latency_n: int) -> list[Row]:
    rows = []
    for sync in (False, True):
        rows.append(await hatchlite_single(tmp, n, sync))
        rows.append(await hatchlite_chain(tmp, n, sync))
    for sync in (False, True):
        rows.append(await hatchlite_latency(tmp, latency_n, sync))
    rows.append(await hatchlite_latency(tmp, 2 * latency_n, False, callers=LOAD_CALLERS))
    return rows


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


# -- peers (each run in a child process: `--peer-worker NAME`) ------------------------


class Countdown:
    """Counts task completions across threads; `done` is set at the last one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._left = 0
        self.done = threading.Event()

    def arm(self, count: int) -> None:
        with self._lock:
            self._left = count
            self.done.clear()

    def hit(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self.done.set()

    def wait(self, what: str) -> None:
        if not self.done.wait(WAIT_TIMEOUT):
            raise TimeoutError(f"{what} did not finish in {WAIT_TIMEOUT:.0f}s")


def huey_suite(tmp: Path, n: int, latency_n: int, errors: list[str]) -> list[Row]:
    """Huey's SqliteHuey with a consumer of HUEY_WORKERS threads in this process."""
    import logging

    from huey import SqliteHuey

    logging.getLogger("huey").setLevel(logging.WARNING)
    huey = SqliteHuey(name="bench", filename=str(tmp / "huey.db"))
    countdown = Countdown()
    delays: list[float] = []

    def noop_body(*args: object) -> int:
        countdown.hit()
        return 1

    def stamp_body(t0: float) -> int:
        delays.append(time.perf_counter() - t0)
        countdown.hit()
        return 1

    noop: Any = huey.task(name="noop")(noop_body)  # huey is untyped
    stamp: Any = huey.task(name="stamp")(stamp_body)

    consumer = huey.create_consumer(
        workers=HUEY_WORKERS, worker_type="thread", periodic=False, check_worker_health=False
    )
    consumer.start()
    rows: list[Row] = []
    label = f"{HUEY_WORKERS} threads"
    try:
        countdown.arm(1)
        noop()
        countdown.wait("warm-up")

        def single() -> Row:
            countdown.arm(n)
            start = time.perf_counter()
            results = [noop() for _ in range(n)]
            countdown.wait("1-task runs")
            seconds = time.perf_counter() - start
            check(results[-1].get(blocking=True, timeout=30) == 1, "no result")
            return Row("huey", f"1-task run, def ({label})", n, n, seconds, "single-sync")

        def chain() -> Row:
            countdown.arm(3 * n)
            start = time.perf_counter()
            for _ in range(n):
                huey.enqueue(noop.s().then(noop).then(noop))
            countdown.wait("3-task pipelines")
            seconds = time.perf_counter() - start
            return Row(
                "huey",
                f"3-task pipeline .then().then(), def ({label})",
                n,
                3 * n,
                seconds,
                "chain-sync",
            )

        def latency() -> Row:
            for _ in range(5):  # warm up
                countdown.arm(1)
                stamp(time.perf_counter())
                countdown.wait("warm-up")
            delays.clear()
            start = time.perf_counter()
            for _ in range(latency_n):
                countdown.arm(1)
                stamp(time.perf_counter())
                countdown.wait("latency run")
            seconds = time.perf_counter() - start
            return latency_row(
                "huey",
                f"trigger->start, 1 at a time, def ({label})",
                "latency-sync",
                delays,
                seconds,
            )

        for workload in (single, chain, latency):
            try:
                rows.append(workload())
            except Exception as exc:
                errors.append(f"huey {workload.__name__}: {type(exc).__name__}: {exc}")
    finally:
        consumer.stop(graceful=True)
    return rows


def dbos_suite(tmp: Path, n: int, latency_n: int, errors: list[str]) -> list[Row]:
    """DBOS Transact with its system database on SQLite, in this process."""
    from dbos import DBOS

    countdown = Countdown()
    delays: list[float] = []

    @DBOS.step()
    def noop_step() -> int:
        countdown.hit()
        return 1

    @DBOS.workflow()
    def one_step() -> int:
        return noop_step()

    @DBOS.workflow()
    def three_steps() -> int:
        noop_step()
        noop_step()
        return noop_step()

    @DBOS.workflow()
    def stamp(t0: float) -> int:
        delays.append(time.perf_counter() - t0)
        return noop_step()

    queue: Any = None
    register_queue = getattr(DBOS, "register_queue", None)
    if register_queue is None:  # dbos < 3.x declares queues before launch
        from dbos import Queue

        queue = Queue("hatchlite_bench")
    config: Any = {
        "name": "hatchlite-bench",
        "system_database_url": f"sqlite:///{tmp / 'dbos.sqlite'}",
        "run_admin_server": False,  # older dbos releases serve an admin HTTP port otherwise
        "log_level": "WARNING",
    }
    DBOS(config=config)
    rows: list[Row] = []
    try:
        DBOS.launch()
        if register_queue is not None:
            queue = register_queue("hatchlite_bench")
        countdown.arm(1)
        check(DBOS.start_workflow(one_step).get_result() == 1, "warm-up failed")

        def single() -> Row:
            countdown.arm(n)
            start = time.perf_counter()
            handles = [DBOS.start_workflow(one_step) for _ in range(n)]
            countdown.wait("1-step workflows")
            seconds = time.perf_counter() - start
            check(all(h.get_result() == 1 for h in handles), "a workflow failed")
            return Row(
                "dbos", "1-step workflow, def (start_workflow)", n, n, seconds, "single-sync"
            )

        def queued() -> Row:
            countdown.arm(n)
            start = time.perf_counter()
            handles = [queue.enqueue(one_step) for _ in range(n)]
            countdown.wait("queued workflows")
            seconds = time.perf_counter() - start
            check(all(h.get_result() == 1 for h in handles), "a workflow failed")
            return Row("dbos", "1-step workflow, def (Queue.enqueue)", n, n, seconds, "single-sync")

        def chain() -> Row:
            countdown.arm(3 * n)
            start = time.perf_counter()
            handles = [DBOS.start_workflow(three_steps) for _ in range(n)]
            countdown.wait("3-step workflows")
            seconds = time.perf_counter() - start
            check(all(h.get_result() == 1 for h in handles), "a workflow failed")
            return Row(
                "dbos", "3-step workflow, def (start_workflow)", n, 3 * n, seconds, "chain-sync"
            )

        def latency() -> Row:
            for _ in range(5):
                countdown.arm(1)
                DBOS.start_workflow(stamp, time.perf_counter()).get_result()
            delays.clear()
            start = time.perf_counter()
            for _ in range(latency_n):
                countdown.arm(1)
                DBOS.start_workflow(stamp, time.perf_counter()).get_result()
            seconds = time.perf_counter() - start
            return latency_row(
                "dbos",
                "trigger->start, 1 at a time, def (start_workflow)",
                "latency-sync",
                delays,
                seconds,
            )

        for workload in (single, queued, chain, latency):
            try:
                rows.append(workload())
            except Exception as exc:
                errors.append(f"dbos {workload.__name__}: {type(exc).__name__}: {exc}")
    finally:
        DBOS.destroy()
    return rows


PEERS: dict[str, tuple[str, str, Callable[[Path, int, int, list[str]], list[Row]]]] = {
    # name: (module to import, pip package, suite)
    "huey": ("huey", "huey", huey_suite),
    "dbos": ("dbos", "dbos", dbos_suite),
}


def peer_worker(name: str, n: int, latency_n: int) -> int:
    """Child-process entry: run one peer's suite and print its rows as JSON."""
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        rows = PEERS[name][2](Path(tmp), n, latency_n, errors)
    print(RESULT_MARKER + json.dumps({"rows": [asdict(r) for r in rows], "errors": errors}))
    sys.stdout.flush()
    return 0


def run_peer(name: str, n: int, latency_n: int) -> tuple[list[Row], list[Skip]]:
    module, package, _ = PEERS[name]
    if importlib.util.find_spec(module) is None:
        return [], [Skip(name, f"not installed (pip install {package})")]
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--peer-worker",
        name,
        "--n",
        str(n),
        "--latency-n",
        str(latency_n),
    ]
    print(f"  running {name} (N={n}, latency N={latency_n}) in a child process ...", flush=True)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PEER_TIMEOUT)
    except subprocess.TimeoutExpired:
        return [], [Skip(name, f"timed out after {PEER_TIMEOUT:.0f}s")]
    payload = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            payload = json.loads(line[len(RESULT_MARKER) :])
    if payload is None:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        reason = lines[-1].strip() if lines else f"exit code {proc.returncode}, no output"
        return [], [Skip(name, f"failed: {reason}")]
    rows = [Row(**r) for r in payload["rows"]]
    return rows, [Skip(name, f"workload failed: {e}") for e in payload["errors"]]


# -- report ----------------------------------------------------------------------------


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def print_table(rows: list[Row]) -> None:
    base = {r.key: r for r in rows if r.system == "hatchlite"}
    header = (
        f"{'system':<10} {'workload':<50} {'N':>6} {'seconds':>8} {'task-runs/s':>12} "
        f"{'vs hatchlite':>12} {'p50 ms':>8} {'p99 ms':>8}"
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
        print(
            f"{r.system:<10} {r.workload:<50} {r.n:>6} {r.seconds:>8.3f} {r.rate:>12,.0f} "
            f"{ratio:>12} {p50:>8} {p99:>8}"
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help=f"hatchlite runs per throughput workload (default {DEFAULT_N}, "
        f"--quick {QUICK_N}); peers use at most 2000 (Huey) and 500 (DBOS)",
    )
    parser.add_argument(
        "--latency-n",
        type=int,
        default=None,
        help=f"sequential runs per hatchlite latency measurement "
        f"(default {DEFAULT_LATENCY_N}, --quick {QUICK_LATENCY_N})",
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
    parser.add_argument("--peer-worker", choices=sorted(PEERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    latency_n = args.latency_n or (QUICK_LATENCY_N if args.quick else DEFAULT_LATENCY_N)
    if args.peer_worker:
        return peer_worker(args.peer_worker, n, latency_n)
    if n < 1 or latency_n < 1:
        parser.error("--n and --latency-n must be positive")

    began = time.perf_counter()
    print(
        f"hatchlite {version('hatchlite')} | huey {version('huey')} | dbos {version('dbos')} "
        f"| Python {platform.python_version()} | SQLite {sqlite3.sqlite_version} | "
        f"{platform.machine()}, {os.cpu_count()} cores"
    )
    print(
        "Storage: a fresh SQLite file per workload, in a temp dir. Journal/sync as each "
        "system ships: hatchlite WAL + synchronous=NORMAL; Huey WAL + SQLite's default "
        "(FULL); DBOS rollback journal + default (FULL)."
    )
    rows: list[Row] = []
    skips: list[Skip] = []
    with tempfile.TemporaryDirectory(prefix="bench-hatchlite-") as tmp:
        print(f"  running hatchlite (N={n}, latency N={latency_n}) in this process ...", flush=True)
        rows += asyncio.run(hatchlite_suite(Path(tmp), n, latency_n))
        rows.append(raw_sqlite(Path(tmp), max(n, 20_000)))
    if args.peers:
        # Peers are slower: cap their N so the whole script stays near a minute.
        cap_latency = min(latency_n, 50 if args.quick else 100)
        plan = {
            "huey": (min(n, 500 if args.quick else 2000), cap_latency),
            "dbos": (min(n, 150 if args.quick else 500), cap_latency),
        }
        for name, (peer_n, peer_latency_n) in plan.items():
            peer_rows, peer_skips = run_peer(name, peer_n, peer_latency_n)
            rows += peer_rows
            skips += peer_skips
    else:
        skips.append(Skip("peers", "--no-peers"))

    print()
    print_table(rows)
    print(
        "\ntask-runs/s: task runs completed per second of wall time, first trigger to last "
        "completion (a 3-task run counts 3).\nvs hatchlite: this row's task-runs/s / "
        "hatchlite's on the matching workload (peers run sync `def` tasks in threads, so "
        "they are compared with hatchlite's `def` rows).\np50/p99: trigger call -> task "
        "function start, in-process perf_counter; 'seconds' there is the whole sequence."
    )
    print_summary(rows)
    for skip in skips:
        print(f"skipped: {skip.system}: {skip.reason}")
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
            asyncio.run(hatchlite_profile(Path(tmp), n))
    print(f"\ntotal wall time {time.perf_counter() - began:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
