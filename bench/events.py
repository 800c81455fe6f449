"""Push throughput of `hatchet.event.push` and `bulk_push` (events/s) with 1,000 open waits
and 50 filters on other keys, beside the same pushes on an empty engine (issue 8:
"matching must not scan unrelated waits").

    python bench/events.py [--n N] [--reps R] [--quick] [--no-plans]

Every scenario opens a fresh SQLite file in a temp dir, in this process, with the
implicit worker (unless said otherwise), and pushes the same events: key KEY, scope
SCOPE, payload {"i": <n>}. Scenarios:

  (a)    empty engine: no workflow listens to KEY, no waits, no filters.
  (b)    1,000 open waits on OTHER keys (500 durable tasks in
         `aio_wait_for_event("other:<i>")`, 500 DAG tasks gated by
         `UserEventCondition(event_key="other:dag:<j>")`, 10 runs of each of 50 workflows)
         and 50 filters, one on each of 50 workflows listening to other keys.
  (b-w)  only the 1,000 waits (the 500 gated DAG tasks in one workflow): 2 workflows.
  (b-f)  only the 50 filters, on 50 workflows.
  (b-f1) only 50 filters, all on one workflow listening to another key.
  (c)    as (b), but the 1,000 waits are on KEY itself (the gated DAG tasks in one
         workflow), with a CEL expression that is false for every event pushed: each push
         evaluates them all (the O(matching waits) cost, for contrast).
  (d)    one workflow listens to KEY with one filter of SCOPE that is true: each push
         starts one run. Two variants: no worker in this process (`auto_worker=False`: the
         runs stay queued, so only the push is measured) and the implicit worker running
         them meanwhile (their execution shares the CPU and the database thread).
  (a')   (a) again at the end; "vs (a)" divides by the median of (a) and (a') pooled.

Each is timed as R repetitions of N events pushed one `push` call at a time, and of N
events in `bulk_push` batches of BULK, alternating; the figure is the median of the R
rates. Every wait is checked to be open before the first push and after the last.

Then, unless --no-plans, one push per scenario is traced (the statements the database
thread runs for it, and for the engine steps that follow within TRACE_WINDOW), and each
SELECT is run again on a read-only connection while that scenario's engine is still
open, printing its `EXPLAIN QUERY PLAN`, the SQLite VM steps it takes (a proxy for rows
visited: a SELECT that reads unrelated waits or filters takes more steps in (b) than in
(a)) and its time.
"""

from __future__ import annotations

import argparse
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hatchlite import (
    BulkPushEventWithMetadata,
    Context,
    DurableContext,
    Hatchet,
    Standalone,
    UserEventCondition,
    Workflow,
)

# -- defaults ------------------------------------------------------------------------

DEFAULT_N = 1_000  # events per repetition and mode
QUICK_N = 200
DEFAULT_REPS = 7
QUICK_REPS = 3
SAME_KEY_DIVISOR = 50  # (c) pushes N / 50 events per repetition (at least MIN_SAME_KEY)
MIN_SAME_KEY = 10
BULK = 100  # events per bulk_push call
WARMUP = 20  # untimed single pushes before timing (and one bulk)
KEY = "bench:push"
SCOPE = "bench"
DURABLE_WAITS = 500
DAG_TASKS = 500
DAG_WORKFLOWS = 50  # (b): the gated DAG tasks are 10 runs of each of 50 workflows
FILTERS = 50  # (b): on 50 workflows, one each
NO_MATCH = "input.i < 0"  # false for every pushed event
READY_TIMEOUT = 60.0
STATEMENT_REPS = 21  # timings of each traced SELECT
TRACE_WINDOW = 0.3  # seconds of engine activity traced after the push
TRACE_SCENARIOS = ("a", "b", "bw", "bf", "bf1", "c", "d", "d+")  # columns of the VM-steps table


class Push(BaseModel):
    i: int = 0


class Wait(BaseModel):
    key: str
    expression: str | None = None


