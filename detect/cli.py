"""The `harborwatch` command line: a thin layer over library functions a notebook can call too.

Results go to stdout (or files), progress and messages to stderr. Exit codes: 0 success,
1 the work failed, 2 bad usage or bad input. Errors a user can cause print one line, no traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from imagery.errors import HarborwatchError

log = logging.getLogger("harborwatch")


def emit(result: Any, as_json: bool, human: str | None = None) -> None:
    """Print a result: JSON on stdout with ``--json``, else the human text (stdout)."""
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    elif human is not None:
        click.echo(human)


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    # Libraries are noisy at INFO; keep them at WARNING unless -vv.
    for name in ("rasterio", "urllib3", "botocore", "sentinelhub", "ultralytics", "distributed", "fsspec"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 2 else logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More progress output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.version_option(package_name="harborwatch")
def cli(verbose: int, quiet: bool) -> None:
    """harborwatch: count ships in ports and moving trucks on bridges from free Sentinel imagery."""
    _setup_logging(verbose, quiet)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning harborwatch errors into one line and an exit code."""
    from detect import commands  # noqa: F401  (registers the commands on `cli`)

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


if __name__ == "__main__":
    main()
