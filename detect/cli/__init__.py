"""The `harborwatch` command line: a thin layer over library functions a notebook can call too.

Results go to stdout (or files), progress and messages to stderr. Exit codes: 0 success,
1 the work failed, 2 bad usage or bad input. Errors a user can cause print one line, no traceback.
"""

from __future__ import annotations

import sys

import click

from detect.cli.app import cli
from imagery.errors import HarborwatchError


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning harborwatch errors into one line and an exit code."""
    from detect.cli import commands  # noqa: F401  (registers the commands on `cli`)

    try:
        rc = cli.main(args=argv, prog_name="harborwatch", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("harborwatch: interrupted; finished work is kept, rerun to resume", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("harborwatch: interrupted; finished work is kept, rerun to resume", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except HarborwatchError as e:
        click.echo(f"harborwatch: error: {e}", err=True)
        sys.exit(e.exit_code)
    sys.exit(rc if isinstance(rc, int) else 0)

