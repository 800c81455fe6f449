"""Issue 14's targets, each beside the figure bench/throughput.py measured for it, with
a verdict: PASS, short, not measured (skipped) or printed (the issue asks only that it
be measured). Imported by throughput.py; not a script.

How the issue's wording is read (README, `throughput.py`):

* "no-op async def tasks, 1-task runs and 3-task DAGs: at least 12,000 task-runs/s and
  at least 25% of the raw SQLite limit": both workloads, both conditions.
* "no-op def tasks: at least 8,000 task-runs/s": both workloads.
* "10x Huey and 50x DBOS on the matching workloads": each peer throughput row against
  hatchlite's `def` row of the same shape (the median of each).
* "trigger-to-start p50 at most 0.3 ms in process": the `async def` and the `def` rows.
* "a 10,000-child fan-out completes at the unlimited rate": children/s at least 0.9 of
  the 1-task `async def` rate (the 10% the issue allows growth).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from benchkit import Row, percentile
from throughput_scale import ScaleFigures


def per_second(x: float) -> str:
    return f"{x:,.0f}/s"


def times(x: float) -> str:
    return f"{x:,.2f}x"


def share(x: float) -> str:
    return f"{x:.1%}"


def millis(x: float) -> str:
    return f"{x:.2f} ms"


def byte_count(x: float) -> str:
    return f"{x:,.0f} bytes"


@dataclass
class Target:
    """One figure the issue asks for, beside what was measured."""

    what: str
    measured: float | None  # None: not measured (skipped)
    goal: float | None  # None: to be printed, no goal
    show: Callable[[float], str]
    at_least: bool = True  # passes if measured >= goal (else if measured <= goal)
    goal_text: str | None = None  # the goal as printed, when not `>= goal` / `<= goal`

    def goal_shown(self) -> str:
        if self.goal is None:
            return "(no target: printed)"
        return self.goal_text or f"{'>=' if self.at_least else '<='} {self.show(self.goal)}"

    def verdict(self) -> str:
        if self.measured is None:
            return "not measured"
        if self.goal is None:
            return "printed"
        ok = self.measured >= self.goal if self.at_least else self.measured <= self.goal
        return "PASS" if ok else "short"


def hatchlite_rows(rows: list[Row]) -> dict[str, Row]:
    return {r.key: r for r in rows if r.system == "hatchlite"}


def throughput_targets(rows: list[Row]) -> list[Target]:
    mine = hatchlite_rows(rows)
    raw = next((r for r in rows if r.system == "sqlite3"), None)
    out = []
    for key, label in (("single-async", "1-task runs"), ("chain-async", "3-task DAG")):
        rate = mine[key].rate if key in mine else None
        out.append(Target(f"{label}, async def: task-runs/s", rate, 12_000, per_second))
        of_raw = rate / raw.rate if rate is not None and raw is not None else None
        out.append(Target(f"{label}, async def: share of raw SQLite", of_raw, 0.25, share))
    for key, label in (("single-sync", "1-task runs"), ("chain-sync", "3-task DAG")):
        rate = mine[key].rate if key in mine else None
        out.append(Target(f"{label}, def: task-runs/s", rate, 8_000, per_second))
    for peer, goal in (("huey", 10.0), ("dbos", 50.0)):
        found = [r for r in rows if r.system == peer and r.p50_ms is None and r.key in mine]
        for r in found:
            what = f"x {peer}: {r.workload.replace(', def', '')}"
            out.append(Target(what, mine[r.key].rate / r.rate, goal, times))
        if not found:
            out.append(Target(f"x {peer} (matching workloads)", None, goal, times))
    return out


def latency_targets(rows: list[Row], got: ScaleFigures, callers: int) -> list[Target]:
    mine = hatchlite_rows(rows)

    def p50(key: str) -> float | None:
        return mine[key].p50_ms if key in mine else None

    load = mine["latency-load"].p99_ms if "latency-load" in mine else None
    cross = percentile(got.cross.starts, 50) * 1000 if got.cross else None
    return [
        Target(
            "trigger->start p50, in process, async def", p50("latency-async"), 0.3, millis, False
        ),
        Target("trigger->start p50, in process, def", p50("latency-sync"), 0.3, millis, False),
        Target("trigger->start p50, cross-process, active", cross, 1.0, millis, False),
        Target(f"trigger->start p99, {callers} callers", load, 10.0, millis, False),
    ]


def scale_targets(rows: list[Row], got: ScaleFigures) -> list[Target]:
    unlimited = hatchlite_rows(rows).get("single-async")
    fan = (
        statistics.median(got.fan_out) / unlimited.rate
        if got.fan_out is not None and unlimited is not None
        else None
    )
    g = got.growth
    stored = f"{g.stored:,}" if g else "N"
    out = [
        Target(
            "keyed (1,000 keys, max_runs=1) / unlimited",
            got.keyed.ratio if got.keyed else None,
            0.5,
            times,
        ),
        Target(
            "fan-out children/s / 1-task async def rate",
            fan,
            0.9,
            times,
            goal_text=">= 0.90x (at the rate, within 10%)",
        ),
        Target(f"dispatch with {stored} runs stored / empty", g.ratio if g else None, 0.9, times),
        Target(
            f"runs.list() first page p50, {stored} stored",
            percentile(g.full_list_ms, 50) if g else None,
            50.0,
            millis,
            False,
            "< 50.00 ms",
        ),
    ]
    for m in got.memory:
        out.append(Target(f"memory per in-flight run ({m.mode})", m.per_run, None, byte_count))
    if not got.memory:
        out.append(Target("memory per in-flight run", None, None, byte_count))
    return out


def print_targets(rows: list[Row], got: ScaleFigures, reps: int, callers: int) -> None:
    targets = (
        throughput_targets(rows) + latency_targets(rows, got, callers) + scale_targets(rows, got)
    )
    print(
        f"\nIssue 14 targets (throughput: the median of {reps} repetition(s); latency: one "
        "sequence each):"
    )
    width = max(len(t.what) for t in targets)
    print(f"  {'figure':<{width}} {'measured':>14}  {'target':<36} verdict")
    for t in targets:
        measured = t.show(t.measured) if t.measured is not None else "-"
        print(f"  {t.what:<{width}} {measured:>14}  {t.goal_shown():<36} {t.verdict()}")
    verdicts = [t.verdict() for t in targets]
    print(
        f"  {verdicts.count('PASS')} PASS, {verdicts.count('short')} short, "
        f"{verdicts.count('not measured')} not measured, {verdicts.count('printed')} printed only"
    )
