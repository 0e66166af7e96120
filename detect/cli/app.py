"""The ``harborwatch`` click group, its logging set-up and ``emit`` (JSON or human output); commands
register on ``cli`` from ``detect.cli.commands``.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import click

log = logging.getLogger("harborwatch")


#: Grid pixel sizes ``--res`` accepts, in metres: Sentinel grids are 10, 20 or 60 m; finer makes huge grids.
RES_RANGE_M = (1.0, 1000.0)


def res_option(ctx: Any, param: Any, value: float | None) -> float | None:
    """click callback for ``--res`` options: a finite pixel size within ``RES_RANGE_M``, else InputError."""
    from imagery.errors import InputError

    low, high = RES_RANGE_M
    if value is not None and not low <= value <= high:  # NaN fails the comparison too
        raise InputError(f"--res must be a pixel size from {low:g} to {high:g} m (e.g. 10), got {value:g}")
    return value


def emit(result: Any, as_json: bool, human: str | None = None) -> None:
    """Print a result: JSON on stdout with ``--json``, else the human text (stdout)."""
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    elif human is not None:
        click.echo(human)


#: Third-party start-up messages that say nothing about the work: logger → how the messages start.
#: (ultralytics' settings banner is held back where it is imported, in ``detect.ships.model``.)
STARTUP_NOISE = {
    "matplotlib.font_manager": ("Matplotlib is building the font cache", "generated new fontManager"),
}


def _not_startup_noise(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(STARTUP_NOISE.get(record.name, ()))


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    # Libraries are noisy at INFO; keep them at WARNING unless -vv.
    for name in ("rasterio", "urllib3", "botocore", "sentinelhub", "ultralytics", "distributed", "fsspec"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose > 2 else logging.WARNING)
    # GDAL's own warnings (rasterio._env: "CPLE_AppDefined in x.tif: TIFFReadDirectory: …", once per open)
    # are about a file's internals, not the work; a file GDAL cannot read still fails in one line. -v shows
    # them.
    gdal = logging.DEBUG if verbose > 2 else (logging.WARNING if verbose else logging.ERROR)
    logging.getLogger("rasterio._env").setLevel(gdal)
    if not verbose:  # a PNG or JPEG without georeferencing is refused in one line (CrsError) after it
        from rasterio.errors import NotGeoreferencedWarning

        warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
    for name in STARTUP_NOISE:
        logger = logging.getLogger(name)
        logger.removeFilter(_not_startup_noise)  # one filter however often the CLI runs in a process
        if verbose <= 2:
            logger.addFilter(_not_startup_noise)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More progress output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.version_option(package_name="harborwatch")
def cli(verbose: int, quiet: bool) -> None:
    """harborwatch: count ships in ports and moving trucks on bridges from free Sentinel imagery."""
    _setup_logging(verbose, quiet)


def check_geojson_out(out: str | Path) -> None:
    """Refuse, before any work, an ``--out`` that does not name a GeoJSON file: GeoJSON is what is written,
    whatever the name says ("" failed at the end with "Device or resource busy")."""
    from imagery.errors import InputError

    path = Path(out)
    if not str(out) or not path.name or path.suffix.lower() not in (".geojson", ".json"):
        raise InputError(f"--out {str(out)!r}: name a GeoJSON file to write (….geojson or ….json)")
    # its folder made and written to now, not after every input was read and searched (an OSError here is
    # the environment's one-line error in ``detect.cli.main``)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".harborwatch-probe-"):
        pass
