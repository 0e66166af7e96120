"""Band selection and normalisation from reflectance to the uint8 chips a model was trained on.

The mapping is a fixed reflectance range per band with a gamma curve, the same for every scene:
a per-scene stretch would change a ship's brightness with whatever else is in the window (land,
cloud). L1C top-of-atmosphere scenes are brighter, most in the blue: the YOLO model's haze
augmentation covers part of that (measured on simulated L1C in weights/ships-s2.md); the segmentation
model takes the haze off L1C windows first (``detect.core.haze``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from imagery.errors import InputError
from imagery.types import RasterWindow

if TYPE_CHECKING:
    from detect.core.weights import ModelSpec

#: Reflectance mapped to 255 before the gamma curve. Bright hulls/decks reach 0.2–0.35 in the visible
#: and more in NIR; water sits at 0.005–0.05, where gamma 0.5 spreads it over ~0–100 so wakes and
#: low-contrast hulls stay visible.
DEFAULT_HI = {"B02": 0.30, "B03": 0.30, "B04": 0.30, "B08": 0.45, "B8A": 0.45, "B11": 0.40, "B12": 0.35}
DEFAULT_GAMMA = 0.5
METHOD = "fixed-gamma"

RGB = ("B04", "B03", "B02")
RGBN = ("B04", "B03", "B02", "B08")


def default_normalisation(bands: tuple[str, ...] | list[str], gamma: float = DEFAULT_GAMMA) -> dict[str, Any]:
    """The fixed-range gamma normalisation for ``bands`` (JSON-serialisable, stored in the model spec)."""
    unknown = [b for b in bands if b not in DEFAULT_HI]
    if unknown:
        raise InputError(
            f"no default reflectance range for band(s) {', '.join(unknown)}; known: {', '.join(DEFAULT_HI)}"
        )
    return {
        "method": METHOD,
        "lo": [0.0 for _ in bands],
        "hi": [DEFAULT_HI[b] for b in bands],
        "gamma": gamma,
    }


def normalise(reflectance: np.ndarray, normalisation: dict[str, Any]) -> np.ndarray:
    """(C, H, W) reflectance 0–1 → (H, W, C) uint8 with the fixed-range gamma curve; NaN (no data) → 0."""
    if normalisation.get("method") != METHOD:
        raise InputError(f"unknown normalisation method {normalisation.get('method')!r}; expected {METHOD!r}")
    x = np.asarray(reflectance, dtype=np.float32)
    if x.ndim != 3:
        raise InputError(f"reflectance must be (bands, height, width), got shape {x.shape}")
    lo = np.asarray(normalisation["lo"], np.float32)[:, None, None]
    hi = np.asarray(normalisation["hi"], np.float32)[:, None, None]
    if len(lo) != x.shape[0] or len(hi) != x.shape[0]:
        raise InputError(f"normalisation is for {len(lo)} bands, data has {x.shape[0]}")
    y = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    y = np.nan_to_num(y, nan=0.0)
    y = np.power(y, float(normalisation.get("gamma", 1.0)))
    return np.ascontiguousarray(np.rint(y * 255.0).astype(np.uint8).transpose(1, 2, 0))


def to_model_input(window: RasterWindow, spec: ModelSpec) -> np.ndarray:
    """The window's pixels as the model's (H, W, C) uint8 input, on the window's own grid.

    Bands are taken in ``spec.bands`` order; a window lacking any raises MissingBandsError naming them.
    """
    return normalise(window.select(spec.bands), spec.normalisation)
