"""What the segmentation CV scripts (``seg_cv_rescore``, ``seg_cv_variants``, ``seg_oof_rescore``,
``seg_threshold_rules``) start from: torch's thread count, the sen2ships folder, and its folds and labelled
vessels (``detect.ships.segment_train.cv_setup``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def cv_inputs(
    script: str, data: str | None, cache: Path, threads: int = 1
) -> tuple[Path, list, dict[str, Any]]:
    """(sen2ships folder from ``data`` or ``$HARBORWATCH_DATA``, fold plan, labelled vessels per city), the
    scenes prepared in ``cache``; a one-line exit naming ``script`` when the data set is not found."""
    import torch

    from detect.core.data import data_path
    from detect.ships.segment_train import cv_setup
    from imagery.errors import InputError

    torch.set_num_threads(threads)
    try:
        root = data_path("sen2ships", data)
    except InputError as e:
        sys.exit(f"{script}: {e}")
    _, plan, truth = cv_setup(root, cache)
    return root, plan, truth
