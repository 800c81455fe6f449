"""Real processes on one database file: SIGKILL a worker mid-run and restart it; two
workers and a trigger-only process sharing the work."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from hatchlite import Hatchet
from tests.conftest import query
from tests.conftest import wait_until_sync as wait_until
from tests.procs.crash_flow import EFFECTS_ENV, Job, build

ROOT = Path(__file__).resolve().parent.parent
RUNS = 200


class Workers:
    def __init__(self, db: str, effects: Path, tmp: Path) -> None:
        self.db = db
        self.tmp = tmp
        self.env = {**os.environ, EFFECTS_ENV: str(effects), "PYTHONPATH": str(ROOT)}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, slots: int = 8) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"worker-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.procs.crash_flow", self.db, str(slots)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)

        def registered() -> bool:
            try:
                return bool(
                    query(
                        self.db,
                        "SELECT 1 FROM workers WHERE pid = ? AND status = 'ACTIVE'",
                        (proc.pid,),
                    )
                )
            except sqlite3.OperationalError:  # the schema is not there yet
                return False

        wait_until(lambda: proc.poll() is not None or registered(), what="worker registration")
        assert proc.poll() is None, (self.tmp / f"worker-{len(self.procs) - 1}.log").read_text()
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp.glob("worker-*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def completed(db: str) -> int:
    return int(query(db, "SELECT count(*) FROM task_runs WHERE status = 'COMPLETED'")[0][0])


def executions(effects: Path) -> dict[tuple[str, str], list[tuple[str, int]]]:
    out: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for line in effects.read_text().splitlines():
        event, run_id, task, pid = line.split()
        out[(run_id, task)].append((event, int(pid)))
    return out


@pytest.fixture
def setup(tmp_path: Path) -> tuple[str, Path, Workers]:
    db = str(tmp_path / "shared.db")
    effects = tmp_path / "effects.log"
    effects.touch()
    return db, effects, Workers(db, effects, tmp_path)


@pytest.mark.timeout(180)
def test_sigkill_worker_mid_run_and_restart(setup: tuple[str, Path, Workers]) -> None:
    db, effects, workers = setup
    client = Hatchet(db=db, auto_worker=False)
    wf = build(client)
    refs = wf.run_many_no_wait([wf.create_bulk_run_item(Job(n=i)) for i in range(RUNS)])
    rng = random.Random(20261121)
    killed: set[int] = set()
    try:
        for _ in range(4):
            proc = workers.start()
            target = min(completed(db) + rng.randint(20, 120), RUNS * 4)
            wait_until(lambda: completed(db) >= target, what="progress before the kill")
            time.sleep(rng.uniform(0, 0.02))  # a random moment, mid-task most likely
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed.add(proc.pid)
        final = workers.start()
        results = [ref.result() for ref in refs]
        final.send_signal(signal.SIGTERM)
        assert final.wait(30) == 0, workers.logs()
    finally:
        workers.stop_all()
        client.close()

    # Every run completed with every task's output, stored exactly once.
    assert [r["d"]["n"] for r in results] == list(range(RUNS))
    assert query(db, "SELECT status, count(*), count(output) FROM task_runs GROUP BY status") == [
        ("COMPLETED", RUNS * 4, RUNS * 4)
    ]
    assert query(db, "SELECT DISTINCT status FROM workflow_runs") == [("COMPLETED",)]
    finisher = dict(
        ((run_id, task), pid)
        for run_id, task, pid in query(
            db,
            "SELECT t.workflow_run_id, t.task_name, w.pid FROM task_runs t "
            "JOIN workers w ON w.id = t.worker_id",
        )
    )
    reruns = 0
    for key, events in executions(effects).items():
        starts = [pid for event, pid in events if event == "start"]
        # The last execution is the one whose output was stored; any earlier one was cut
        # short by a kill, so no task ran again after its completion was committed.
        assert starts[-1] == finisher[key], (key, events)
        assert all(pid in killed for pid in starts[:-1]), (key, events)
        reruns += len(starts) - 1
    assert len(finisher) == RUNS * 4
    reassigned = query(
        db,
        "SELECT count(*) FROM task_attempts a JOIN workers w ON w.id = a.worker_id "
        "WHERE a.status = 'REASSIGNED'",
    )[0][0]
    assert reassigned >= 1, "no kill landed while a task was running"
    assert reruns <= reassigned
    assert "database is locked" not in workers.logs()


@pytest.mark.timeout(120)
def test_two_workers_and_a_trigger_only_process(setup: tuple[str, Path, Workers]) -> None:
    db, effects, workers = setup
    first, second = workers.start(slots=4), workers.start(slots=4)
    client = Hatchet(db=db, auto_worker=False)
    wf = build(client)
    try:
        results = wf.run_many([wf.create_bulk_run_item(Job(n=i)) for i in range(RUNS)])
        for proc in (first, second):
            proc.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0 and second.wait(30) == 0, workers.logs()
    finally:
        workers.stop_all()
        client.close()
    assert [r["d"]["n"] for r in results] == list(range(RUNS))
    runs = executions(effects)
    assert len(runs) == RUNS * 4
    pids: set[int] = set()
    for key, events in runs.items():
        # Exactly one execution of each task: a start and its end, by one process.
        assert [e for e, _ in events] == ["start", "end"], (key, events)
        assert events[0][1] == events[1][1]
        pids.add(events[0][1])
    assert pids == {first.pid, second.pid}, "both workers should have taken work"
    logs = workers.logs()
    assert "locked" not in logs and "Traceback" not in logs, logs
