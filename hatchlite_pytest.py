"""hatchlite's pytest plugin (entry point `pytest11: hatchlite`): the `hatchet_test`
fixture. A top-level module, not part of the `hatchlite` package, so loading it (which
pytest does in every run where hatchlite is installed) imports nothing of hatchlite.

Each test that asks for `hatchet_test` gets a `hatchlite.testing.HatchetTest`: its own
database (a file under the test's `tmp_path`, or ":memory:"), a `TestClock` that skips
sleeps and backoffs, and a client; `hatchet_test.serve(workflow, ...)` binds the
application's module-level `Hatchet()` to that database and starts a worker.

Settings, per test with the `hatchlite` marker or for a whole suite in the ini file:
`@pytest.mark.hatchlite(db="memory", auto_advance=False, start=datetime(...))`;
`hatchlite_db = memory`, `hatchlite_auto_advance = false`.

Nothing here imports hatchlite's engine until a test asks for the fixture, and a test
that does not ask for it runs as if the plugin were not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hatchlite.testing import HatchetTest

MARKER = "hatchlite"
DATABASES = ("file", "memory")
_SETTINGS = ("db", "auto_advance", "start")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "hatchlite_db",
        "hatchet_test fixture: the database of each test, 'file' (under tmp_path) or 'memory'",
        default="file",
    )
    parser.addini(
        "hatchlite_auto_advance",
        "hatchet_test fixture: the test clock jumps to the next deadline when idle",
        type="bool",
        default=True,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(db='file'|'memory', auto_advance=True, start=None): settings of the "
        f"hatchet_test fixture for this test",
    )


def _settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "db": request.config.getini("hatchlite_db"),
        "auto_advance": request.config.getini("hatchlite_auto_advance"),
        "start": None,
    }
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if marker.args:
            raise TypeError(f"@pytest.mark.{MARKER} takes keyword arguments only")
        unknown = sorted(set(marker.kwargs) - set(_SETTINGS))
        if unknown:
            raise TypeError(
                f"@pytest.mark.{MARKER}: unknown setting(s) {unknown}; known: {list(_SETTINGS)}"
            )
        settings.update(marker.kwargs)
    if settings["db"] not in DATABASES:
        raise ValueError(f"hatchlite db setting must be one of {DATABASES}, got {settings['db']!r}")
    if not isinstance(settings["auto_advance"], bool):
        raise TypeError(f"hatchlite auto_advance must be a bool, got {settings['auto_advance']!r}")
    start = settings["start"]
    if start is not None and not (isinstance(start, datetime) and start.tzinfo is not None):
        raise TypeError(f"hatchlite start must be a timezone-aware datetime, got {start!r}")
    return settings


@pytest.fixture
def hatchet_test(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HatchetTest]:
    """This test's own hatchlite (`hatchlite.testing.HatchetTest`): a fresh database, a
    `TestClock`, a client; `serve(*workflows)` binds the workflows' clients to it and
    starts a worker. Closed, its workers stopped and its clients unbound, at teardown."""
    from hatchlite.testing import HatchetTest

    settings = _settings(request)
    db = ":memory:" if settings["db"] == "memory" else str(tmp_path / "hatchlite.db")
    with HatchetTest(db, auto_advance=settings["auto_advance"], start=settings["start"]) as kit:
        yield kit
