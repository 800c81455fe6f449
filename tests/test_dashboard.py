"""The dashboard over HTTP (Starlette's TestClient) against a database with a known
history built by real runs: every page, every action, bad input, and the security
rules (token, read-only, cross-site requests, escaping)."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

pytest.importorskip("starlette", reason="the dashboard extra is not installed")

from starlette.applications import Starlette
from starlette.routing import Mount

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx works the same
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

from hatchlite import (
    ConcurrencyExpression,
    ConcurrencyLimitStrategy,
    Context,
    DurableContext,
    EmptyModel,
    EvictionPolicy,
    Hatchet,
    StickyStrategy,
    V1TaskStatus,
)
from hatchlite.dashboard import create_app
from hatchlite.exceptions import DatabaseError
from hatchlite.operate import DatabaseNotFoundError

XSS = "<script>alert(1)</script>"
XSS_ERROR = "<img src=x onerror=alert(2)>"


class Order(BaseModel):
    quantity: int


class Export(BaseModel):
    account: str


@dataclass
class History:
    db: str
    hatchet: Hatchet
    ids: dict[str, str]  # what: run id


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def define(hatchet: Hatchet) -> dict[str, Any]:
    """The workflows of the known history."""
    etl = hatchet.workflow(name="etl")

    @etl.task()
    def extract(input: EmptyModel, ctx: Context) -> dict[str, int]:
        ctx.log("extracting 3 rows")
        return {"rows": 3}

    @etl.task(parents=[extract])
    def clean(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"rows": 2}

    @etl.task(parents=[extract])
    def enrich(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"rows": 3}

    @etl.task(parents=[clean, enrich])
    def load(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"loaded": 5}

    @hatchet.task(name="xss")
    def xss(input: EmptyModel, ctx: Context) -> dict[str, str]:
        ctx.log(f"log line {XSS}")
        return {"html": XSS}

    @hatchet.task(name="broken", retries=1)
    def broken(input: EmptyModel, ctx: Context) -> None:
        raise ValueError(f"bad rows {XSS_ERROR}")

    @hatchet.task(name="typed", input_validator=Order)
    def typed(input: Order, ctx: Context) -> dict[str, int]:
        return {"quantity": input.quantity}

    @hatchet.task(name="slow")
    async def slow(input: EmptyModel, ctx: Context) -> None:
        await asyncio.sleep(60)

    @hatchet.task(name="child")
    def child(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"I am": "the child"}

    @hatchet.task(name="parent")
    async def parent(input: EmptyModel, ctx: Context) -> dict[str, Any]:
        return {"child": await child.aio_run()}

    @hatchet.task(name="on_signup", on_events=["user:created"])
    def on_signup(input: EmptyModel, ctx: Context) -> None:
        return None

    @hatchet.task(name="hourly", on_crons=["0 * * * *"])
    def hourly(input: EmptyModel, ctx: Context) -> None:
        return None

    @hatchet.durable_task(
        name="napper", eviction_policy=EvictionPolicy(ttl=timedelta(milliseconds=50))
    )
    async def napper(input: EmptyModel, ctx: DurableContext) -> None:
        await ctx.aio_sleep_for(timedelta(hours=1))

    return dict(locals())


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    db = str(tmp_path_factory.mktemp("dash") / "hatchlite.db")
    hatchet = Hatchet(db=db)
    wf = define(hatchet)
    ids: dict[str, str] = {}
    ids["etl"] = wf["etl"].run_no_wait(additional_metadata={"team": "data"}).workflow_run_id
    ids["xss"] = wf["xss"].run_no_wait(additional_metadata={"note": XSS}).workflow_run_id
    ids["broken"] = wf["broken"].run_no_wait().workflow_run_id
    ids["parent"] = wf["parent"].run_no_wait().workflow_run_id
    ids["napper"] = wf["napper"].run_no_wait().workflow_run_id
    hatchet.event.push("user:created", {"user": XSS}, options=None)
    wf["hourly"].schedule(datetime.now(UTC) + timedelta(hours=2))
    hatchet.rate_limits.put("external-api", 10, "MINUTE")
    for run_id in (ids["etl"], ids["xss"], ids["broken"], ids["parent"]):
        hatchet.runs.get_run_ref(run_id).result() if run_id != ids["broken"] else None
    wait_for(lambda: hatchet.runs.get_status(ids["broken"]) == V1TaskStatus.FAILED)
    wait_for(lambda: bool(hatchet.runs.get(ids["napper"]).tasks[0].is_evicted), what="eviction")
    yield History(db, hatchet, ids)
    hatchet.close()


@pytest.fixture(scope="module")
def client(history: History) -> TestClient:
    return TestClient(create_app(history.db))


def csrf_of(client: TestClient, path: str = "/") -> str:
    page = client.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "no CSRF field on the page"
    return match.group(1)


def post(client: TestClient, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
    """A same-origin form POST, as the dashboard's own pages make."""
    form = {"csrf_token": csrf_of(client), **(data or {})}
    return client.post(path, data=form, follow_redirects=False, **kw)