# -- the scenarios ---------------------------------------------------------------------


@dataclass
class Setup:
    """What a scenario made: how many open conditions and runs per event it expects."""

    waits: int = 0
    runs_per_event: int = 0
    runs_execute: bool = False  # the triggered runs run here (wait for them between reps)


@dataclass
class Scenario:
    tag: str
    title: str
    setup: Callable[[Hatchet], Setup]
    auto_worker: bool = True
    same_key: bool = False  # pushes evaluate every wait: fewer events


def noop_task(h: Hatchet, name: str, on_events: list[str] | None = None) -> Standalone[Push, Any]:
    async def noop(input: Push, ctx: Context) -> dict[str, Any]:
        return {}

    return h.task(name=name, input_validator=Push, on_events=on_events)(noop)


def durable_waiter(h: Hatchet) -> Standalone[Wait, dict[str, Any]]:
    async def wait(input: Wait, ctx: DurableContext) -> dict[str, Any]:
        await ctx.aio_wait_for_event(input.key, input.expression)
        return {}

    return h.durable_task(name="bench-durable-wait", input_validator=Wait)(wait)


def gated_dag(h: Hatchet, name: str, key: str, expression: str | None) -> Workflow[Push]:
    wf: Workflow[Push] = h.workflow(name=name, input_validator=Push)

    async def gated(input: Push, ctx: Context) -> dict[str, Any]:
        return {}

    wf.task(name="gated", wait_for=[UserEventCondition(event_key=key, expression=expression)])(
        gated
    )
    return wf


def other_filters(h: Hatchet, workflows: int = FILTERS) -> None:
    """FILTERS true filters of SCOPE over `workflows` workflows listening to other keys
    (every other one with a wildcard)."""
    listeners = []
    for j in range(workflows):
        pattern = f"other:trig:{j}:*" if j % 2 else f"other:trig:{j}"
        listeners.append(noop_task(h, f"bench-filtered-{j}", on_events=[pattern]))
    for j in range(FILTERS):
        h.filters.create(listeners[j % workflows].id, f"input.i >= {-j}", SCOPE, {"j": j})


def start_waits(h: Hatchet, same_key: bool, dag_workflows: int = DAG_WORKFLOWS) -> int:
    """DURABLE_WAITS durable waits and DAG_TASKS gated DAG tasks (over `dag_workflows`
    workflows), on other keys or (same_key) on KEY with NO_MATCH."""
    durable = durable_waiter(h)
    if same_key:
        dags = [gated_dag(h, f"bench-gated-{j}", KEY, NO_MATCH) for j in range(dag_workflows)]
        waits = [Wait(key=KEY, expression=NO_MATCH) for _ in range(DURABLE_WAITS)]
    else:
        dags = [
            gated_dag(h, f"bench-gated-{j}", f"other:dag:{j}", None) for j in range(dag_workflows)
        ]
        waits = [Wait(key=f"other:{i}") for i in range(DURABLE_WAITS)]
    durable.run_many_no_wait([durable.create_bulk_run_item(w) for w in waits])
    per_dag = DAG_TASKS // len(dags)
    for wf in dags:
        wf.run_many_no_wait([wf.create_bulk_run_item(Push(i=-1)) for _ in range(per_dag)])
    return DURABLE_WAITS + len(dags) * per_dag


def setup_empty(h: Hatchet) -> Setup:
    return Setup()


def setup_other_keys(h: Hatchet) -> Setup:
    other_filters(h)
    return Setup(waits=start_waits(h, same_key=False))


def setup_waits_only(h: Hatchet) -> Setup:
    return Setup(waits=start_waits(h, same_key=False, dag_workflows=1))


def setup_filters_only(h: Hatchet) -> Setup:
    other_filters(h)
    return Setup()


def setup_filters_one_workflow(h: Hatchet) -> Setup:
    other_filters(h, workflows=1)
    return Setup()


