"""The functions a run calls (``Steps``): catalogue search, reader, cloud screen, detectors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from detect.detectors import detector_bands
from detect.sar.s1 import detect_sar
from imagery.sar import read_sar
from imagery.types import RasterWindow, Scene


@dataclass(frozen=True)
class Steps:
    """The functions the pipeline calls; the defaults are harborwatch's own. Swap one to plug in a
    different catalogue, reader or detector (tests wrap them to count calls)."""

    search: Callable[..., list[Scene]]
    read: Callable[..., RasterWindow]
    screen: Callable[..., tuple[Any, np.ndarray | None, np.ndarray]]
    detect: Callable[..., list[Any]]
    required_bands: Callable[[dict[str, str]], tuple[str, ...]]
    #: Sentinel-1: ``read_sar(scene, grid, cache=)`` and ``detect_sar(window, aoi=, conf=, device=)``.
    read_sar: Callable[..., RasterWindow] = read_sar
    detect_sar: Callable[..., list[Any]] = detect_sar


def default_steps() -> Steps:
    from detect.detectors import detect_window
    from imagery.catalog import search
    from imagery.read import read_window

    return Steps(
        search=search,
        read=read_window,
        screen=screen_clouds,
        detect=detect_window,
        required_bands=detector_bands,
    )


def screen_clouds(
    window: RasterWindow, area: np.ndarray | None = None
) -> tuple[Any, np.ndarray | None, np.ndarray]:
    """(CloudScreen over ``area``, cloud mask or None, valid mask) for one window.

    The masks of ``imagery.clouds.screen_window`` (SCL, else s2cloudless, else the window's own; radar is
    clear), kept: daily counts need the clear share of every zone, not only the AOI's.
    """
    from imagery import clouds

    cloud, valid, method = clouds.window_cloud_mask(window)
    return clouds.screen(cloud, valid, method=method, area=area), cloud, valid
