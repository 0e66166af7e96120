"""Where training and evaluation data sets live: ``--data`` or ``$HARBORWATCH_DATA`` (docs/data.md)."""

from __future__ import annotations

import os
from pathlib import Path

from imagery.errors import InputError

DATA_ENV = "HARBORWATCH_DATA"
#: Data set → its folder under ``$HARBORWATCH_DATA`` (the layout docs/data.md describes).
DATASETS = {
    "sen2ships": "sen2ships/trainval",
    "sen2ships-root": "sen2ships",
    "eotdl-s2-ships": "eotdl-s2-ships",
    "s2td-truck-test-chip": "s2td-truck-test-chip",
}


def data_path(dataset: str, given: str | Path | None = None, option: str = "--data") -> Path:
    """The folder of ``dataset``: ``given`` (the ``option`` of a command) if set, else under
    ``$HARBORWATCH_DATA``.

    Raises InputError naming both ways and the doc when neither leads to an existing folder."""
    if dataset not in DATASETS:
        raise InputError(f"unknown data set {dataset!r}; known: {', '.join(DATASETS)}")
    if given:
        path = Path(given)
    else:
        root = os.environ.get(DATA_ENV)
        if not root:
            raise InputError(
                f"no {dataset} data: pass {option}, or set ${DATA_ENV} to the folder that holds "
                f"{DATASETS[dataset]}/ (docs/data.md says where to get it)"
            )
        path = Path(root) / DATASETS[dataset]
    if not path.is_dir():
        raise InputError(
            f"{dataset} data not found: {path} is not a folder (docs/data.md says where to get it)"
        )
    return path