def setup_same_key(h: Hatchet) -> Setup:
    other_filters(h)
    return Setup(waits=start_waits(h, same_key=True, dag_workflows=1))


def setup_trigger(run_here: bool) -> Callable[[Hatchet], Setup]:
    def setup(h: Hatchet) -> Setup:
        wf = noop_task(h, "bench-triggered", on_events=[KEY])
        h.filters.create(wf.id, "input.i >= 0", SCOPE, {"via": "bench"})
        return Setup(runs_per_event=1, runs_execute=run_here)

    return setup


SCENARIOS = [
    Scenario("a", "(a) empty engine", setup_empty),
    Scenario("b", "(b) 1,000 waits + 50 filters, other keys", setup_other_keys),
    Scenario("bw", "(b-w) only the 1,000 waits (2 workflows)", setup_waits_only),
    Scenario("bf", "(b-f) only the 50 filters (50 workflows)", setup_filters_only),
    Scenario("bf1", "(b-f1) only 50 filters, all on 1 workflow", setup_filters_one_workflow),
    Scenario("c", "(c) 1,000 waits on KEY, CEL false (+50 filters)", setup_same_key, same_key=True),
    Scenario("d", "(d) 1 run per push via a filter, no worker", setup_trigger(False), False),
    Scenario("d+", "(d+) as (d), implicit worker runs them", setup_trigger(True)),
    Scenario("a'", "(a') empty engine, again at the end", setup_empty),
]


# -- database state (read-only connection beside the engine) ------------------------------


@dataclass
class State:
    open_conditions: int  # open EVENT conditions, all keys
    open_on_key: int  # of which on KEY
    filters: int
    trigger_patterns: int
    workflows: int
    triggered_runs: int  # workflow runs with a triggering event
    active_runs: int  # workflow runs QUEUED or RUNNING
    completed_triggered: int
    waiting_tasks: int  # durable waits recorded and not yet satisfied
    gated_tasks: int  # DAG tasks held by their conditions


def read_state(ro: sqlite3.Connection) -> State:
    def one(sql: str, *params: str) -> int:
        return int(ro.execute(sql, params).fetchone()[0])

    return State(
        open_conditions=one(
            "SELECT count(*) FROM durable_conditions WHERE status = 'OPEN' AND kind = 'EVENT'"
        ),
        open_on_key=one(
            """SELECT count(*) FROM durable_conditions
               WHERE status = 'OPEN' AND kind = 'EVENT' AND event_key = ?""",
            KEY,
        ),
        filters=one("SELECT count(*) FROM filters"),
        trigger_patterns=one("SELECT count(*) FROM event_triggers"),
        workflows=one("SELECT count(*) FROM workflows WHERE deleted_at IS NULL"),
        triggered_runs=one(
            "SELECT count(*) FROM workflow_runs WHERE triggering_event_id IS NOT NULL"
        ),
        active_runs=one(
            "SELECT count(*) FROM workflow_runs WHERE status IN ('QUEUED', 'RUNNING')"
            " AND triggering_event_id IS NOT NULL"
        ),
        completed_triggered=one(
            """SELECT count(*) FROM workflow_runs
               WHERE triggering_event_id IS NOT NULL AND status = 'COMPLETED'"""
        ),
        waiting_tasks=one(
            "SELECT count(*) FROM durable_events WHERE kind = 'WAIT' AND status = 'PENDING'"
        ),
        gated_tasks=one(
            """SELECT count(DISTINCT task_run_id) FROM durable_conditions
               WHERE node_id = 0 AND status = 'OPEN'"""
        ),
    )


def wait_until(ro: sqlite3.Connection, ok: Callable[[State], bool], what: str) -> State:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        state = read_state(ro)
        if ok(state):
            return state
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}: {state}")
        time.sleep(0.02)


# -- pushing -------------------------------------------------------------------------