# -- the runs page ------------------------------------------------------------------------


def test_runs_page_lists_runs_with_counts_and_live_region(
    client: TestClient, history: History
) -> None:
    page = client.get("/")
    assert page.status_code == 200
    for name in ("etl", "xss", "broken", "parent", "child", "on_signup"):
        assert f">{name}</a>" in page.text
    assert f'data-run-id="{history.ids["etl"]}"' in page.text
    assert re.search(r'data-status="FAILED">failed <b>1</b>', page.text)
    assert 'data-live id="runs-live"' in page.text
    assert "/static/dashboard.js" in page.text


def test_runs_page_filters(client: TestClient, history: History) -> None:
    failed = client.get("/?status=FAILED").text
    assert history.ids["broken"] in failed and history.ids["etl"] not in failed
    etl_id = history.hatchet.workflows.list(workflow_name="etl").rows[0].metadata.id  # type: ignore[index]
    by_workflow = client.get(f"/?workflow={etl_id}").text
    assert history.ids["etl"] in by_workflow and history.ids["xss"] not in by_workflow
    by_meta = client.get("/?meta=team%3Ddata").text
    assert history.ids["etl"] in by_meta and history.ids["broken"] not in by_meta
    assert history.ids["etl"] in client.get("/?range=15m").text
    past = client.get("/?range=custom&since=2000-01-01T00:00&until=2000-01-02T00:00").text
    assert "No runs match." in past


@pytest.mark.parametrize(
    "query",
    [
        "status=DONE",
        "range=9y",
        "meta=novalue",
        "page=x",
        "range=custom&since=yesterday",
        "range=custom&since=2030-01-02T00:00&until=2030-01-01T00:00",
    ],
)
def test_runs_page_bad_filters_are_400(client: TestClient, query: str) -> None:
    response = client.get(f"/?{query}")
    assert response.status_code == 400
    assert "<h1>400</h1>" in response.text


def test_runs_page_pages_through_many_runs(tmp_path: Path) -> None:
    db = str(tmp_path / "many.db")
    hatchet = Hatchet(db=db)
    try:

        @hatchet.task(name="tick")
        def tick(input: EmptyModel, ctx: Context) -> None:
            return None

        refs = tick.run_many_no_wait([tick.create_bulk_run_item() for _ in range(60)])
        for ref in refs:
            ref.result()
        client = TestClient(create_app(db))
        first = client.get("/").text
        assert first.count("data-run-id=") == 50
        assert "page 1 of 2" in first and 'rel="next"' in first
        second = client.get("/?page=2").text
        assert second.count("data-run-id=") == 10 and 'rel="prev"' in second
    finally:
        hatchet.close()


# -- the run page -------------------------------------------------------------------------


