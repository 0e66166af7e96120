"""COCO run-length encoded masks: decode (list, CVAT "[...]" text or COCO's compressed string) and encode.

COCO runs alternate background/foreground, start with background, and go down columns.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from imagery.errors import InputError


def _parse_counts(counts: Any) -> list[int]:
    """RLE counts as a list: COCO's compressed string, CVAT's "[1, 2, 3]" text, or a plain list."""
    if isinstance(counts, (list, tuple)):
        return [int(c) for c in counts]
    if not isinstance(counts, str):
        raise InputError(f"RLE counts must be a list or a string, got {type(counts).__name__}")
    text = counts.strip()
    if text.startswith("[") and text.endswith("]"):
        return [int(c) for c in re.findall(r"-?\d+", text)]
    return _decode_compressed_counts(text)


def _decode_compressed_counts(s: str) -> list[int]:
    """COCO's compressed RLE string (6 bits per char, offset 48; counts after the 2nd are deltas)."""
    out: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def _parse_size(size: Any) -> tuple[int, int]:
    if isinstance(size, str):
        size = [int(v) for v in re.findall(r"\d+", size)]
    h, w = (int(v) for v in size)
    return h, w


def decode_rle(segmentation: dict[str, Any]) -> np.ndarray:
    """A COCO RLE ``{"counts", "size": [h, w]}`` → bool mask (h, w).

    Runs alternate 0/1 (starting with 0) in column-major order.
    """
    h, w = _parse_size(segmentation["size"])
    counts = _parse_counts(segmentation["counts"])
    if any(c < 0 for c in counts) or sum(counts) != h * w:
        raise InputError(f"RLE counts sum to {sum(counts)}, expected {h}×{w}={h * w}")
    flat = np.zeros(h * w, dtype=bool)
    pos = 0
    for i, c in enumerate(counts):
        if i % 2:
            flat[pos : pos + c] = True
        pos += c
    return flat.reshape((w, h)).T


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """bool (height, width) mask → uncompressed COCO RLE (runs down columns, starting with zeros)."""
    flat = np.asarray(mask, bool).T.ravel()
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(r) for r in runs]}
