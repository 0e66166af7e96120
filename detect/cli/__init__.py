"""The `harborwatch` command line: a thin layer over library functions a notebook can call too.

Results go to stdout (or files), progress and messages to stderr. Exit codes: 0 success,
1 the work failed, 2 bad usage or bad input. Errors a user can cause print one line, no traceback.
"""

from __future__ import annotations

import errno
import sys

import click

from detect.cli.app import cli
from imagery.errors import HarborwatchError

#: Path errors a user fixes by giving another path (exit 2); anything else from the system is exit 1.
_PATH_ERRORS = (PermissionError, FileExistsError, NotADirectoryError, IsADirectoryError, FileNotFoundError)


def describe_os_error(e: OSError) -> tuple[str, int]:
    """One line and an exit code for an operating-system error met while working."""
    where = f" {e.filename}" if getattr(e, "filename", None) else ""
    if e.errno == errno.ENOSPC:
        return (
            f"no space left on the device while writing{where}; finished work is kept, free space and rerun",
            1,
        )
    if e.errno == errno.EROFS:
        return f"read-only file system:{where}; choose an output folder you can write", 2
    if isinstance(e, PermissionError):
        return f"permission denied:{where}; choose an output folder you can write", 2
    if isinstance(e, (FileExistsError, NotADirectoryError)):
        return f"cannot create{where}: a file stands where a folder is needed", 2
    if isinstance(e, IsADirectoryError):
        return f"{where.strip()} is a folder, a file is needed", 2
    if isinstance(e, FileNotFoundError):
        return f"no such file or folder:{where}", 2
    return f"{e.strerror or e}{':' + where if where else ''}", 1


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning harborwatch errors into one line and an exit code."""
    try:
        from detect.cli import commands  # noqa: F401  (registers the commands on `cli`; Ctrl-C may land here)

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
    except MemoryError:
        click.echo(
            "harborwatch: error: out of memory; finished work is kept (try a smaller AOI or "
            "fewer workers, then rerun to resume)",
            err=True,
        )
        sys.exit(1)
    except OSError as e:  # the environment: unwritable or misplaced paths, a full disk
        message, code = describe_os_error(e)
        click.echo(f"harborwatch: error: {message}", err=True)
        sys.exit(code)
    sys.exit(rc if isinstance(rc, int) else 0)
