"""What bench/throughput.py and its two helper scripts (throughput_peers.py,
throughput_scale.py) share: the row a measured workload is reported in, percentiles,
and running a measurement in a child process that prints its result as one JSON line.

Not a script of its own. The bench scripts run as `python bench/NAME.py`, so bench/ is
on `sys.path` and they import this module (and each other) by name.
"""

from __future__ import annotations

import importlib.metadata
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULT_MARKER = "BENCH-RESULT "  # prefix of a child process's one line of JSON


@dataclass
class Row:
    """One measured workload; `rates` holds each repetition's task-runs/s."""

    system: str
    workload: str
    n: int  # runs triggered (per repetition)
    task_runs: int  # task runs completed per repetition (n x tasks per run)
    seconds: float  # wall time (the median over repetitions)
    key: str  # rows with the same key are compared with hatchlite's row of that key
    p50_ms: float | None = None
    p99_ms: float | None = None
    rates: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Task runs per second: the median over repetitions."""
        if self.rates:
            return statistics.median(self.rates)
        return self.task_runs / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Skip:
    system: str
    reason: str


def repeated(rows: Sequence[Row]) -> Row:
    """One row for the repetitions `rows` of one workload: median seconds, every rate."""
    first = rows[0]
    return Row(
        first.system,
        first.workload,
        first.n,
        first.task_runs,
        statistics.median(r.seconds for r in rows),
        first.key,
        rates=[r.task_runs / r.seconds for r in rows],
    )


def spread(rates: Sequence[float]) -> str:
    """`min-max` of `rates`, or '' for one value."""
    return f"{min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else ""


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


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def rss_bytes() -> int:
    """VmRSS of this process (Linux), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def print_result(payload: dict[str, Any]) -> None:
    """A child process's result: one marked line of JSON on stdout."""
    print(RESULT_MARKER + json.dumps(payload), flush=True)


def run_child(cmd: list[str], timeout: float) -> tuple[dict[str, Any] | None, str]:
    """Run `cmd` (a child that ends with `print_result`); return (its payload, '') or
    (None, why there is none)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f}s"
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            payload: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
            return payload, ""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return None, lines[-1].strip() if lines else f"exit code {proc.returncode}, no output"


def python_cmd(script: str, *args: str) -> list[str]:
    """The command line running bench/`script` with this interpreter."""
    return [sys.executable, str(Path(__file__).resolve().parent / script), *args]


def progress(message: str) -> None:
    """A progress line, as the bench goes."""
    print(f"  {message}", flush=True)