def test_run_page_draws_the_dag_with_status_and_duration(
    client: TestClient, history: History
) -> None:
    page = client.get(f"/runs/{history.ids['etl']}").text
    nodes = re.findall(r'class="node st-(\w+)" data-task="(\w+)"', page)
    assert sorted(nodes) == [
        ("completed", "clean"),
        ("completed", "enrich"),
        ("completed", "extract"),
        ("completed", "load"),
    ]
    assert page.count('class="edge"') == 4  # extract->clean, extract->enrich, ->load x2
    assert re.search(r"completed · \d+ ms", page)
    assert "extracting 3 rows" in page  # the log line
    assert "&#34;loaded&#34;: 5" in page  # the output, escaped JSON
    assert "team=data" in page
    for event in ("QUEUED", "STARTED", "FINISHED"):
        assert f"<td>{event}</td>" in page


def test_run_page_shows_the_error_with_its_traceback_and_retries(
    client: TestClient, history: History
) -> None:
    page = client.get(f"/runs/{history.ids['broken']}").text
    assert "Traceback (most recent call last)" in page
    assert "ValueError: bad rows &lt;img src=x onerror=alert(2)&gt;" in page
    assert "(1 retry)" in page
    assert "<td>RETRYING</td>" in page and "<td>FAILED</td>" in page
    assert 'name="replay"' in page and 'name="cancel"' not in page


