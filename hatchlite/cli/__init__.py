"""The `hatchlite` command: run workers, trigger and inspect runs, operate a database
from a terminal. A thin layer over the Python clients (`hatchet.runs`, `hatchet.event`,
...): every command takes `--db` (default `HATCHLITE_DB`, else `hatchlite.db`) and
`--json`, prints tables by default, and exits 0 when all went well, 1 when a run it
waited for failed, and 2 on a usage error or something not found (one line, no
traceback). See docs/cli.md."""

from __future__ import annotations

import click

from hatchlite.cli.resources import cron, events, scheduled, workers, workflows
from hatchlite.cli.runs import runs
from hatchlite.cli.serve import dashboard, run, worker

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hatchlite")
def cli() -> None:
    """hatchlite: Hatchet's workflows on one SQLite file."""


for command in (worker, run, runs, events, cron, scheduled, workers, workflows, dashboard):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="hatchlite")
