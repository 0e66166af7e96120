"""Reading a GeoTIFF or band folder for a detector: checks that refuse bad input in one line, then
the read."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import rasterio
from rasterio.errors import RasterioIOError

from imagery.errors import CrsError, InputError, MissingBandsError, RasterReadError
from imagery.read import find_band_files, normalise_band_name, open_raster, resolve_input
from imagery.safe import product_of, safe_granule
from imagery.types import CATEGORICAL_LAYERS, S2_BANDS, RasterWindow


def check_raster_file(path: Path) -> None:
    """Refuse files a detector cannot use, with one clear line: empty, unreadable, complex or 1-bit."""
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is an empty file")
    try:
        with rasterio.open(path) as src:
            dtypes = set(src.dtypes)
            nbits = {src.tags(i, ns="IMAGE_STRUCTURE").get("NBITS") for i in range(1, src.count + 1)}
            shape = (src.height, src.width)
            crs = src.crs
    except RasterioIOError as e:
        raise InputError(f"{path} is not a readable raster: {str(e).splitlines()[0]}") from None
    if crs is None:  # as the reader says it, but before any input is worked on
        raise CrsError(f"{path} has no CRS; harborwatch needs georeferenced rasters")
    if 0 in shape:
        raise InputError(f"{path} has zero size ({shape[1]}x{shape[0]} px)")
    complex_ = sorted(d for d in dtypes if d.startswith("complex"))
    if complex_:
        raise InputError(
            f"{path} holds complex values ({complex_[0]}); optical detectors need real reflectance or DN"
        )
    if "bool" in dtypes or "1" in nbits:
        raise InputError(f"{path} is a 1-bit (mask) raster, not imagery")


_LAYER_NAMES = frozenset(S2_BANDS) | CATEGORICAL_LAYERS | {"VV", "VH", "HH", "HV"}

_STAMP_RE = re.compile(r"(?<!\d)(\d{8}T\d{6})(?!\d)")
#: Processing level in a Sentinel-2 name: a product ``S2A_MSIL1C_…(.SAFE)``, a granule folder
#: ``L1C_T51SWE_…``, an Earth Search item ``S2B_24MUV_20250731_0_L1C``.
_LEVEL_RE = re.compile(
    r"(?:^|_)MSI(L1C|L2A)(?:_|\.|$)|^(L1C|L2A)_T\d{2}[A-Z]{3}_|^S2[A-D]_\d{1,2}[A-Z]{3}_\d{8}_\d+_(L1C|L2A)(?:\.|$)"
)
_LEVEL_TAG_RE = re.compile(r"^(?:L|LEVEL-?)(1C|2A)$")
#: Folders above a file that may name its level (a band inside a SAFE is four below the product).
_LEVEL_DEPTH = 4


def processing_level(path: Path, tags: dict[str, str]) -> str | None:
    """``L1C`` or ``L2A`` from a raster's ``PROCESSING_LEVEL`` tag (``L1C``, as ``harborwatch fetch`` writes
    it, or ``Level-1C``) or from a Sentinel-2 name on its path: the file's, then up to four folders above
    it, up to and including a ``.SAFE`` folder; None when unknown."""
    m = _LEVEL_TAG_RE.match((tags.get("PROCESSING_LEVEL") or "").strip().upper())
    if m:
        return "L" + m.group(1)
    for part in (path, *list(path.parents)[:_LEVEL_DEPTH]):
        m = _LEVEL_RE.search(part.name)
        if m:
            return next(g for g in m.groups() if g)
        if part.suffix.upper() == ".SAFE":
            break
    return None


def file_metadata(path: Path) -> tuple[datetime | None, str | None, str | None]:
    """(acquisition time, scene id, processing level) from a raster's tags (``DATETIME``, ``SCENE_ID``,
    ``PROCESSING_LEVEL``, as ``harborwatch fetch`` writes them) or its name (a ``YYYYMMDDTHHMMSS`` stamp,
    ``MSIL1C``); None when unknown."""
    first = path
    if path.is_dir():
        product = product_of(safe_granule(path))
        if product is not None:  # a Sentinel-2 SAFE product or granule: its own metadata
            return product.datetime, product.scene_id, product.level
        files = sorted(find_band_files(path).values())
        if not files:
            return None, None, None
        first = files[0]
    tags: dict[str, str] = {}
    with contextlib.suppress(RasterioIOError), rasterio.open(first) as src:
        tags = src.tags()
    acquired = None
    text = tags.get("DATETIME") or ""
    with contextlib.suppress(ValueError):
        if text:
            acquired = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if acquired is None:
        m = _STAMP_RE.search(first.name)
        if m:
            acquired = datetime.strptime(m.group(1), "%Y%m%dT%H%M%S")
    if acquired is not None and acquired.tzinfo is None:
        acquired = acquired.replace(tzinfo=timezone.utc)  # Sentinel stamps and our tags are UTC
    scene_id = tags.get("SCENE_ID") or None
    if path.is_dir() and scene_id is None:
        scene_id = path.name
    return acquired, scene_id, processing_level(first.absolute(), tags)


def check_input(
    path: str | Path,
    bands: Sequence[str] | None = None,
    *,
    required: Sequence[str] = (),
    optional: Sequence[str] = (),
) -> list[str] | None:
    """Check an input without reading its pixels; return the bands to read (None: all).

    Raises InputError (or MissingBandsError naming the bands) for anything a user can fix, so a
    run over many inputs can refuse a bad one before spending time on the others.
    """
    path, wanted, files = resolve_input(path, bands)
    if files is not None:
        present = list(files)
        if wanted is None and required:
            wanted = list(dict.fromkeys([*required, *(b for b in optional if b in files)]))
        for b in wanted or files:
            if b in files:
                check_raster_file(files[b])
    else:
        check_raster_file(path)
        with rasterio.open(path) as src:
            described = [normalise_band_name(d) if d else "" for d in src.descriptions]
        # As open_raster: descriptions name the bands only when every one is a band name.
        named = all(d in _LAYER_NAMES for d in described)
        present = described if named else (wanted or [""])
    missing = [b for b in (*(wanted or ()), *required) if all(present) and b not in present]
    if missing:
        missing = list(dict.fromkeys(missing))
        raise MissingBandsError(missing, f"{path} (bands present: {', '.join(present)})")
    return wanted


def read_window(
    path: str | Path,
    bands: Sequence[str] | None = None,
    *,
    required: Sequence[str] = (),
    optional: Sequence[str] = (),
    scale: float | None = None,
) -> RasterWindow:
    """Read a multi-band GeoTIFF or a band folder onto its UTM 10 m grid for detection.

    ``bands`` names or selects bands as in ``open_raster``; without it, a band folder is read for
    ``required`` plus whichever ``optional`` bands it has. ``scale`` (reflectance per stored value)
    overrides the files' tags and the guess. Inputs are checked first (``check_input``). The window's
    ``processing_level`` comes from the tags or names (``processing_level``), so the ship model knows an
    L1C input (``detect.ships.segment.SegShipDetector``'s ``haze``).
    """
    path = Path(path)
    wanted = check_input(path, bands, required=required, optional=optional)
    acquired, scene_id, level = file_metadata(path)
    try:
        window = open_raster(path, wanted, acquired=acquired, scene_id=scene_id, scale=scale)
    except RasterReadError as e:
        raise InputError(str(e)) from None
    if level and not window.processing_level:
        window = replace(window, processing_level=level)
    missing = [b for b in required if b not in window.band_names]
    if missing:
        raise MissingBandsError(missing, f"{path} (bands read: {', '.join(window.band_names)})")
    return window