def test_every_user_string_is_escaped(client: TestClient, history: History) -> None:
    for path in ("/", f"/runs/{history.ids['xss']}", f"/runs/{history.ids['broken']}", "/events"):
        page = client.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
    run_page = client.get(f"/runs/{history.ids['xss']}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in run_page  # output, log, metadata
    assert "log line &lt;script&gt;" in run_page


def test_child_and_parent_links(client: TestClient, history: History) -> None:
    parent = client.get(f"/runs/{history.ids['parent']}").text
    child_id = re.search(r'href="/runs/([^"]+)" class="child-link"', parent)
    assert child_id, "no link to the child run"
    child = client.get(f"/runs/{child_id.group(1)}").text
    assert f'href="/runs/{history.ids["parent"]}" class="parent-link"' in child


def test_unknown_run_is_a_404_page_or_json(client: TestClient) -> None:
    page = client.get("/runs/no-such-run")
    assert page.status_code == 404 and "no workflow run with id" in page.text
    body = client.get("/runs/no-such-run", headers={"Accept": "application/json"})
    assert body.status_code == 404 and "no workflow run" in body.json()["error"]


# -- the other pages ----------------------------------------------------------------------


def test_workers_page(client: TestClient) -> None:
    page = client.get("/workers").text
    assert 'data-worker="hatchlite-implicit" data-status="ACTIVE"' in page
    assert "default: 100" in page
    assert re.search(r"UTC\">(now|\d+(\.\d)? \w+ ago)<", page)


def row_of(page: str, workflow: str) -> str:
    row = page[page.index(f'data-workflow="{workflow}"') :]
    return row[: row.index("</tr>")]


def test_workflows_page(client: TestClient) -> None:
    page = client.get("/workflows").text
    row = row_of(page, "etl")
    for task in ("extract", "clean", "enrich", "load"):
        assert f'<span class="tag">{task}</span>' in row
    assert 'data-parents="extract">after extract<' in row  # clean and enrich
    assert 'data-parents="clean,enrich">after clean, enrich<' in row
    assert 'name="pause"' in row
    assert '<div data-cron="0 * * * *">cron <code>0 * * * *</code>' in row_of(page, "hourly")
    signup = row_of(page, "on_signup")
    assert '<div data-event-trigger="user:created">on event <code>user:created</code>' in signup
    assert 'data-task="napper"' in row_of(page, "napper") and "durable" in row_of(page, "napper")
    assert "run on demand" in row
    assert 'id="trigger-form"' in page


def test_workflows_page_shows_triggers_and_concurrency_limits(tmp_path: Path) -> None:
    db = str(tmp_path / "declared.db")
    hatchet = Hatchet(db=db)
    try:
        billing = hatchet.workflow(
            name="billing",
            input_validator=Export,
            on_events=["invoice:paid", "invoice:refunded"],
            on_crons=["15 4 * * *"],
            cron_input={"account": "house"},
            sticky=StickyStrategy.SOFT,
            default_priority=2,
            concurrency=ConcurrencyExpression(
                expression="input.account",
                max_runs=3,
                limit_strategy=ConcurrencyLimitStrategy.CANCEL_IN_PROGRESS,
            ),
        )

        @billing.task(
            concurrency=ConcurrencyExpression(
                expression="'charges'",
                max_runs=1,
                limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
            )
        )
        def charge(input: Export, ctx: Context) -> None:
            return None

        @billing.task(parents=[charge])
        def receipt(input: Export, ctx: Context) -> None:
            return None

        assert billing.id  # registers it
        page = TestClient(create_app(db)).get("/workflows").text
        row = row_of(page, "billing")
        assert 'data-task="charge"' in row and 'data-parents="charge">after charge<' in row
        assert '<div data-event-trigger="invoice:paid">' in row
        assert '<div data-event-trigger="invoice:refunded">' in row
        assert '<div data-cron="15 4 * * *">cron <code>15 4 * * *</code>' in row
        workflow_limit = re.search(r'data-concurrency="workflow">(.*?)</div>', row, re.S)
        assert workflow_limit, row
        assert "<code>input.account</code> · max 3" in workflow_limit.group(1)
        assert "CANCEL_IN_PROGRESS" in workflow_limit.group(1)
        task_limit = re.search(r'data-concurrency="task:charge">(.*?)</div>', row, re.S)
        assert task_limit, row
        assert "<code>&#39;charges&#39;</code> · max 1" in task_limit.group(1)
        assert "GROUP_ROUND_ROBIN" in task_limit.group(1)
        assert 'data-sticky="SOFT"' in row and 'data-priority="2"' in row
        assert 'data-paused="no"' in row
    finally:
        hatchet.close()


def test_schedules_page_shows_next_fire_times(client: TestClient) -> None:
    page = client.get("/schedules").text
    now = datetime.now(UTC)
    next_hour = (now + timedelta(hours=1)).strftime("%Y-%m-%d %H:00:00")
    assert next_hour in page
    assert "not fired" in page and "(in 1 h" in page


def test_events_page_shows_payload_and_triggered_runs(client: TestClient) -> None:
    page = client.get("/events").text
    assert "user:created" in page
    assert "&#34;user&#34;: &#34;&lt;script&gt;" in page
    assert 'class="triggered"' in page
    assert client.get("/events?key=nothing").text.count("data-event=") == 0


def test_rate_limits_page(client: TestClient) -> None:
    page = client.get("/rate-limits").text
    assert 'data-limit="external-api"' in page
    assert "<td>10</td>" in page


def test_queues_page_shows_what_concurrency_limits_hold_back(tmp_path: Path) -> None:
    db = str(tmp_path / "held.db")
    hatchet = Hatchet(db=db)
    release = threading.Event()
    try:

        @hatchet.task(
            name="export",
            input_validator=Export,
            concurrency=ConcurrencyExpression(
                expression="input.account",
                max_runs=1,
                limit_strategy=ConcurrencyLimitStrategy.GROUP_ROUND_ROBIN,
            ),
        )
        async def export(input: Export, ctx: Context) -> None:
            await asyncio.to_thread(release.wait, 60)

        def started() -> int:
            runs = hatchet.runs.list(workflow_ids=[export.id], limit=50).rows
            return sum(r.status == V1TaskStatus.RUNNING for r in runs)

        def waiting() -> dict[str, int]:
            stat = hatchet.metrics.get_task_stats().get("export")
            held = (stat.queued.concurrency if stat and stat.queued else None) or []
            return {k: n for limit in held for k, n in (limit.keys or {}).items()}

        assert export.id  # registers it, creating the database
        client = TestClient(create_app(db))
        assert "No task run waits for a concurrency limit." in client.get("/rate-limits").text
        refs = [export.run_no_wait(Export(account="acme")) for _ in range(3)]
        refs.append(export.run_no_wait(Export(account="globex")))
        wait_for(lambda: started() == 2, what="one run per account started")
        wait_for(lambda: waiting() == {"acme": 2}, what="two acme runs held back")
        page = client.get("/rate-limits").text
        row = re.search(r'<tr data-task="export" data-key="acme">(.*?)</tr>', page, re.S)
        assert row, page
        assert "<code>input.account</code>" in row.group(1)
        assert "GROUP_ROUND_ROBIN" in row.group(1)
        assert '<td class="waiting">2</td>' in row.group(1)
        assert 'data-key="globex"' not in page  # running, not waiting
        release.set()
        for ref in refs:
            ref.result()
        assert "No task run waits for a concurrency limit." in client.get("/rate-limits").text
    finally:
        release.set()
        hatchet.close()


def test_static_assets_are_served(client: TestClient) -> None:
    js = client.get("/static/dashboard.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert client.get("/static/dashboard.css").status_code == 200


# -- actions ------------------------------------------------------------------------------


def test_trigger_creates_a_run_and_redirects_to_it(client: TestClient, history: History) -> None:
    response = post(
        client, "/trigger", {"workflow": "typed", "input": '{"quantity": 4}', "metadata": ""}
    )
    assert response.status_code == 303
    run_id = response.headers["location"].rsplit("/", 1)[1]
    assert history.hatchet.runs.get_run_ref(run_id).result() == {"typed": {"quantity": 4}}


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"workflow": "typed", "input": "{not json"}, 400, "not valid JSON"),
        ({"workflow": "typed", "input": "[1, 2]"}, 400, "must be a JSON object"),
        ({"workflow": "typed", "input": '{"quantity": "many"}'}, 400, "does not validate"),
        ({"workflow": "typed", "input": "{}", "metadata": "3"}, 400, "must be a JSON object"),
        ({"workflow": "nope", "input": "{}"}, 404, "not registered"),
        ({"workflow": "", "input": "{}"}, 400, "choose a workflow"),
    ],
)
def test_bad_trigger_input_changes_nothing(
    client: TestClient, history: History, form: dict[str, str], status: int, message: str
) -> None:
    before = len(history.hatchet.runs.list(limit=500).rows)
    response = post(client, "/trigger", form)
    assert response.status_code == status
    assert message in response.text
    assert len(history.hatchet.runs.list(limit=500).rows) == before


