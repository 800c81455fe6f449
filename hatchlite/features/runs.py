"""`hatchet.runs`: read, list, create, cancel, replay, stream and purge runs.

Every call is written once, as a coroutine that runs on the engine loop; the `aio_`
form awaits it and the sync form blocks on it (thin bridges).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hatchlite.exceptions import RunNotFoundError
from hatchlite.features import summaries as views
from hatchlite.features.rest import RestClient
from hatchlite.models import (
    BulkCancelReplayOpts,
    DurableHistory,
    DurableHistoryEntry,
    RunFilter,
    TaskRunDetail,
    V1BranchDurableTaskResponse,
    V1RestoreTaskResponse,
    V1TaskSummary,
    V1TaskSummaryList,
    V1WorkflowRunDetails,
    WorkflowRunDetail,
)
from hatchlite.scheduler.runtime import RUNTIME
from hatchlite.store.views import RunBundle, RunQuery
from hatchlite.types import JSONMap, RunStatus, V1TaskStatus

if TYPE_CHECKING:
    from hatchlite.client import Hatchet
    from hatchlite.refs import WorkflowRunRef
    from hatchlite.scheduler.engine import Engine

__all__ = ["BulkCancelReplayOpts", "RunFilter", "RunsClient", "TaskRunDetail", "WorkflowRunDetail"]

DEFAULT_LIST_LIMIT = 50  # the engine's default page size
LONG_RANGE = timedelta(days=7)  # Hatchet warns past this
PURGE_BATCH = 500
FINISHED = [V1TaskStatus.COMPLETED, V1TaskStatus.FAILED, V1TaskStatus.CANCELLED]


class RunsClient:
    def __init__(self, client: Hatchet) -> None:
        self._client = client

    @property
    def _engine(self) -> Engine:
        return self._client._engine

    def _view(self, include_payloads: bool = True) -> views.ViewOptions:
        return views.ViewOptions(self._client.tenant_id, include_payloads)

    async def _bundle(self, run_id: str) -> RunBundle:
        await self._engine.ensure_started()
        bundle: RunBundle | None = await self._engine.store.run_bundle(run_id)
        if bundle is None:
            raise RunNotFoundError(f"no workflow run with id {run_id!r}")
        return bundle

    # -- reading one run -----------------------------------------------------------

    async def _get(self, workflow_run_id: str) -> V1WorkflowRunDetails:
        b = await self._bundle(workflow_run_id)
        return views.run_details(
            self._view(), b.run, b.tasks, b.all_tasks, b.shape, b.spawned, b.attempts, b.events
        )

    def get(self, workflow_run_id: str) -> V1WorkflowRunDetails:
        """The run, its task runs, its task-event timeline and its shape."""
        return RUNTIME.call(self._get, workflow_run_id)

    async def aio_get(self, workflow_run_id: str) -> V1WorkflowRunDetails:
        return await RUNTIME.acall(self._get, workflow_run_id)

    async def _get_details(self, external_id: str) -> WorkflowRunDetail:
        b = await self._bundle(external_id)
        return WorkflowRunDetail(
            external_id=b.run.id,
            status=RunStatus(views.public_status(b.run.status).value),
            input=json.loads(b.run.input_json) if b.run.input_json else None,
            additional_metadata=json.loads(b.run.metadata_json) if b.run.metadata_json else None,
            task_runs={
                t.task_name: TaskRunDetail(
                    external_id=t.id,
                    readable_id=t.task_name,
                    output=json.loads(t.output_json) if t.output_json else None,
                    error=_serialized_error(t.error_json) if t.status == "FAILED" else None,
                    status=views.public_status(t.status),
                    is_evicted=t.status == "WAITING",
                )
                for t in b.tasks
            },
            done=b.run.status in ("COMPLETED", "FAILED", "CANCELLED"),
        )

    def get_details(self, external_id: str) -> WorkflowRunDetail:
        """Status, input, metadata and the task runs created so far of one run."""
        return RUNTIME.call(self._get_details, external_id)

    async def aio_get_details(self, external_id: str) -> WorkflowRunDetail:
        return await RUNTIME.acall(self._get_details, external_id)

    async def _get_status(self, workflow_run_id: str) -> V1TaskStatus:
        return views.public_status((await self._bundle(workflow_run_id)).run.status)

    def get_status(self, workflow_run_id: str) -> V1TaskStatus:
        return RUNTIME.call(self._get_status, workflow_run_id)

    async def aio_get_status(self, workflow_run_id: str) -> V1TaskStatus:
        return await RUNTIME.acall(self._get_status, workflow_run_id)

    async def _get_task_run(self, task_run_id: str) -> V1TaskSummary:
        await self._engine.ensure_started()
        found = await self._engine.store.task_bundle(task_run_id)
        if found is None:
            raise RunNotFoundError(f"no task run with id {task_run_id!r}")
        task, run, shape, spawned = found
        return views.task_summary(self._view(), task, run, shape, spawned)

    def get_task_run(self, task_run_id: str) -> V1TaskSummary:
        return RUNTIME.call(self._get_task_run, task_run_id)

    async def aio_get_task_run(self, task_run_id: str) -> V1TaskSummary:
        return await RUNTIME.acall(self._get_task_run, task_run_id)

    async def _get_result(self, run_id: str) -> JSONMap:
        return (await self._get(run_id)).run.output

    def get_result(self, run_id: str) -> JSONMap:
        """The run's output as stored now (`get(run_id).run.output`): `{task: output}`
        for a DAG; to wait for the end, use `get_run_ref(run_id).result()`."""
        return RUNTIME.call(self._get_result, run_id)

    async def aio_get_result(self, run_id: str) -> JSONMap:
        return await RUNTIME.acall(self._get_result, run_id)

    def get_run_ref(self, workflow_run_id: str) -> WorkflowRunRef:
        from hatchlite.refs import WorkflowRunRef

        return WorkflowRunRef(workflow_run_id, self._client)

    # -- lists ---------------------------------------------------------------------

    def _query(
        self,
        since: datetime | None,
        until: datetime | None,
        statuses: builtins.list[V1TaskStatus] | None,
        workflow_ids: builtins.list[str] | None,
        additional_metadata: dict[str, str] | None,
        parent_task_external_id: str | None,
        triggering_event_external_id: str | None,
        worker_id: str | None,
        only_tasks: bool,
        offset: int | None,
        limit: int | None,
    ) -> RunQuery:
        now = self._engine.clock.now()
        start = _aware(since, "since") if since is not None else now - timedelta(days=1)
        end = _aware(until, "until") if until is not None else None
        if end is not None and start > end:
            raise ValueError(f"since ({start.isoformat()}) is after until ({end.isoformat()})")
        if (end or now) - start > LONG_RANGE:
            warnings.warn(
                "listing runs over more than 7 days may be slow; narrow since/until",
                RuntimeWarning,
                stacklevel=4,
            )
        if offset is not None and offset < 0:
            raise ValueError(f"offset must be 0 or more, got {offset}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be 0 or more, got {limit}")
        return RunQuery(
            since=start.timestamp(),
            until=end.timestamp() if end is not None else None,
            statuses=[V1TaskStatus(s).value for s in statuses] if statuses else None,
            workflow_ids=list(workflow_ids) if workflow_ids is not None else None,
            additional_metadata={str(k): str(v) for k, v in (additional_metadata or {}).items()},
            parent_task_external_id=parent_task_external_id,
            triggering_event_external_id=triggering_event_external_id,
            worker_id=worker_id,
            only_tasks=only_tasks,
            offset=offset or 0,
            limit=DEFAULT_LIST_LIMIT if limit is None else limit,
        )

    def _listing(self, args: dict[str, Any]) -> tuple[RunQuery, bool]:
        """The query and `include_payloads` of a list call's arguments (its `locals()`)."""
        query = self._query(
            args["since"],
            args["until"],
            args["statuses"],
            args["workflow_ids"],
            args["additional_metadata"],
            args["parent_task_external_id"],
            args["triggering_event_external_id"],
            args["worker_id"],
            args["only_tasks"],
            args["offset"],
            args["limit"],
        )
        return query, args["include_payloads"]

    async def _list(self, query: RunQuery, include_payloads: bool) -> V1TaskSummaryList:
        await self._engine.ensure_started()
        b = await self._engine.store.run_page(query)
        view = self._view(include_payloads)
        if query.only_tasks:
            runs = {r.id: r for r in b.page.runs}
            rows = [
                views.task_summary(
                    view,
                    task,
                    runs[task.workflow_run_id],
                    b.shapes.get(task.workflow_run_id),
                    b.spawned.get(task.id, 0),
                )
                for task in b.page.tasks
            ]
        else:
            rows = [
                views.run_summary(
                    view,
                    run,
                    b.tasks_by_run.get(run.id, []),
                    b.shapes.get(run.id),
                    b.spawned,
                )
                for run in b.page.runs
            ]
        return V1TaskSummaryList(
            rows=rows, pagination=views.pagination(query.offset, query.limit, b.page.total)
        )

    def list(
        self,
        since: datetime | None = None,
        only_tasks: bool = False,
        offset: int | None = None,
        limit: int | None = None,
        statuses: builtins.list[V1TaskStatus] | None = None,
        until: datetime | None = None,
        additional_metadata: dict[str, str] | None = None,
        workflow_ids: builtins.list[str] | None = None,
        worker_id: str | None = None,
        parent_task_external_id: str | None = None,
        triggering_event_external_id: str | None = None,
        include_payloads: bool = True,
    ) -> V1TaskSummaryList:
        """Runs created between `since` (default: a day ago) and `until` (default: now),
        newest first, 50 a page by default; one row per run, or per task run with
        `only_tasks=True`. `additional_metadata` matches runs having any of the pairs."""
        return RUNTIME.call(self._list, *self._listing(locals()))

    async def aio_list(
        self,
        since: datetime | None = None,
        only_tasks: bool = False,
        offset: int | None = None,
        limit: int | None = None,
        statuses: builtins.list[V1TaskStatus] | None = None,
        until: datetime | None = None,
        additional_metadata: dict[str, str] | None = None,
        workflow_ids: builtins.list[str] | None = None,
        worker_id: str | None = None,
        parent_task_external_id: str | None = None,
        triggering_event_external_id: str | None = None,
        include_payloads: bool = True,
    ) -> V1TaskSummaryList:
        return await RUNTIME.acall(self._list, *self._listing(locals()))

    async def _list_all(
        self, query: RunQuery, include_payloads: bool
    ) -> builtins.list[V1TaskSummary]:
        rows: builtins.list[V1TaskSummary] = []
        query.limit, query.offset = PURGE_BATCH, 0
        while True:
            page = await self._list(query, include_payloads)
            rows.extend(page.rows)
            if len(page.rows) < PURGE_BATCH:
                return rows
            query.offset += PURGE_BATCH

    def list_with_pagination(
        self,
        since: datetime | None = None,
        only_tasks: bool = False,
        offset: int | None = None,
        limit: int | None = None,
        statuses: builtins.list[V1TaskStatus] | None = None,
        until: datetime | None = None,
        additional_metadata: dict[str, str] | None = None,
        workflow_ids: builtins.list[str] | None = None,
        worker_id: str | None = None,
        parent_task_external_id: str | None = None,
        triggering_event_external_id: str | None = None,
        include_payloads: bool = True,
    ) -> builtins.list[V1TaskSummary]:
        """Every matching run (all pages), newest first. `offset` and `limit` are
        accepted for Hatchet's signature; every page is read."""
        return RUNTIME.call(self._list_all, *self._listing(locals()))

    async def aio_list_with_pagination(
        self,
        since: datetime | None = None,
        only_tasks: bool = False,
        offset: int | None = None,
        limit: int | None = None,
        statuses: builtins.list[V1TaskStatus] | None = None,
        until: datetime | None = None,
        additional_metadata: dict[str, str] | None = None,
        workflow_ids: builtins.list[str] | None = None,
        worker_id: str | None = None,
        parent_task_external_id: str | None = None,
        triggering_event_external_id: str | None = None,
        include_payloads: bool = True,
    ) -> builtins.list[V1TaskSummary]:
        return await RUNTIME.acall(self._list_all, *self._listing(locals()))

    # -- creating ------------------------------------------------------------------

    async def _create(
        self,
        workflow_name: str,
        input: JSONMap,
        additional_metadata: JSONMap | None,
        priority: int | None,
    ) -> V1WorkflowRunDetails:
        engine = self._engine
        name = self._client.config.apply_namespace(workflow_name)
        workflow = engine.defined.get(name)
        if workflow is not None:  # defined here: validated as `wf.run()` would
            item = workflow._item(input, None, None, additional_metadata, priority)
            run_id = (await workflow._create([item], None))[0]
        else:
            run_id = await engine.trigger_stored(
                name, input, additional_metadata or {}, priority, self._client
            )
        return await self._get(run_id)

    def create(
        self,
        workflow_name: str,
        input: JSONMap,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
    ) -> V1WorkflowRunDetails:
        """Trigger a run of a workflow by name (defined in this process, or registered
        on the database by another)."""
        return RUNTIME.call(self._create, workflow_name, input, additional_metadata, priority)

    async def aio_create(
        self,
        workflow_name: str,
        input: JSONMap,
        additional_metadata: JSONMap | None = None,
        priority: int | None = None,
    ) -> V1WorkflowRunDetails:
        return await RUNTIME.acall(
            self._create, workflow_name, input, additional_metadata, priority
        )

    # -- cancel and replay -----------------------------------------------------------

    async def _ids(self, opts: BulkCancelReplayOpts) -> builtins.list[str]:
        if opts.ids:
            return list(opts.ids)
        f = opts.filters
        assert f is not None  # the model requires ids or filters
        query = self._query(
            f.since,
            f.until,
            f.statuses,
            f.workflow_ids,
            f.additional_metadata,
            None,
            None,
            None,
            False,
            None,
            None,
        )
        return [row.metadata.id for row in await self._list_all(query, include_payloads=False)]

    async def _cancel(self, ids: builtins.list[str]) -> None:
        await self._engine.cancel(ids)

    async def _bulk_cancel(self, opts: BulkCancelReplayOpts) -> None:
        await self._engine.cancel(await self._ids(opts))

    def cancel(self, run_id: str) -> None:
        """Cancel a workflow run (or one task run): running tasks are stopped, pending
        ones never start. Child runs it spawned are not cancelled (as in Hatchet). An
        unknown id raises `RunNotFoundError`."""
        RUNTIME.call(self._cancel, [run_id])

    async def aio_cancel(self, run_id: str) -> None:
        await RUNTIME.acall(self._cancel, [run_id])

    def bulk_cancel(self, opts: BulkCancelReplayOpts) -> None:
        RUNTIME.call(self._bulk_cancel, opts)

    async def aio_bulk_cancel(self, opts: BulkCancelReplayOpts) -> None:
        await RUNTIME.acall(self._bulk_cancel, opts)

    async def _replay(self, ids: builtins.list[str]) -> None:
        await self._engine.replay(ids)

    async def _bulk_replay(self, opts: BulkCancelReplayOpts) -> None:
        await self._engine.replay(await self._ids(opts))

    def replay(self, run_id: str) -> None:
        """Queue a finished run again: its failed and cancelled tasks and their
        descendants run again (a completed run runs whole), keeping completed outputs;
        task runs keep their ids and count one more retry; durable tasks replay their
        history. A task run id replays that task and its descendants."""
        RUNTIME.call(self._replay, [run_id])

    async def aio_replay(self, run_id: str) -> None:
        await RUNTIME.acall(self._replay, [run_id])

    async def _reset(
        self, task_external_id: str, node_id: int, branch_id: int
    ) -> V1BranchDurableTaskResponse:
        branch = await self._engine.reset_durable_task(task_external_id, node_id, branch_id)
        return V1BranchDurableTaskResponse(
            task_external_id=task_external_id, node_id=node_id, branch_id=branch
        )

    def reset_durable_task(
        self, task_external_id: str, node_id: int, branch_id: int
    ) -> V1BranchDurableTaskResponse:
        """Run a finished durable task again from history node `node_id` of its branch
        `branch_id` (its current one): the entries before that node are kept (their
        calls return their recorded results again), those from it on are moved to the
        old branch, kept for inspection, and the task runs on a new branch (returned)
        from there; its DAG descendants run again too."""
        return RUNTIME.call(self._reset, task_external_id, node_id, branch_id)

    async def aio_reset_durable_task(
        self, task_external_id: str, node_id: int, branch_id: int
    ) -> V1BranchDurableTaskResponse:
        return await RUNTIME.acall(self._reset, task_external_id, node_id, branch_id)

    async def _restore(self, task_external_id: str) -> V1RestoreTaskResponse:
        await self._engine.restore_task(task_external_id)
        return V1RestoreTaskResponse(requeued=True)

    def restore_task(self, task_external_id: str) -> V1RestoreTaskResponse:
        """Queue an evicted durable task run again now (hatchlite's name for Hatchet's
        REST `v1_task_restore`): it replays its history, and a wait that is not over yet
        waits again. `RestoreError` if the task run is not evicted."""
        return RUNTIME.call(self._restore, task_external_id)

    async def aio_restore_task(self, task_external_id: str) -> V1RestoreTaskResponse:
        return await RUNTIME.acall(self._restore, task_external_id)

    async def _history(self, task_external_id: str) -> DurableHistory:
        found = await self._engine.durable_history(task_external_id)
        if found is None:
            raise RunNotFoundError(f"no task run with id {task_external_id!r}")
        current, rows = found
        return DurableHistory(
            task_external_id=task_external_id,
            current_branch=current,
            entries=[
                DurableHistoryEntry(
                    branch_id=r.branch_id,
                    node_id=r.node_id,
                    kind=r.kind,
                    key=r.key,
                    status=r.status,
                    result=json.loads(r.result) if r.result is not None else None,
                    created_at=datetime.fromtimestamp(r.created_at, UTC),
                    satisfied_at=(
                        datetime.fromtimestamp(r.satisfied_at, UTC)
                        if r.satisfied_at is not None
                        else None
                    ),
                    current=r.branch_id == current,
                )
                for r in rows
            ],
        )

    def get_durable_history(self, task_external_id: str) -> DurableHistory:
        """A durable task run's history (a hatchlite extra): one entry per durable call
        (`aio_now`, a sleep or wait, a child spawn, a memo) with its recorded result, on
        its current branch and on the branches `reset_durable_task` kept. Empty for a
        task that is not durable."""
        return RUNTIME.call(self._history, task_external_id)

    async def aio_get_durable_history(self, task_external_id: str) -> DurableHistory:
        return await RUNTIME.acall(self._history, task_external_id)

    def client(self) -> RestClient:
        """What Hatchet's REST API classes take (`TaskApi(client)`, within `with
        hatchet.runs.client() as client:`); in hatchlite they call these clients."""
        return RestClient(self._client)

    def bulk_replay(self, opts: BulkCancelReplayOpts) -> None:
        RUNTIME.call(self._bulk_replay, opts)

    async def aio_bulk_replay(self, opts: BulkCancelReplayOpts) -> None:
        await RUNTIME.acall(self._bulk_replay, opts)

    async def _by_filters(self, replay: bool, args: dict[str, Any]) -> None:
        """Cancel or replay the runs a `*_by_filters_with_pagination` call's arguments
        (its `locals()`) match."""
        if args["chunk_size"] <= 0:
            raise ValueError(f"chunk_size must be positive, got {args['chunk_size']}")
        default = (
            [V1TaskStatus.FAILED, V1TaskStatus.CANCELLED]
            if replay
            else [
                V1TaskStatus.RUNNING,
                V1TaskStatus.QUEUED,
            ]
        )
        query = self._query(
            args["since"],
            args["until"],
            args["statuses"] or default,
            args["workflow_ids"],
            args["additional_metadata"],
            None,
            None,
            None,
            False,
            None,
            None,
        )
        # The matching runs are read once, first: runs that change state meanwhile
        # (a replayed run failing again) are not picked up a second time.
        ids = [row.metadata.id for row in await self._list_all(query, include_payloads=False)]
        size = args["chunk_size"]
        for start in range(0, len(ids), size):
            if start:
                await asyncio.sleep(args["sleep_time"])
            chunk = ids[start : start + size]
            await (self._engine.replay(chunk) if replay else self._engine.cancel(chunk))

    def bulk_cancel_by_filters_with_pagination(
        self,
        sleep_time: float = 3,
        chunk_size: int = 500,
        since: datetime | None = None,
        until: datetime | None = None,
        statuses: builtins.list[V1TaskStatus] | None = None,
        additional_metadata: dict[str, str] | None = None,
        workflow_ids: builtins.list[str] | None = None,
    ) -> None:
        """Cancel every matching run (default: RUNNING and QUEUED ones), `chunk_size` at
        a time, `sleep_time` seconds apart."""
        RUNTIME.call(self._by_filters, False, locals())

    async def aio_bulk_cancel_by_filters_with_pagination(
        self,
        sleep_time: float = 3,
        chunk_size: int = 500,
        since: datetime | None = None,
        until: datetime | None = None,
        statuses: builtins.list[V1TaskStatus] | None = None,
        additional_metadata: dict[str, str] | None = None,
        workflow_ids: builtins.list[str] | None = None,
    ) -> None:
        await RUNTIME.acall(self._by_filters, False, locals())

    def bulk_replay_by_filters_with_pagination(
        self,
        sleep_time: float = 3,
        chunk_size: int = 500,
        since: datetime | None = None,
        until: datetime | None = None,
        statuses: builtins.list[V1TaskStatus] | None = None,
        additional_metadata: dict[str, str] | None = None,
        workflow_ids: builtins.list[str] | None = None,
    ) -> None:
        """Replay every matching run (default: FAILED and CANCELLED ones), `chunk_size`
        at a time, `sleep_time` seconds apart."""
        RUNTIME.call(self._by_filters, True, locals())

    async def aio_bulk_replay_by_filters_with_pagination(
        self,
        sleep_time: float = 3,
        chunk_size: int = 500,
        since: datetime | None = None,
        until: datetime | None = None,
        statuses: builtins.list[V1TaskStatus] | None = None,
        additional_metadata: dict[str, str] | None = None,
        workflow_ids: builtins.list[str] | None = None,
    ) -> None:
        await RUNTIME.acall(self._by_filters, True, locals())

    # -- streams -------------------------------------------------------------------------

    async def subscribe_to_stream(self, workflow_run_id: str) -> AsyncIterator[str]:
        """Every `put_stream` chunk of the run, in order, from the first (however late
        this subscribes, from any process), until the run ends."""
        after = 0
        while True:
            chunks, ended = await RUNTIME.acall(
                self._engine.stream_chunks, workflow_run_id, after, 1.0
            )
            for chunk in chunks:
                after = chunk.id
                yield chunk.data
            if ended and not chunks:
                return

    # -- retention (hatchlite extra) -----------------------------------------------------

    async def _purge(
        self, older_than: timedelta, statuses: builtins.list[str], batch_size: int, vacuum: bool
    ) -> int:
        engine = self._engine
        await engine.ensure_started()
        cutoff = engine.clock.time() - older_than.total_seconds()
        deleted = 0
        while True:
            count = await engine.store.purge(cutoff, statuses, batch_size)
            deleted += count
            if count == 0:
                break
            await asyncio.sleep(0)  # let the engine's own commits in between batches
        while vacuum and deleted:  # a bounded batch of pages per transaction
            vacuum = await engine.store.incremental_vacuum(2000) > 0
        return deleted

    def purge(
        self,
        older_than: timedelta,
        statuses: builtins.list[V1TaskStatus] | None = None,
        batch_size: int = PURGE_BATCH,
        vacuum: bool = True,
    ) -> int:
        """Delete finished runs that finished more than `older_than` ago (only those with
        `statuses`, default all finished ones), with their task runs, attempts, task
        events, logs, stream chunks and durable history, and pushed events older than
        that; `batch_size` runs per transaction. Then give freed pages back to the file
        system (`vacuum`). Returns how many runs and events were deleted. A hatchlite
        extra: Hatchet's engine applies retention by itself."""
        args = _purge_args(older_than, statuses, batch_size)
        return RUNTIME.call(self._purge, *args, vacuum)

    async def aio_purge(
        self,
        older_than: timedelta,
        statuses: builtins.list[V1TaskStatus] | None = None,
        batch_size: int = PURGE_BATCH,
        vacuum: bool = True,
    ) -> int:
        args = _purge_args(older_than, statuses, batch_size)
        return await RUNTIME.acall(self._purge, *args, vacuum)


def _purge_args(
    older_than: timedelta, statuses: list[V1TaskStatus] | None, batch_size: int
) -> tuple[timedelta, list[str], int]:
    if older_than.total_seconds() < 0:
        raise ValueError(f"older_than must not be negative, got {older_than}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    chosen = [V1TaskStatus(s) for s in (statuses or FINISHED)]
    unfinished = [s.value for s in chosen if s not in FINISHED]
    if unfinished:
        raise ValueError(f"only finished runs can be purged, not {', '.join(unfinished)}")
    return older_than, [s.value for s in chosen], batch_size


def _aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # naive times are UTC, as Hatchet sends them
    return value


def _serialized_error(error_json: str | None) -> str | None:
    from hatchlite.exceptions import TaskRunError

    return TaskRunError.from_json(error_json).serialize() if error_json else None
