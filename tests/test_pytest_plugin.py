"""The pytest plugin (`hatchet_test`), run the way a user's suite runs it: a workflows
module defined on a module-level `Hatchet()` and a test module using the fixture are
written to a folder, and `python -m pytest` runs them in a subprocess."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

WORKFLOWS = '''
"""The application's workflows, defined at import time on its own client."""

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from hatchlite import Context, DurableContext, EmptyModel, Hatchet, UserEventCondition

hatchet = Hatchet()  # the application's database: hatchlite.db (never opened by the tests)


class Order(BaseModel):
    items: list[int]


class Note(BaseModel):
    text: str


orders = hatchet.workflow(name="orders", input_validator=Order)


@orders.task()
def total(input: Order, ctx: Context) -> dict[str, int]:
    return {"total": sum(input.items)}


@orders.task(parents=[total])
async def receipt(input: Order, ctx: Context) -> dict[str, str]:
    return {"line": f"paid {ctx.task_output(total)['total']}"}


@hatchet.durable_task(name="approval")
async def approval(input: EmptyModel, ctx: DurableContext) -> dict[str, Any]:
    await ctx.aio_sleep_for(timedelta(days=7))
    await ctx.aio_wait_for("ev", UserEventCondition(event_key="ev"))
    return {"approved_at": (await ctx.aio_now()).isoformat()}


@hatchet.task(name="echo")
def echo(input: Note, ctx: Context) -> dict[str, str]:
    return {"echo": input.text}


@hatchet.task(name="nightly", retries=1, backoff_factor=3600)
def nightly(input: EmptyModel, ctx: Context) -> dict[str, int]:
    if ctx.retry_count == 0:
        raise ConnectionError("upstream is down")
    return {"attempt": ctx.attempt_number}
'''

TESTS = '''
"""The application's tests: no pytest configuration, so asyncio's strict mode (async
tests are marked)."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from hatchlite import V1TaskStatus
from hatchlite.testing import HatchetTest
from shop_workflows import Note, Order, approval, echo, hatchet, nightly, orders

START = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.asyncio
async def test_a_dag_returns_its_result(hatchet_test: HatchetTest) -> None:
    hatchet_test.serve(orders)
    result = await orders.aio_run(Order(items=[1, 2, 3]))
    assert result == {"total": {"total": 6}, "receipt": {"line": "paid 6"}}


@pytest.mark.asyncio
async def test_a_week_long_wait_then_an_event_in_well_under_a_second(
    hatchet_test: HatchetTest,
) -> None:
    started, before = time.monotonic(), hatchet_test.clock.now()
    await hatchet_test.aio_serve(approval)
    ref = await approval.aio_run_no_wait()
    await hatchet_test.aio_run_until_idle()  # the week is skipped; now it waits for "ev"
    assert hatchet_test.clock.now() - before >= timedelta(days=7)
    [run] = await hatchet_test.aio_runs()
    assert run.status == V1TaskStatus.RUNNING
    await hatchet_test.aio_push_event("ev", {"ok": True})
    result = await ref.aio_result()
    assert datetime.fromisoformat(result["approved_at"]) - before >= timedelta(days=7)
    assert time.monotonic() - started < 1.0


@pytest.mark.asyncio
async def test_first_sees_only_its_own_run(hatchet_test: HatchetTest) -> None:
    hatchet_test.serve(echo)
    ref = await echo.aio_run_no_wait(Note(text="first"))
    assert await ref.aio_result() == {"echo": "first"}
    runs = await hatchet_test.aio_runs()
    assert [r.workflow_run_external_id for r in runs] == [ref.workflow_run_id]


def test_second_sees_only_its_own_run(hatchet_test: HatchetTest) -> None:
    hatchet_test.serve(echo)
    ref = echo.run_no_wait(Note(text="second"))
    assert ref.result() == {"echo": "second"}
    assert [r.workflow_run_external_id for r in hatchet_test.runs()] == [ref.workflow_run_id]
    assert hatchet_test.get(ref.workflow_run_id).run.status == V1TaskStatus.COMPLETED


def test_sync_with_everything_the_client_defines(hatchet_test: HatchetTest) -> None:
    hatchet_test.serve(hatchet)
    assert echo.run(Note(text="sync")) == {"echo": "sync"}
    assert nightly.run() == {"attempt": 2}  # an hour of backoff, skipped
    assert hatchet.db == hatchet_test.db  # bound for this test only


@pytest.mark.hatchlite(auto_advance=False, start=START)
def test_a_manual_clock(hatchet_test: HatchetTest) -> None:
    hatchet_test.serve(nightly)
    ref = nightly.run_no_wait()
    assert hatchet_test.advance(timedelta(minutes=30)) == START + timedelta(minutes=30)
    assert [r.status for r in hatchet_test.runs()] == [V1TaskStatus.RUNNING]  # backing off
    hatchet_test.run_until_idle()  # moves the clock to the retry
    assert hatchet_test.clock.now() == START + timedelta(hours=1)
    assert ref.result() == {"attempt": 2}


@pytest.mark.hatchlite(db="memory")
def test_an_in_memory_database(hatchet_test: HatchetTest) -> None:
    assert hatchet_test.db == ":memory:"
    hatchet_test.serve(echo)
    assert echo.run(Note(text="memory")) == {"echo": "memory"}


def test_clients_are_unbound_and_threads_gone_after_a_test(tmp_path) -> None:
    assert hatchet.db == "hatchlite.db" and hatchet._own_engine is None
    db = str(tmp_path / "own.db")
    with HatchetTest(db) as kit:  # the fixture's harness, without the fixture
        kit.serve(echo)
        assert echo.run(Note(text="x")) == {"echo": "x"}
        assert any(db in t.name for t in threading.enumerate())
    assert not [t.name for t in threading.enumerate() if db in t.name]
    assert hatchet._own_engine is None
'''

PLAIN = """
import sys
import threading


