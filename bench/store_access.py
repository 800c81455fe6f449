"""What it costs an asyncio engine to reach SQLite, two ways, doing the same work.

    python bench/store_access.py [--n N] [--callers C] [--reps R] [--quick]

The work per task run is what a minimal engine needs: insert it QUEUED, claim it
(UPDATE to RUNNING), complete it with its output (UPDATE to COMPLETED), on a table with
a status index, in WAL mode with synchronous=NORMAL; a task run counts once its
completion is committed. Every row gets a fresh file in a temporary directory.

* `aiosqlite`, one `await` per statement: C coroutines (the engine's concurrent
  tasks) each run task runs one after another; each statement is its own
  `await conn.execute(...)` on aiosqlite's thread. Commits are grouped: a commit is
  issued when GROUP task runs have finished their statements, or when every live
  coroutine is waiting for one (an engine's "tick"); a task run is acknowledged only
  after the commit that holds its completion.
* hatchlite's database thread (`hatchlite.store.db.Database`, the class the engine
  uses): the same C coroutines each `await db.run(job)` per statement, a job being a
  function of the connection. The thread takes every job waiting, runs them in one
  transaction (a savepoint each), commits once, and resolves each job's future on the
  loop; an acknowledgement is a commit, as above.

Two more pairs put those in context: both ways again with one await per *step* of
GROUP task runs (`executemany`, as hatchlite's engine writes a step's claims and
outcomes in one job), and both with one caller at a time (the latency of an await).
The first row is the floor: plain `sqlite3`, the same statements with `executemany`,
GROUP task runs per transaction, no asyncio.

`aiosqlite` is not a hatchlite dependency: `pip install aiosqlite` to measure it;
without it its rows print `skipped: aiosqlite not installed`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import importlib.metadata
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatchlite.store.db import Database

DEFAULT_N = 20_000  # task runs per concurrent row
DEFAULT_SERIAL_N = 2_000  # task runs per one-caller-at-a-time row
DEFAULT_CALLERS = 256  # concurrent coroutines
DEFAULT_REPS = 3
GROUP = 256  # task runs per commit (aiosqlite) and per step (the step rows)
STATEMENTS = 3  # per task run: insert, claim, complete

TABLE = """CREATE TABLE IF NOT EXISTS bench_task_runs (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
    input TEXT NOT NULL, output TEXT, worker_id TEXT, created_at REAL NOT NULL,
    started_at REAL, finished_at REAL)"""
INDEX = """CREATE INDEX IF NOT EXISTS bench_task_runs_queued ON bench_task_runs (status)
    WHERE status = 'QUEUED'"""
INSERT = """INSERT INTO bench_task_runs (id, status, input, created_at)
    VALUES (?, 'QUEUED', '{}', ?)"""
CLAIM = """UPDATE bench_task_runs SET status = 'RUNNING', worker_id = 'w', started_at = ?
    WHERE id = ? AND status = 'QUEUED'"""
COMPLETE = """UPDATE bench_task_runs SET status = 'COMPLETED', output = '{"ok":true}',
    finished_at = ? WHERE id = ? AND status = 'RUNNING'"""
COUNT_DONE = "SELECT count(*) FROM bench_task_runs WHERE status = 'COMPLETED'"


def _load_aiosqlite() -> Any:
    """The aiosqlite module, or None (imported by name so that mypy passes with and
    without it installed)."""
    try:
        return importlib.import_module("aiosqlite")
    except ImportError:
        return None


aiosqlite: Any = _load_aiosqlite()


@dataclass
class Run:
    """One repetition of one row."""

    seconds: float
    awaits: int  # awaits that cross to the database thread
    transactions: int


@dataclass
class Row:
    name: str
    n: int
    runs: list[Run]

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    @property
    def spread(self) -> str:
        """The slowest and fastest repetition, thousands of task runs/s."""
        rates = [self.n / r.seconds / 1000 for r in self.runs]
        return f"{min(rates):.1f}-{max(rates):.1f}k"

    @property
    def awaits_per_run(self) -> float:
        return self.runs[0].awaits / self.n

    @property
    def us_per_await(self) -> float | None:
        awaits = self.runs[0].awaits
        return self.seconds * 1e6 / awaits if awaits else None

    @property
    def transactions(self) -> int:
        return self.runs[0].transactions


def check(ok: bool, what: str) -> None:
    if not ok:
        raise SystemExit(f"sanity check failed: {what}")


def count_done(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(COUNT_DONE).fetchone()[0])
    finally:
        conn.close()


# -- the floor: sqlite3, no asyncio ----------------------------------------------------


def raw_sqlite(path: Path, ids: list[str]) -> Run:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(TABLE)
    conn.execute(INDEX)
    transactions = 0
    start = time.perf_counter()
    for at in range(0, len(ids), GROUP):
        part = ids[at : at + GROUP]
        now = time.time()
        conn.execute("BEGIN")
        conn.executemany(INSERT, [(i, now) for i in part])
        conn.executemany(CLAIM, [(now, i) for i in part])
        conn.executemany(COMPLETE, [(now, i) for i in part])
        conn.execute("COMMIT")
        transactions += 1
    seconds = time.perf_counter() - start
    conn.close()
    return Run(seconds, 0, transactions)


# -- aiosqlite ---------------------------------------------------------------------------


async def _aio_open(path: Path) -> Any:
    conn = await aiosqlite.connect(path)  # implicit transactions, committed by us
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = NORMAL")
    await conn.execute(TABLE)
    await conn.execute(INDEX)
    await conn.commit()
    return conn


class _GroupCommit:
    """Commits on aiosqlite's connection for many coroutines: once GROUP task runs
    wait, or every live coroutine does; each waiter is released after the commit that
    holds its writes."""

    def __init__(self, conn: Any, callers: int) -> None:
        self.conn = conn
        self.live = callers
        self.waiting: list[asyncio.Future[None]] = []
        self.commits = 0

    async def done(self) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        if len(self.waiting) >= min(GROUP, self.live):
            await self._commit()
        await future

    async def retire(self) -> None:
        """A coroutine has no more task runs: the others may all be waiting now."""
        self.live -= 1
        if self.waiting and len(self.waiting) >= self.live:
            await self._commit()

    async def _commit(self) -> None:
        group, self.waiting = self.waiting, []
        await self.conn.commit()
        self.commits += 1
        for future in group:
            future.set_result(None)


async def aio_per_statement(path: Path, ids: list[str], callers: int) -> Run:
    conn = await _aio_open(path)
    commits = _GroupCommit(conn, callers)
    queue = iter(ids)
    awaits = 0

    async def caller() -> None:
        nonlocal awaits
        for task_id in queue:
            now = time.time()
            await conn.execute(INSERT, (task_id, now))
            await conn.execute(CLAIM, (now, task_id))
            await conn.execute(COMPLETE, (time.time(), task_id))
            awaits += STATEMENTS
            await commits.done()
        await commits.retire()

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    seconds = time.perf_counter() - start
    await conn.close()
    return Run(seconds, awaits + commits.commits, commits.commits)


async def aio_per_step(path: Path, ids: list[str], pipelines: int) -> Run:
    conn = await _aio_open(path)
    parts = iter([ids[at : at + GROUP] for at in range(0, len(ids), GROUP)])
    awaits = commits = 0
    lock = asyncio.Lock()  # one transaction at a time on the one connection

    async def pipeline() -> None:
        nonlocal awaits, commits
        for part in parts:
            now = time.time()
            async with lock:
                await conn.executemany(INSERT, [(i, now) for i in part])
                await conn.executemany(CLAIM, [(now, i) for i in part])
                await conn.executemany(COMPLETE, [(now, i) for i in part])
                await conn.commit()
            awaits += STATEMENTS + 1
            commits += 1

    start = time.perf_counter()
    await asyncio.gather(*(pipeline() for _ in range(pipelines)))
    seconds = time.perf_counter() - start
    await conn.close()
    return Run(seconds, awaits, commits)


# -- hatchlite's database thread -------------------------------------------------------


async def _db_open(path: Path) -> Database:
    db = Database(str(path))  # WAL, synchronous=NORMAL, as the engine opens it
    await asyncio.get_running_loop().run_in_executor(None, db.open)

    def create(conn: sqlite3.Connection) -> None:
        conn.execute(TABLE)
        conn.execute(INDEX)

    await db.run(create)
    return db


async def _db_close(db: Database) -> None:
    await asyncio.get_running_loop().run_in_executor(None, db.close)


def _execute(sql: str, params: tuple[Any, ...], conn: sqlite3.Connection) -> None:
    conn.execute(sql, params)


def _execute_many(sql: str, rows: list[tuple[Any, ...]], conn: sqlite3.Connection) -> None:
    conn.executemany(sql, rows)


async def db_per_statement(path: Path, ids: list[str], callers: int) -> Run:
    db = await _db_open(path)
    before = db.batches
    queue = iter(ids)
    awaits = 0

    async def caller() -> None:
        nonlocal awaits
        for task_id in queue:
            now = time.time()
            await db.run(functools.partial(_execute, INSERT, (task_id, now)))
            await db.run(functools.partial(_execute, CLAIM, (now, task_id)))
            await db.run(functools.partial(_execute, COMPLETE, (time.time(), task_id)))
            awaits += STATEMENTS

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    seconds = time.perf_counter() - start
    transactions = db.batches - before
    await _db_close(db)
    return Run(seconds, awaits, transactions)


async def db_per_step(path: Path, ids: list[str], pipelines: int) -> Run:
    db = await _db_open(path)
    before = db.batches
    parts = iter([ids[at : at + GROUP] for at in range(0, len(ids), GROUP)])
    awaits = 0

    async def pipeline() -> None:
        nonlocal awaits
        for part in parts:
            now = time.time()
            await db.run(functools.partial(_execute_many, INSERT, [(i, now) for i in part]))
            await db.run(functools.partial(_execute_many, CLAIM, [(now, i) for i in part]))
            await db.run(functools.partial(_execute_many, COMPLETE, [(now, i) for i in part]))
            awaits += STATEMENTS

    start = time.perf_counter()
    await asyncio.gather(*(pipeline() for _ in range(pipelines)))
    seconds = time.perf_counter() - start
    transactions = db.batches - before
    await _db_close(db)
    return Run(seconds, awaits, transactions)


# -- running the rows --------------------------------------------------------------------

Measure = Callable[[Path, list[str]], Run]


def measure_once(name: str, n: int, rep: int, measure: Measure) -> Run:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    with tempfile.TemporaryDirectory(prefix="hatchlite-store-access-") as tmp:
        path = Path(tmp) / "bench.db"
        run = measure(path, ids)
        done = count_done(path)
    check(done == n, f"{name}: {done} of {n} task runs completed")
    print(f"  {name} #{rep + 1}: {n / run.seconds:,.0f} task runs/s", file=sys.stderr)
    return run


def in_loop(fn: Callable[[Path, list[str], int], Awaitable[Run]], width: int) -> Measure:
    return lambda path, ids: asyncio.run(_call(fn, path, ids, width))


async def _call(
    fn: Callable[[Path, list[str], int], Awaitable[Run]], path: Path, ids: list[str], width: int
) -> Run:
    return await fn(path, ids, width)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def header(args: argparse.Namespace) -> None:
    aio = importlib.metadata.version("aiosqlite") if aiosqlite is not None else "not installed"
    print("store_access: aiosqlite (one await per statement) vs hatchlite's database thread")
    print(
        f"machine: {os.cpu_count()} cores (nproc), {cpu_model()}, {platform.system()} "
        f"{platform.machine()}; Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, aiosqlite {aio}"
    )
    print(
        f"settings: WAL, synchronous=NORMAL, status index, {STATEMENTS} statements per task "
        f"run; N={args.n:,} per concurrent row with {args.callers} callers, "
        f"N={args.serial_n:,} per one-caller row; group/step {GROUP} task runs; "
        f"median of {args.reps}, rows taking turns; load average at the start "
        f"{os.getloadavg()[0]:.2f}",
        flush=True,  # before the progress lines on stderr
    )


def table(rows: list[Row | str], load: float) -> None:
    print()
    print(f"(load average over the last minute, at the end: {load:.2f})")
    print(
        f"{'row':<46} {'task runs/s':>12} {'(min-max)':>13} {'statements/s':>13} "
        f"{'awaits/run':>11} "
        f"{'wall us/await':>13} {'txns':>6}"
    )
    for row in rows:
        if isinstance(row, str):
            print(row)
            continue
        per_await = f"{row.us_per_await:13.1f}" if row.us_per_await is not None else f"{'-':>13}"
        print(
            f"{row.name:<46} {row.rate:>12,.0f} {row.spread:>13} {row.rate * STATEMENTS:>13,.0f} "
            f"{row.awaits_per_run:>11.3f} {per_await} {row.transactions:>6}"
        )


def ratio(rows: dict[str, Row], a: str, b: str, what: str) -> None:
    if a in rows and b in rows:
        print(f"  {what}: {rows[b].rate / rows[a].rate:.2f}x  ({b} / {a})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=DEFAULT_N, help="task runs per concurrent row")
    parser.add_argument("--serial-n", type=int, default=DEFAULT_SERIAL_N)
    parser.add_argument("--callers", type=int, default=DEFAULT_CALLERS)
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS)
    parser.add_argument("--quick", action="store_true", help="N=5,000, 1 caller N=500, 1 rep")
    args = parser.parse_args()
    if args.quick:
        args.n, args.serial_n, args.reps = 5_000, 500, 1
    header(args)

    aio_skipped = "skipped: aiosqlite not installed"
    if aiosqlite is None:
        print(aio_skipped)
    plan: list[tuple[str, int, Measure | None]] = [
        ("sqlite3, no asyncio (floor)", args.n, raw_sqlite),
        (
            "aiosqlite, 1 await per statement",
            args.n,
            in_loop(aio_per_statement, args.callers) if aiosqlite is not None else None,
        ),
        (
            "database thread, 1 job per statement",
            args.n,
            in_loop(db_per_statement, args.callers),
        ),
        (
            f"aiosqlite, 1 await per {GROUP}-run step",
            args.n,
            in_loop(aio_per_step, 2) if aiosqlite is not None else None,
        ),
        (f"database thread, 1 job per {GROUP}-run step", args.n, in_loop(db_per_step, 2)),
        (
            "aiosqlite, 1 caller at a time",
            args.serial_n,
            in_loop(aio_per_statement, 1) if aiosqlite is not None else None,
        ),
        ("database thread, 1 caller at a time", args.serial_n, in_loop(db_per_statement, 1)),
    ]
    # Repetitions outermost: the rows take turns, so that a load that comes and goes on
    # the machine falls on all of them alike.
    measured = {name: Row(name, n, []) for name, n, measure in plan if measure is not None}
    for rep in range(args.reps):
        for name, n, measure in plan:
            if measure is not None:
                measured[name].runs.append(measure_once(name, n, rep, measure))
    table(
        [measured.get(name) or f"{name:<46} {aio_skipped}" for name, _, _ in plan],
        os.getloadavg()[0],
    )
    print()
    print("ratios (task runs/s):")
    ratio(
        measured,
        "aiosqlite, 1 await per statement",
        "database thread, 1 job per statement",
        f"one await per statement, {args.callers} callers",
    )
    ratio(
        measured,
        f"aiosqlite, 1 await per {GROUP}-run step",
        f"database thread, 1 job per {GROUP}-run step",
        f"one await per step of {GROUP}",
    )
    ratio(
        measured,
        "aiosqlite, 1 caller at a time",
        "database thread, 1 caller at a time",
        "one caller at a time",
    )
    floor = measured["sqlite3, no asyncio (floor)"]
    for name, row in measured.items():
        if row is not floor:
            print(f"  {name}: {row.rate / floor.rate:.1%} of the floor")


if __name__ == "__main__":
    main()