def test_cancel_a_running_run(client: TestClient, history: History) -> None:
    run_id = history.hatchet.runs.create("slow", {}).run.metadata.id
    wait_for(lambda: history.hatchet.runs.get_status(run_id) == V1TaskStatus.RUNNING)
    assert 'name="cancel"' in client.get(f"/runs/{run_id}").text
    response = post(client, f"/runs/{run_id}/cancel")
    assert response.status_code == 303 and response.headers["location"] == f"/runs/{run_id}"
    wait_for(lambda: history.hatchet.runs.get_status(run_id) == V1TaskStatus.CANCELLED)
    assert 'data-status="CANCELLED"' in client.get(f"/runs/{run_id}").text


def test_replay_a_failed_run(client: TestClient, history: History) -> None:
    run_id = history.hatchet.runs.create("broken", {}).run.metadata.id
    wait_for(lambda: history.hatchet.runs.get_status(run_id) == V1TaskStatus.FAILED)
    before = history.hatchet.runs.get(run_id).tasks[0].retry_count or 0
    assert post(client, f"/runs/{run_id}/replay").status_code == 303
    wait_for(lambda: (history.hatchet.runs.get(run_id).tasks[0].retry_count or 0) > before)
    assert post(client, "/runs/no-such-run/replay").status_code == 404
    assert post(client, "/runs/no-such-run/cancel").status_code == 404


def test_pause_and_unpause_a_workflow(client: TestClient, history: History) -> None:
    workflow = history.hatchet.workflows.list(workflow_name="hourly").rows[0]  # type: ignore[index]
    wid = workflow.metadata.id
    assert post(client, f"/workflows/{wid}/pause", {"queue_ttl_hours": "2"}).status_code == 303
    assert history.hatchet.workflows.get(wid).is_paused
    assert 'data-workflow="hourly" data-paused="yes"' in client.get("/workflows").text
    assert post(client, f"/workflows/{wid}/pause", {"queue_ttl_hours": "-1"}).status_code == 400
    assert post(client, f"/workflows/{wid}/unpause").status_code == 303
    assert not history.hatchet.workflows.get(wid).is_paused
    assert post(client, "/workflows/nope/unpause").status_code == 404