def push_single(h: Hatchet, start: int, n: int) -> None:
    for i in range(start, start + n):
        h.event.push(KEY, {"i": i}, scope=SCOPE)


def push_bulk(h: Hatchet, start: int, n: int, batch: int) -> None:
    for first in range(start, start + n, batch):
        h.event.bulk_push(
            [
                BulkPushEventWithMetadata(key=KEY, payload={"i": i}, scope=SCOPE)
                for i in range(first, min(first + batch, start + n))
            ]
        )


@dataclass
class Result:
    scenario: Scenario
    n: int
    batch: int
    rates: dict[str, list[float]]  # mode -> events/s per repetition
    before: State
    after: State
    pushed: int
    ready_s: float
    others: float | None  # cores used by other processes while timing


class OtherLoad:
    """CPU time other processes (and the hypervisor's steal) took while this one was
    timed, from /proc/stat less this process's own: the machine's noise, in cores. None
    where /proc/stat is missing."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.wall = 0.0
        self.known = True

    @staticmethod
    def _busy() -> float | None:
        try:
            first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
            ticks = [int(x) for x in first[1:9]]
        except (OSError, ValueError, IndexError):
            return None
        # user nice system idle iowait irq softirq steal: all but idle and iowait
        return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")

    def time(self, fn: Callable[[int], None], arg: int) -> float:
        """Run fn(arg); returns its wall time and adds to the tally."""
        busy, own, began = self._busy(), time.process_time(), time.perf_counter()
        fn(arg)
        wall = time.perf_counter() - began
        busy_after, own_after = self._busy(), time.process_time()
        if busy is None or busy_after is None:
            self.known = False
        else:
            self.cpu += max(0.0, (busy_after - busy) - (own_after - own))
        self.wall += wall
        return wall

    @property
    def cores(self) -> float | None:
        return self.cpu / self.wall if self.known and self.wall else None


def measure(
    h: Hatchet, ro: sqlite3.Connection, setup: Setup, n: int, batch: int, reps: int
) -> tuple[dict[str, list[float]], int, float | None]:
    """R repetitions of each mode, alternating; between them the triggered runs (d+) are
    left to finish, untimed. Returns the rates, the number of events pushed and the
    other processes' load meanwhile."""
    rates: dict[str, list[float]] = {"push": [], "bulk_push": []}
    pushed = 0

    def settle() -> None:
        if setup.runs_execute:
            wait_until(ro, lambda s: s.active_runs == 0, "the triggered runs to finish")

    push_single(h, pushed, min(WARMUP, n))
    pushed += min(WARMUP, n)
    push_bulk(h, pushed, batch, batch)
    pushed += batch
    load = OtherLoad()
    modes: dict[str, Callable[[int], None]] = {
        "push": lambda start: push_single(h, start, n),
        "bulk_push": lambda start: push_bulk(h, start, n, batch),
    }
    for _ in range(reps):
        for mode, push in modes.items():
            settle()
            wall = load.time(push, pushed)
            rates[mode].append(n / wall)
            pushed += n
    settle()
    return rates, pushed, load.cores