def test_plain() -> None:
    assert "hatchlite.testing" not in sys.modules
    assert not [t for t in threading.enumerate() if t.name.startswith("hatchlite")]
"""


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(folder)])}
    env.pop("HATCHLITE_DB", None)
    env.pop("HATCHLITE_AUTO_WORKER", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def summary(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stdout.splitlines() if re.search(r" in [\d.]+s", line)]
    assert lines, proc.stdout + proc.stderr
    return lines[-1]


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "shop_workflows.py").write_text(WORKFLOWS)
    (folder / "test_shop.py").write_text(TESTS)
    return folder


def test_the_plugin_is_an_installed_entry_point() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("hatchlite") == "hatchlite_pytest", (
        "the pytest11 entry point is missing: reinstall with `pip install -e .`"
    )


def test_a_users_suite_runs_isolated_on_test_databases(suite: Path) -> None:
    proc = run_pytest(suite, "--basetemp", str(suite.parent / "base"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.match(r"8 passed in ", summary(proc)), proc.stdout
    assert not (suite / "hatchlite.db").exists()  # the application's own database


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="needs pytest-xdist")
def test_a_users_suite_runs_in_parallel_with_xdist(suite: Path) -> None:
    proc = run_pytest(suite, "-n", "2", "--basetemp", str(suite.parent / "base"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "8 passed" in summary(proc)
    assert not (suite / "hatchlite.db").exists()


def test_settings_from_the_ini_file_and_a_bad_marker(tmp_path: Path) -> None:
    (tmp_path / "test_settings.py").write_text(
        "import pytest\n\n\n"
        "def test_ini(hatchet_test):\n"
        "    assert hatchet_test.db == ':memory:' and not hatchet_test.clock.auto_advance\n\n\n"
        "@pytest.mark.hatchlite(dbs='memory')\n"
        "def test_typo(hatchet_test):\n"
        "    pass\n"
    )
    proc = run_pytest(tmp_path, "-o", "hatchlite_db=memory", "-o", "hatchlite_auto_advance=false")
    assert "1 passed, 1 error" in summary(proc), proc.stdout
    assert "unknown setting(s) ['dbs']" in proc.stdout


def test_a_plain_suite_is_untouched(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text(PLAIN)
    # Loading the plugin imports nothing of hatchlite.
    (tmp_path / "conftest.py").write_text(
        "import sys\n\n\ndef pytest_sessionfinish(session):\n"
        "    assert 'hatchlite' not in sys.modules, 'the plugin imported hatchlite'\n"
    )
    # pytest-asyncio warns about this option when it is unset; -W error makes that fatal.
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    with_plugin = run_pytest(tmp_path, "-W", "error")
    assert with_plugin.returncode == 0, with_plugin.stdout + with_plugin.stderr
    assert re.match(r"1 passed in ", summary(with_plugin))
    assert not list(tmp_path.glob("hatchlite*"))  # no database was made
    # The plugin was loaded all the same: its fixture is there for tests that ask.
    fixtures = run_pytest(tmp_path, "--fixtures")
    assert "hatchet_test" in fixtures.stdout


def test_a_task_thread_outliving_its_test_reaches_no_other_database(tmp_path: Path) -> None:
    """A `def` task still running when its test ends, which then calls the application's
    client, gets an error: its call goes to its own, closed engine, never to the next
    test's database (nor the application's)."""
    from hatchlite import Context, EmptyModel, Hatchet
    from hatchlite.testing import HatchetTest

    app = Hatchet(db=str(tmp_path / "app.db"), auto_worker=False)
    release = threading.Event()
    outcome: list[str] = []

    @app.task(name="lingers")
    def lingers(input: EmptyModel, ctx: Context) -> None:
        release.wait(10)
        try:
            app.event.push("leaked", {})
        except Exception as exc:
            outcome.append(type(exc).__name__)
        else:
            outcome.append("pushed")

    with HatchetTest(str(tmp_path / "one.db")) as first:
        first.serve(app)
        lingers.run_no_wait()
        deadline = time.monotonic() + 5
        while not [r for r in first.runs() if r.status == "RUNNING"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    with HatchetTest(str(tmp_path / "two.db")) as second:
        second.serve(app)
        release.set()
        deadline = time.monotonic() + 5
        while not outcome:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert second.runs() == []
        assert second.client.event.list().rows == []
    assert outcome == ["EngineClosedError"]
    assert not (tmp_path / "app.db").exists()
