"""The `hatchlite` command: run workers, trigger and inspect runs, operate a database
from a terminal. A thin layer over the Python clients (`hatchet.runs`, `hatchet.event`,
...): every command takes `--db` (default `HATCHLITE_DB`, else `hatchlite.db`) and
`--json`, prints tables by default, and exits 0 when all went well, 1 when a run it
waited for failed, and 2 on a usage error or something not found (one line, no
traceback). See docs/cli.md."""

from __future__ import annotations

import click

from hatchlite.cli.common import INTERRUPTED, USAGE, UserError, err
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
    """Run the command; a usage error is one line (what is wrong, and where to read
    more) and exit code 2, as every user error."""
    try:
        cli.main(prog_name="hatchlite", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        UserError(exc.format_message() + hint).show()
        raise SystemExit(USAGE) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.Abort:
        err.print("aborted")
        raise SystemExit(INTERRUPTED) from None