def run_scenario(
    sc: Scenario, tmp: Path, n: int, reps: int, traced: dict[str, Traced] | None
) -> tuple[Result, list[str]]:
    """Set the scenario up, time it, and (if `traced` is given) trace one push into it."""
    path = tmp / f"events-{sc.tag.replace(chr(39), 'p')}.db"
    h = Hatchet(db=str(path), auto_worker=sc.auto_worker)
    try:
        began = time.perf_counter()
        setup = sc.setup(h)
        h.event.push("bench:start", {"i": -1})  # registers the workflows, starts the engine
        ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            before = wait_until(
                ro,
                lambda s: (
                    s.open_conditions == setup.waits
                    and s.waiting_tasks + s.gated_tasks == setup.waits
                ),
                f"{setup.waits} open waits",
            )
            ready_s = time.perf_counter() - began
            size = max(MIN_SAME_KEY, n // SAME_KEY_DIVISOR) if sc.same_key else n
            batch = min(BULK, size)
            rates, pushed, others = measure(h, ro, setup, size, batch, reps)
            if traced is not None:
                analyse(traced, sc.tag, trace_one_push(h, ro, setup), ro)
                pushed += 1
            after = read_state(ro)
        finally:
            ro.close()
    finally:
        h.close()
    result = Result(sc, size, batch, rates, before, after, pushed, ready_s, others)
    return result, check(result, setup)


def check(r: Result, setup: Setup) -> list[str]:
    """Sanity: every wait still open, one run per event where expected (all done in d+)."""
    problems = []
    if r.after.open_conditions != setup.waits:
        problems.append(
            f"{r.scenario.tag}: {r.after.open_conditions} open waits after, not {setup.waits}"
        )
    want = r.pushed * setup.runs_per_event
    if r.after.triggered_runs != want:
        problems.append(f"{r.scenario.tag}: {r.after.triggered_runs} runs triggered, not {want}")
    if setup.runs_execute and r.after.completed_triggered != want:
        problems.append(
            f"{r.scenario.tag}: {r.after.completed_triggered} of {want} triggered runs completed"
        )
    return problems


# -- what one push runs ------------------------------------------------------------------


def trace_one_push(h: Hatchet, ro: sqlite3.Connection, setup: Setup) -> list[str]:
    """The statements the database thread runs for one push and the engine steps that
    follow within TRACE_WINDOW (`PRAGMA data_version` polls left out). It reaches into
    the engine's private database object, for this diagnosis only."""
    db = h._engine.store.db
    seen: list[str] = []
    db.run_sync(lambda conn: conn.set_trace_callback(seen.append), write=False)
    try:
        h.event.push(KEY, {"i": 10**9}, scope=SCOPE)
        time.sleep(TRACE_WINDOW)
        if setup.runs_execute:
            wait_until(ro, lambda s: s.active_runs == 0, "the traced push's run to finish")
    finally:
        db.run_sync(lambda conn: conn.set_trace_callback(None), write=False)
    return [s for s in seen if not s.startswith("PRAGMA data_version")]


CONTROL = re.compile(r"^(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b")
LITERAL = re.compile(r"'(?:[^']|'')*'|(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w.])")


def shape(sql: str) -> str:
    """A statement with its literals replaced by `?`, to match it across scenarios."""
    sql = LITERAL.sub("?", " ".join(sql.split()))
    return re.sub(r"\?(\s*,\s*\?)+", "?, ...", sql)


@dataclass
class Traced:
    shape: str
    in_push: bool  # in the push's own transaction (else an engine step after it)
    plan: list[str] = field(default_factory=list)
    steps: dict[str, int] = field(default_factory=dict)  # scenario tag -> VM steps
    us: dict[str, float] = field(default_factory=dict)  # scenario tag -> median time


def split_trace(trace: list[str]) -> list[tuple[str, bool]]:
    """(statement, in the push's transaction) in order; control statements left out."""
    out: list[tuple[str, bool]] = []
    state = "before"  # before -> push (from the INSERT INTO events) -> after (its COMMIT)
    for sql in trace:
        text = " ".join(sql.split())
        if state == "before" and text.startswith("INSERT INTO events "):
            state = "push"
        if CONTROL.match(text):
            if state == "push" and text.startswith("COMMIT"):
                state = "after"
            continue
        out.append((text, state == "push"))
    return out


def vm_steps(ro: sqlite3.Connection, sql: str) -> int | None:
    """VM instructions a read-only statement takes (None for writes)."""
    if not sql.lstrip().upper().startswith("SELECT"):
        return None
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    ro.set_progress_handler(tick, 1)
    try:
        ro.execute(sql).fetchall()
    finally:
        ro.set_progress_handler(None, 0)
    return count


def time_statement(ro: sqlite3.Connection, sql: str) -> float:
    """Median time of a read-only statement, microseconds."""
    samples = []
    for _ in range(STATEMENT_REPS):
        began = time.perf_counter()
        ro.execute(sql).fetchall()
        samples.append((time.perf_counter() - began) * 1e6)
    return statistics.median(samples)


def analyse(traced: dict[str, Traced], tag: str, trace: list[str], ro: sqlite3.Connection) -> None:
    """Add the statements of one scenario's traced push to `traced` (by shape): the plan
    (from the first database that ran it), and VM steps and time on this one. Called
    while the scenario's engine is open, so the database is as the push saw it (closing
    the engine puts the suspended durable tasks back in the queue)."""
    for sql, in_push in split_trace(trace):
        key = shape(sql)
        t = traced.get(key)
        if t is None:
            t = traced[key] = Traced(key, in_push)
            rows = ro.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
            t.plan = [str(row[3]) for row in rows]
        if tag not in t.steps:
            steps = vm_steps(ro, sql)
            if steps is not None:
                t.steps[tag] = steps
                t.us[tag] = time_statement(ro, sql)


SCAN = re.compile(r"\bSCAN (?!CONSTANT ROW)(\w+)(?: USING (?:COVERING )?INDEX (\w+))?")


ALIAS = re.compile(r"\b(?:FROM|JOIN) (\w+) (?:AS )?(\w+)")


def plan_flags(t: Traced) -> list[str]:
    tables = {alias: table for table, alias in ALIAS.findall(t.shape)}
    flags = []
    for line in t.plan:
        m = SCAN.search(line)
        if m:
            table = tables.get(m.group(1), m.group(1))
            flags.append(f"scans {table}" + (f" (whole index {m.group(2)})" if m.group(2) else ""))
    return flags


def print_plans(traced: list[Traced], tags: Sequence[str]) -> list[str]:
    flagged = []
    for in_push, title in ((True, "the push's transaction"), (False, "engine steps after it")):
        print(
            f"\n== {title}: SQLite VM steps on each scenario's database, median time on (b)'s, "
            "and the plan"
        )
        print("  " + "".join(f"{tag:>7}" for tag in tags) + f"{'us (b)':>8}   statement")
        pad = " " * (7 * len(tags) + 8)
        for t in (t for t in traced if t.in_push == in_push):
            cells = "".join(f"{t.steps.get(tag, '-') if t.steps else 'write':>7}" for tag in tags)
            us = f"{t.us['b']:.1f}" if "b" in t.us else "-"
            print(f"  {cells}{us:>8}   {t.shape[:140]}")
            for line in t.plan:
                print(f"  {pad}   | {line}")
            for flag in plan_flags(t):
                print(f"  {pad}   <-- {flag}")
                flagged.append(f"{flag}: {t.shape[:120]}")
    return flagged


# -- report ----------------------------------------------------------------------------


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def spread(rates: list[float]) -> str:
    return f"{min(rates):,.0f}-{max(rates):,.0f}"


BASELINE = ("a", "a'")  # their repetitions, pooled, are what "vs (a)" divides by


def baseline(results: list[Result], mode: str) -> float:
    return statistics.median(
        rate for r in results if r.scenario.tag in BASELINE for rate in r.rates[mode]
    )


def print_table(results: list[Result]) -> None:
    base = {mode: baseline(results, mode) for mode in ("push", "bulk_push")}
    head = (
        f"{'scenario':<50} {'mode':<10} {'events/rep':>10} {'events/s':>9} {'min-max':>13} "
        f"{'vs (a)':>7} {'waits':>6} {'on KEY':>6} {'filters':>7} {'patterns':>8} {'wfs':>4} "
        f"{'runs':>6} {'others':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        for mode, rates in r.rates.items():
            med = statistics.median(rates)
            label = mode if mode == "push" else f"bulk/{r.batch}"
            s = r.before
            runs = f"{r.after.triggered_runs:,}" if r.after.triggered_runs else "0"
            load = "?" if r.others is None else f"{r.others:.2f}"
            print(
                f"{r.scenario.title:<50} {label:<10} {r.n:>10,} {med:>9,.0f} "
                f"{spread(rates):>13} {med / base[mode]:>6.2f}x {s.open_conditions:>6,} "
                f"{s.open_on_key:>6,} {s.filters:>7} {s.trigger_patterns:>8} {s.workflows:>4} "
                f"{runs:>6} {load:>6}"
            )


def ratio(r: Result, results: list[Result], mode: str) -> float:
    return statistics.median(r.rates[mode]) / baseline(results, mode)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help=f"events per repetition and mode (default {DEFAULT_N:,}, --quick {QUICK_N}); "
        f"(c) pushes N/{SAME_KEY_DIVISOR}",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        help=f"repetitions per mode (default {DEFAULT_REPS}, --quick {QUICK_REPS})",
    )
    parser.add_argument("--quick", action="store_true", help="small N, for a smoke run")
    parser.add_argument(
        "--plans",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trace one push per scenario and print its SQL plans (default: on)",
    )
    args = parser.parse_args(argv)
    n = args.n or (QUICK_N if args.quick else DEFAULT_N)
    reps = args.reps or (QUICK_REPS if args.quick else DEFAULT_REPS)
    if n < 1 or reps < 1:
        parser.error("--n and --reps must be positive")
    logging.getLogger("hatchlite").setLevel(logging.ERROR)

    began = time.perf_counter()
    print(
        f"hatchlite {version('hatchlite')} | Python {platform.python_version()} | "
        f"SQLite {sqlite3.sqlite_version} | {platform.machine()}, {os.cpu_count()} cores"
    )
    print(
        f"Each scenario: a fresh SQLite file (WAL, synchronous=NORMAL), this process; "
        f"{reps} repetitions of N events by `push` and in `bulk_push` batches of {BULK}, "
        f"alternating, after {WARMUP} + {BULK} untimed; events/s is the median."
    )
    results: list[Result] = []
    problems: list[str] = []
    traced: dict[str, Traced] | None = {} if args.plans else None
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp_name:
        tmp = Path(tmp_name)
        for sc in SCENARIOS:
            print(f"  {sc.title} ...", end="", flush=True)
            result, found = run_scenario(sc, tmp, n, reps, traced)
            results.append(result)
            problems += found
            med = {m: statistics.median(v) for m, v in result.rates.items()}
            print(
                f" ready in {result.ready_s:.1f}s; push {med['push']:,.0f}/s, "
                f"bulk {med['bulk_push']:,.0f}/s",
                flush=True,
            )
    print()
    print_table(results)
    print(
        "\nevents/s: median over the repetitions (min-max beside it); vs (a): against "
        "the median of (a)'s and (a')'s repetitions pooled, same mode. waits: open event "
        "conditions (durable waits and gated DAG tasks) before the first push; on KEY: of "
        "them, on the pushed key; filters / patterns / wfs: rows of filters, event_triggers "
        "and workflows; runs: workflow runs started by events, all repetitions; others: "
        f"cores busy outside this process while timing (of {os.cpu_count()}; the noise)."
    )
    print()
    for r in results:
        if r.scenario.tag.startswith("b"):
            print(
                f"{r.scenario.title.split(')')[0] + ') / (a):':<16}"
                + ", ".join(f"{mode} {ratio(r, results, mode):.2f}" for mode in r.rates)
            )
    print("the claim: (b) within about 10-20% of (a), i.e. a ratio of 0.8-0.9 or better")
    if traced is not None:
        flagged = print_plans(list(traced.values()), TRACE_SCENARIOS)
        print("\nplans that scan a table or a whole index:")
        for line in dict.fromkeys(flagged) or ["none"]:
            print(f"  {line}")
    for line in problems:
        print(f"PROBLEM: {line}")
    print(f"\ntotal wall time {time.perf_counter() - began:.1f}s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
