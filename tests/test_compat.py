"""`hatchlite.compat`: programs written for `hatchet_sdk` run on hatchlite unchanged."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import hatchlite
from hatchlite import compat
from hatchlite.compat import paths
from tests.conftest import ROOT

PROGRAMS = ["shop", "serde", "spawn_index"]


def run_python(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HATCHLITE_DB": str(cwd / "h.db"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def sdk() -> Iterator[types.ModuleType]:
    """`hatchet_sdk`, served by hatchlite, in this process for the test."""
    compat.install()
    try:
        yield importlib.import_module("hatchet_sdk")
    finally:
        compat.uninstall()


# -- whole programs ------------------------------------------------------------------


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_hatchet_program_runs_unchanged_with_python_m_hatchlite_compat(
    program: str, tmp_path: Path
) -> None:
    proc = run_python(
        ["-m", "hatchlite.compat", "-m", f"tests.hatchet_programs.{program}"], tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{program.replace('_', ' ')} ok" in proc.stdout


def test_a_hatchet_script_runs_by_path_with_its_arguments(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        "import sys\nfrom hatchet_sdk import Hatchet\nprint(type(Hatchet()).__module__, sys.argv)\n"
    )
    proc = run_python(["-m", "hatchlite.compat", str(script), "--flag"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"hatchlite.client {[str(script), '--flag']}"


def test_install_then_import_runs_the_program(tmp_path: Path) -> None:
    code = "from hatchlite import compat; compat.install(); from tests.hatchet_programs import shop; shop.main()"
    proc = run_python(["-c", code], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "shop ok" in proc.stdout


def test_hatchet_environment_variables_are_accepted_and_ignored(tmp_path: Path) -> None:
    code = (
        "from hatchlite import compat; compat.install()\n"
        "import logging\n"
        "from hatchet_sdk import ClientConfig, Hatchet, EmptyModel, Context\n"
        "h = Hatchet(config=ClientConfig(namespace='Staging', logger=logging.getLogger('x')))\n"
        "wf = h.workflow(name='report')\n"
        "@wf.task()\n"
        "def t(input: EmptyModel, ctx: Context) -> dict:\n"
        "    return {'name': ctx.workflow_name}\n"
        "print(wf.name, wf.run())\n"
    )
    proc = run_python(
        ["-c", code],
        tmp_path,
        HATCHET_CLIENT_TOKEN="not-a-real-token",
        HATCHET_CLIENT_HOST_PORT="localhost:7077",
        HATCHET_CLIENT_TLS_STRATEGY="none",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "staging_report {'t': {'name': 'staging_report'}}"


def test_usage_without_a_program(tmp_path: Path) -> None:
    proc = run_python(["-m", "hatchlite.compat"], tmp_path)
    assert proc.returncode == 2 and "usage" in proc.stderr


# -- import paths -----------------------------------------------------------------------


def test_every_module_path_imports_and_twins_are_the_same_object(sdk: types.ModuleType) -> None:
    for module_name, names in paths.MODULES.items():
        module = importlib.import_module(module_name)
        for name in names:
            if name in paths.UNSUPPORTED and name not in paths.MODULE_OBJECTS.get(module_name, {}):
                continue
            value = getattr(module, name)
            top = sdk.__dict__.get(name)
            if top is not None and name not in paths.MODULE_OBJECTS.get(module_name, {}):
                assert value is top, f"{module_name}.{name} is not hatchet_sdk.{name}"


def test_rest_model_paths_give_hatchlites_models(sdk: types.ModuleType) -> None:
    from hatchet_sdk.clients.rest.models.v1_task_status import V1TaskStatus
    from hatchet_sdk.clients.rest.models.v1_task_summary import V1TaskSummary
    from hatchet_sdk.clients.rest.models.v1_workflow_run_details import V1WorkflowRunDetails

    assert V1TaskStatus is sdk.V1TaskStatus is hatchlite.V1TaskStatus
    assert V1TaskSummary is hatchlite.models.V1TaskSummary
    assert V1WorkflowRunDetails is hatchlite.models.V1WorkflowRunDetails
    models = importlib.import_module("hatchet_sdk.clients.rest.models")
    assert models.V1TaskSummary is V1TaskSummary
    for name in paths.REST_CLASSES:
        module = importlib.import_module(f"{paths.REST_MODELS}.{compat._snake(name)}")
        assert getattr(module, name) is getattr(models, name)


def test_the_names_hatchet_examples_import(sdk: types.ModuleType) -> None:
    from hatchet_sdk import Workflow as RestWorkflow
    from hatchet_sdk.clients.admin import WorkflowRunDetail
    from hatchet_sdk.clients.events import BulkPushEventWithMetadata, Event
    from hatchet_sdk.context.context import Context
    from hatchet_sdk.exceptions import FailedTaskRunExceptionGroup, TaskRunError
    from hatchet_sdk.hatchet import Hatchet
    from hatchet_sdk.labels import DesiredWorkerLabel
    from hatchet_sdk.rate_limit import RateLimit, RateLimitDuration
    from hatchet_sdk.runnables.eviction import EvictionPolicy
    from hatchet_sdk.runnables.types import EmptyModel
    from hatchet_sdk.runnables.workflow import BaseWorkflow, Standalone, Workflow
    from hatchet_sdk.workflow_run import WorkflowRunRef

    assert RestWorkflow is hatchlite.models.Workflow  # top level: the REST model
    assert Workflow is hatchlite.Workflow  # runnables.workflow: the runnable
    assert Event is hatchlite.Event  # the push result
    assert Hatchet is sdk.Hatchet is hatchlite.Hatchet
    assert (Context, EmptyModel, EvictionPolicy) == (
        hatchlite.Context,
        hatchlite.EmptyModel,
        hatchlite.EvictionPolicy,
    )
    assert (RateLimit, RateLimitDuration, DesiredWorkerLabel) == (
        hatchlite.RateLimit,
        hatchlite.RateLimitDuration,
        hatchlite.DesiredWorkerLabel,
    )
    assert (BaseWorkflow, Standalone, WorkflowRunRef, WorkflowRunDetail) == (
        hatchlite.BaseWorkflow,
        hatchlite.Standalone,
        hatchlite.WorkflowRunRef,
        hatchlite.WorkflowRunDetail,
    )
    assert (TaskRunError, FailedTaskRunExceptionGroup, BulkPushEventWithMetadata) == (
        hatchlite.TaskRunError,
        hatchlite.FailedTaskRunExceptionGroup,
        hatchlite.BulkPushEventWithMetadata,
    )


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("from hatchet_sdk import MCPProvider", "hatchet_sdk.MCPProvider: hatchlite has no MCP"),
        ("from hatchet_sdk import NoSuchName", "hatchlite does not support hatchet_sdk.NoSuchName"),
        (
            "from hatchet_sdk import Event",
            "for a push result import Event from hatchet_sdk.clients",
        ),
        (
            "from hatchet_sdk.opentelemetry.instrumentor import HatchetInstrumentor",
            "no OpenTelemetry",
        ),
        ("import hatchet_sdk.clients.rest.api.workflow_api", "no REST API clients"),
        ("from hatchet_sdk.clients.rest.models.tenant import Tenant", "models.tenant"),
    ],
)
def test_what_hatchlite_lacks_fails_at_import_saying_so(
    sdk: types.ModuleType, statement: str, message: str
) -> None:
    with pytest.raises(ImportError, match=message.replace(".", r"\.")) as caught:
        exec(statement, {})
    assert isinstance(caught.value, compat.NotInHatchliteError)


def test_install_refuses_to_mix_with_the_real_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    real = types.ModuleType("hatchet_sdk")
    monkeypatch.setitem(sys.modules, "hatchet_sdk", real)
    with pytest.raises(compat.HatchetSdkAlreadyImportedError, match="already imported"):
        compat.install()
    assert not compat.installed()


def test_install_is_idempotent_and_uninstall_undoes_it() -> None:
    compat.install()
    compat.install()
    try:
        assert sum(1 for f in sys.meta_path if f is compat._FINDER) == 1
        assert importlib.import_module("hatchet_sdk").Hatchet is hatchlite.Hatchet
    finally:
        compat.uninstall()
    assert "hatchet_sdk" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("hatchet_sdk")


def test_from_embedded_is_a_client(tmp_path: Path) -> None:
    os.environ["HATCHLITE_DB"] = str(tmp_path / "embedded.db")
    try:
        client = hatchlite.Hatchet.from_embedded()
    finally:
        del os.environ["HATCHLITE_DB"]
    wf = client.workflow(name="embedded")
    wf.task(name="noop")(lambda input, ctx: {"ok": 1})
    try:
        assert wf.run() == {"noop": {"ok": 1}}
    finally:
        client.stop_embedded()


def test_a_missing_name_is_a_missing_attribute_outside_an_import(sdk: types.ModuleType) -> None:
    """hasattr, getattr with a default and mock.patch see a plain missing attribute;
    only `from ... import` raises the explaining ImportError."""
    assert not hasattr(sdk, "RunEventListener")
    assert getattr(sdk, "SomeFutureName", None) is None
    workflow_module = importlib.import_module("hatchet_sdk.runnables.workflow")
    assert not hasattr(workflow_module, "MCPProvider")


def test_the_modules_hatchets_top_level_imports_from(sdk: types.ModuleType) -> None:
    from hatchet_sdk.conditions import Action
    from hatchet_sdk.types.idempotency import TTLBasedIdempotencyConfig
    from hatchet_sdk.types.trigger import PushEventOptions, TriggerWorkflowOptions

    assert TTLBasedIdempotencyConfig is sdk.TTLBasedIdempotencyConfig
    assert (PushEventOptions, TriggerWorkflowOptions) == (
        sdk.PushEventOptions,
        sdk.TriggerWorkflowOptions,
    )
    assert Action is hatchlite.conditions.Action