def test_run_page_shows_a_durable_tasks_history(client: TestClient, history: History) -> None:
    page = client.get(f"/runs/{history.ids['napper']}").text
    assert "Durable history" in page and "sleep:1h-0" in page and "PENDING" in page


def test_restore_an_evicted_task(client: TestClient, history: History) -> None:
    run_id = history.ids["napper"]
    page = client.get(f"/runs/{run_id}").text
    assert 'name="restore"' in page and "evicted" in page
    task_id = history.hatchet.runs.get(run_id).tasks[0].task_external_id
    response = post(client, f"/tasks/{task_id}/restore")
    assert response.status_code == 303 and response.headers["location"] == f"/runs/{run_id}"
    events = [e.event_type.value for e in history.hatchet.runs.get(run_id).task_events]
    assert "DURABLE_RESTORING" in events or not history.hatchet.runs.get(run_id).tasks[0].is_evicted
    done = history.ids["etl"]
    assert post(client, f"/tasks/{done}/restore").status_code in (400, 404)
    assert post(client, "/tasks/no-such-task/restore").status_code == 404


def test_purge_old_runs(tmp_path: Path) -> None:
    db = str(tmp_path / "purge.db")
    hatchet = Hatchet(db=db)
    try:

        @hatchet.task(name="once")
        def once(input: EmptyModel, ctx: Context) -> None:
            return None

        once.run()
        client = TestClient(create_app(db))
        assert post(client, "/purge", {"older_than_days": "x"}).status_code == 400
        assert (
            post(client, "/purge", {"older_than_days": "1", "status": "RUNNING"}).status_code == 400
        )
        assert len(hatchet.runs.list().rows) == 1
        response = post(client, "/purge", {"older_than_days": "0", "status": "COMPLETED"})
        assert response.status_code == 303
        assert "Purged+1+runs" in response.headers["location"]
        assert hatchet.runs.list().rows == []
        assert "Purged 1 runs" in client.get(response.headers["location"]).text
    finally:
        hatchet.close()


# -- security -----------------------------------------------------------------------------


def test_cross_site_posts_are_refused(client: TestClient, history: History) -> None:
    before = len(history.hatchet.runs.list(limit=500).rows)
    form = {"workflow": "typed", "input": '{"quantity": 1}'}
    evil = {"Origin": "https://evil.example"}
    assert post(client, "/trigger", form, headers=evil).status_code == 403
    referer = {"Referer": "https://evil.example/page"}
    assert post(client, "/trigger", form, headers=referer).status_code == 403
    assert post(client, "/trigger", form, headers={"Origin": "null"}).status_code == 403
    # The right origin without the session's form token, or with another one: refused.
    same = {"Origin": "http://testserver"}
    assert client.post("/trigger", data=form, headers=same).status_code == 403
    wrong = {**form, "csrf_token": "guessed"}
    assert client.post("/trigger", data=wrong, headers=same).status_code == 403
    stranger = TestClient(client.app)  # no cookie: a form token from elsewhere fails
    stolen = {**form, "csrf_token": csrf_of(client)}
    assert stranger.post("/trigger", data=stolen).status_code == 403
    assert len(history.hatchet.runs.list(limit=500).rows) == before
    assert post(client, "/trigger", form, headers=same).status_code == 303


def test_actions_are_get_proof(client: TestClient, history: History) -> None:
    assert client.get(f"/runs/{history.ids['etl']}/replay").status_code == 405


