"""Huey and DBOS Transact, the peers of bench/throughput.py, each measured in a child
process of that script (so a peer that is missing, crashes or hangs is reported as
skipped and the rest goes on).

    python bench/throughput_peers.py NAME --n N --latency-n N --reps R    # the child

The child measures in-process exactly as throughput.py measures hatchlite: no-op
sync tasks on a fresh SQLite file, N runs triggered as fast as the peer's API allows,
the clock stopped when the body of the last task returns (results are fetched
afterwards, untimed, which favours the peers slightly); latency: runs triggered one at
a time, `time.perf_counter()` at the trigger call carried to the task body. Throughput
workloads are repeated R times (rows carry each repetition's rate), latency once. It
prints its rows as one JSON line (benchkit.print_result).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchkit import Row, Skip, check, latency_row, print_result, python_cmd, repeated, run_child

HUEY_WORKERS = 4  # Huey consumer threads
PEER_TIMEOUT = 300.0  # seconds before a peer's child process is given up on
WAIT_TIMEOUT = 120.0  # seconds a peer workload may take before it counts as hung


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


def run_workloads(
    peer: str,
    workloads: Sequence[Callable[[], Row]],
    latency: Callable[[], Row],
    reps: int,
    errors: list[str],
) -> list[Row]:
    """The throughput `workloads` `reps` times, alternating, one row each with every
    repetition's rate; then `latency` once. A failing workload is noted in `errors`."""
    done: dict[str, list[Row]] = {w.__name__: [] for w in workloads}
    failed: set[str] = set()
    for _ in range(reps):
        for workload in workloads:
            if workload.__name__ in failed:
                continue
            try:
                done[workload.__name__].append(workload())
            except Exception as exc:
                failed.add(workload.__name__)
                errors.append(f"{peer} {workload.__name__}: {type(exc).__name__}: {exc}")
    rows = [repeated(reps_rows) for reps_rows in done.values() if reps_rows]
    try:
        rows.append(latency())
    except Exception as exc:
        errors.append(f"{peer} latency: {type(exc).__name__}: {exc}")
    return rows


def huey_suite(tmp: Path, n: int, latency_n: int, reps: int, errors: list[str]) -> list[Row]:
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

        rows = run_workloads("huey", (single, chain), latency, reps, errors)
    finally:
        consumer.stop(graceful=True)
    return rows


def dbos_suite(tmp: Path, n: int, latency_n: int, reps: int, errors: list[str]) -> list[Row]:
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

        rows = run_workloads("dbos", (single, queued, chain), latency, reps, errors)
    finally:
        DBOS.destroy()
    return rows


PEERS: dict[str, tuple[str, str, Callable[[Path, int, int, int, list[str]], list[Row]]]] = {
    # name: (module to import, pip package, suite)
    "huey": ("huey", "huey", huey_suite),
    "dbos": ("dbos", "dbos", dbos_suite),
}


def run_peer(name: str, n: int, latency_n: int, reps: int) -> tuple[list[Row], list[Skip]]:
    """Run peer `name`'s suite in a child process; its rows, and skips for what failed."""
    module, package, _ = PEERS[name]
    if importlib.util.find_spec(module) is None:
        return [], [Skip(name, f"not installed (pip install {package})")]
    print(
        f"  running {name} (N={n} x {reps} reps, latency N={latency_n}) in a child process ...",
        flush=True,
    )
    args = [name, "--n", str(n), "--latency-n", str(latency_n), "--reps", str(reps)]
    payload, reason = run_child(python_cmd("throughput_peers.py", *args), PEER_TIMEOUT)
    if payload is None:
        return [], [Skip(name, f"failed: {reason}")]
    rows = [Row(**r) for r in payload["rows"]]
    return rows, [Skip(name, f"workload failed: {e}") for e in payload["errors"]]


def main(argv: Sequence[str] | None = None) -> int:
    """Child-process entry: run one peer's suite and print its rows as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("name", choices=sorted(PEERS))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--latency-n", type=int, required=True)
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args(argv)
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix=f"bench-{args.name}-") as tmp:
        suite = PEERS[args.name][2]
        rows = suite(Path(tmp), args.n, args.latency_n, args.reps, errors)
    print_result({"rows": [asdict(r) for r in rows], "errors": errors})
    return 0


if __name__ == "__main__":
    sys.exit(main())
