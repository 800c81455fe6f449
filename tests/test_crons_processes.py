"""Crons across processes, in real time: an every-second cron fired by two worker
processes on one file, and by a worker killed with SIGKILL and started again."""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hatchlite import Hatchet
from tests.conftest import query, spawn_worker, wait_until_sync, worker_up


def fired(db: str) -> list[str]:
    rows = query(
        db,
        """SELECT json_extract(additional_metadata, '$.hatchet__cron_scheduled_at')
           FROM workflow_runs WHERE workflow_name = 'heartbeat' ORDER BY seq""",
    )
    return [str(row[0]) for row in rows]


def assert_each_second_once(ticks: list[str]) -> None:
    """Every tick once, and no second missing between the first and the last."""
    assert len(ticks) == len(set(ticks)), f"a tick fired twice: {ticks}"
    seconds = sorted(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in ticks)
    assert seconds == [seconds[0] + i for i in range(len(seconds))], f"a tick was lost: {ticks}"


def all_completed(db: str) -> bool:
    return query(db, "SELECT count(*) FROM workflow_runs WHERE status != 'COMPLETED'") == [(0,)]


def start(db: str, log: Path) -> subprocess.Popen[bytes]:
    proc = spawn_worker("cron_worker", [db], log)
    wait_until_sync(lambda: worker_up(db, proc), what="the cron worker to start")
    assert proc.poll() is None, log.read_text()
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)


def test_two_worker_processes_never_fire_a_tick_twice(tmp_path: Path) -> None:
    db = str(tmp_path / "two.db")
    first = start(db, tmp_path / "first.log")
    second = start(db, tmp_path / "second.log")
    try:
        wait_until_sync(lambda: len(fired(db)) >= 5, timeout=30, what="five ticks")
    finally:
        stop(first)
        stop(second)
    assert_each_second_once(fired(db))
    pids = query(db, "SELECT count(DISTINCT pid) FROM workers WHERE name = 'cron-worker'")
    assert pids == [(2,)]


def test_a_worker_killed_and_restarted_loses_and_duplicates_no_tick(tmp_path: Path) -> None:
    db = str(tmp_path / "kill.db")
    worker = start(db, tmp_path / "before.log")
    try:
        wait_until_sync(lambda: len(fired(db)) >= 3, timeout=30, what="three ticks")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        at_kill = len(fired(db))
        worker = start(db, tmp_path / "after.log")
        wait_until_sync(lambda: len(fired(db)) >= at_kill + 3, timeout=30, what="ticks after")
        wait_until_sync(lambda: all_completed(db), timeout=30, what="every run to complete")
    finally:
        stop(worker)
    ticks = fired(db)
    assert_each_second_once(ticks)
    outputs = query(db, "SELECT output FROM task_runs WHERE workflow_name = 'heartbeat'")
    assert sorted(json.loads(str(o))["tick"] for (o,) in outputs) == sorted(ticks)


def test_crons_and_schedules_made_elsewhere_survive_every_process_stopping(
    tmp_path: Path,
) -> None:
    """Another process creates a cron and a schedule while no worker runs; the worker
    started afterwards fires the schedule once and the cron on every tick, and after a
    SIGKILL and a restart the cron goes on."""
    db = str(tmp_path / "elsewhere.db")
    stop(start(db, tmp_path / "register.log"))  # the workflow is registered, then down
    client = Hatchet(db=db, auto_worker=False)
    try:
        soon = datetime.now(UTC) + timedelta(seconds=1)
        scheduled = client.scheduled.create("heartbeat", soon, {}, {"kind": "once"})
        client.cron.create("heartbeat", "every-2s", "*/2 * * * * *", {}, {"kind": "api"})
    finally:
        client.close()

    def api_ticks() -> list[str]:
        return [m for m, kind in kinds(db) if kind == "api"]

    worker = start(db, tmp_path / "first.log")
    try:
        wait_until_sync(lambda: len(api_ticks()) >= 2, timeout=30, what="the API cron")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        fired_before = len(api_ticks())
        worker = start(db, tmp_path / "second.log")
        wait_until_sync(lambda: len(api_ticks()) >= fired_before + 2, timeout=30, what="more")
    finally:
        stop(worker)
    assert [kind for _, kind in kinds(db)].count("once") == 1
    ticks = api_ticks()
    assert len(ticks) == len(set(ticks))
    row = query(db, "SELECT run_id FROM scheduled_runs WHERE id = ?", (scheduled.metadata.id,))
    assert row[0][0] is not None


def kinds(db: str) -> list[tuple[str, str]]:
    """(cron tick or "", the `kind` metadata) of each run, oldest first."""
    rows = query(
        db,
        """SELECT coalesce(json_extract(additional_metadata, '$.hatchet__cron_scheduled_at'),
                           ''),
                  coalesce(json_extract(additional_metadata, '$.kind'), '')
           FROM workflow_runs ORDER BY seq""",
    )
    return [(str(tick), str(kind)) for tick, kind in rows]