def test_read_only_refuses_every_action(history: History) -> None:
    client = TestClient(create_app(history.db, read_only=True))
    page = client.get(f"/runs/{history.ids['broken']}").text
    assert 'name="replay"' not in page and "read-only" in page
    assert 'id="trigger-form"' not in client.get("/").text
    csrf = client.cookies.get("hatchlite_csrf") or ""
    for path in (
        "/trigger",
        f"/runs/{history.ids['broken']}/replay",
        f"/runs/{history.ids['broken']}/cancel",
        "/tasks/x/restore",
        "/workflows/x/pause",
        "/workflows/x/unpause",
        "/purge",
    ):
        response = client.post(path, data={"csrf_token": csrf, "workflow": "typed"})
        assert response.status_code == 403, path
    assert history.hatchet.runs.get_status(history.ids["broken"]) == V1TaskStatus.FAILED


def test_token_is_required_for_every_request(history: History) -> None:
    app = create_app(history.db, token="s3cret")
    anonymous = TestClient(app)
    for path in ("/", "/workers", "/static/dashboard.css", f"/runs/{history.ids['etl']}"):
        assert anonymous.get(path).status_code == 401, path
    assert anonymous.get("/?token=wrong").status_code == 401
    assert anonymous.post("/trigger", data={}).status_code == 401
    bearer = anonymous.get("/workers", headers={"Authorization": "Bearer s3cret"})
    assert bearer.status_code == 200
    browser = TestClient(app)
    first = browser.get("/workers?token=s3cret&x=1", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/workers?x=1"
    assert browser.get("/").status_code == 200  # the cookie carries it from now on
    assert (
        post(browser, "/trigger", {"workflow": "typed", "input": '{"quantity": 2}'}).status_code
        == 303
    )


def test_mounted_under_a_prefix(history: History) -> None:
    outer = Starlette(routes=[Mount("/ops/hatchlite", app=create_app(history.db))])
    client = TestClient(outer)
    page = client.get("/ops/hatchlite/").text
    assert f'href="/ops/hatchlite/runs/{history.ids["etl"]}"' in page
    assert 'href="/ops/hatchlite/static/dashboard.css"' in page
    assert client.get(f"/ops/hatchlite/runs/{history.ids['etl']}").status_code == 200
    assert client.cookies.get("hatchlite_csrf", path="/ops/hatchlite/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    ok = client.post(
        "/ops/hatchlite/trigger",
        data={"csrf_token": token.group(1), "workflow": "typed", "input": '{"quantity": 1}'},
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"].startswith("/ops/hatchlite/runs/")


# -- opening and serving --------------------------------------------------------------------


def test_missing_or_foreign_database(tmp_path: Path) -> None:
    with pytest.raises(DatabaseNotFoundError):
        create_app(str(tmp_path / "missing.db"))
    assert not (tmp_path / "missing.db").exists()
    foreign = tmp_path / "foreign.db"
    foreign.write_bytes(b"not a database at all" * 100)
    with pytest.raises(DatabaseError):
        create_app(str(foreign))


def test_without_the_extra_the_error_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, history: History
) -> None:
    monkeypatch.delitem(sys.modules, "hatchlite.dashboard.app", raising=False)
    monkeypatch.setitem(sys.modules, "starlette.applications", None)
    with pytest.raises(ImportError, match=r"pip install 'hatchlite\[dashboard\]'"):
        create_app(history.db)


def test_serve_requires_a_token_off_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], history: History
) -> None:
    import uvicorn

    from hatchlite.dashboard import app as app_module

    served: list[tuple[Any, str, int]] = []
    monkeypatch.setattr(
        uvicorn, "run", lambda app, host, port, **kw: served.append((app, host, port))
    )
    monkeypatch.setattr(app_module.Dashboard, "close", lambda self: None)  # shared engine
    from hatchlite.dashboard import serve

    serve(history.db, host="0.0.0.0", port=8123)
    out = capsys.readouterr().out
    token = re.search(r"http://0\.0\.0\.0:8123/\?token=(\S+)", out)
    assert token, out
    app = served[-1][0]
    assert app.state.dashboard.token == token.group(1)
    assert TestClient(app).get("/").status_code == 401
    serve(history.db)
    assert "http://127.0.0.1:8800/\n" in capsys.readouterr().out
    assert served[-1][0].state.dashboard.token is None
    serve(history.db, host="::1", port=9000, token="given")
    assert "http://[::1]:9000/?token=given" in capsys.readouterr().out
