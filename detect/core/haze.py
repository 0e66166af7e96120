"""Dark-object subtraction (Chavez 1988): take a scene's haze, or its top-of-atmosphere path radiance, off
each band by the level of its darkest pixels.

The ship models were trained on Level-2A (surface) reflectance, where clear water is the darkest thing in a
port scene: 0.005–0.03 in every band. A Level-1C (top-of-atmosphere) scene adds the light the air scatters
into the view, strongest in the blue (a Rayleigh path reflectance of ~0.06 in B02 and ~0.006 in B08 for a
sun 25° from zenith, more with aerosol). ``subtract_dark`` moves each band's dark level (a low percentile of
the window's valid pixels) back down to the level of clear water in the training scenes, and never raises a
band. It does not undo the loss of contrast through the air (the transmittance), which the training gains
cover in part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Percentile of a window's valid pixels that defines its dark level.
DARK_PERCENTILE = 0.5
#: A detector's ``haze`` setting: subtract on Level-1C windows (``auto``), on every window (``on``), never.
HAZE_MODES = ("auto", "on", "off")


def check_haze_mode(mode: str) -> str:
    """``mode`` if it is one of ``HAZE_MODES``, else ValueError."""
    if mode not in HAZE_MODES:
        raise ValueError(f"haze must be one of {', '.join(HAZE_MODES)}, not {mode!r}")
    return mode


def haze_applies(mode: str, reference: Mapping[str, float], processing_level: str | None) -> bool:
    """Whether a detector with ``haze`` ``mode`` and a spec's ``reference`` subtracts on a window of
    ``processing_level``: never without a reference or when off; always when on; on L1C when auto."""
    if not reference or mode == "off":
        return False
    return mode == "on" or (processing_level or "").upper() == "L1C"


def dark_levels(
    refl: np.ndarray, bands: Sequence[str], valid: np.ndarray, q: float = DARK_PERCENTILE
) -> dict[str, float]:
    """{band: the ``q``-th percentile of its finite values on ``valid``} of a (bands, H, W) array; a band
    with no such value is left out."""
    out = {}
    for i, b in enumerate(bands):
        v = refl[i][valid]
        v = v[np.isfinite(v)]
        if v.size:
            out[b] = float(np.percentile(v, q))
    return out


def subtract_dark(
    refl: np.ndarray,
    bands: Sequence[str],
    valid: np.ndarray,
    reference: Mapping[str, float],
    q: float = DARK_PERCENTILE,
) -> tuple[np.ndarray, dict[str, float]]:
    """(a copy of ``refl`` with each band of ``reference`` lowered by how far its dark level lies above the
    reference's, the offsets taken off). Bands not in ``reference``, and bands already at or below it, are
    left as they are; pixels off ``valid`` are not changed."""
    out = np.array(refl, dtype=np.float32, copy=True)
    offsets = {}
    for b, level in dark_levels(refl, bands, valid, q).items():
        if b not in reference:
            continue
        excess = level - float(reference[b])
        if excess > 0:
            i = list(bands).index(b)
            out[i] = np.where(valid, out[i] - excess, out[i])
            offsets[b] = excess
    return out, offsets
