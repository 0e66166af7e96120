"""Carry a prepared scene cache (``<city>.npz``, what ``harborwatch train ships-seg`` writes in
``OUT/scenes``) to a machine that takes a limited size per copy: pack it into parts of about equal size,
losslessly smaller (each fp16 image split into its high and low bytes, each xz-compressed: about 25 % under
the cache's npz), and unpack the parts there into an identical cache.

    python tools/gpu_lease/pack_scenes.py pack CACHE PARTS_DIR 2      # -> PARTS_DIR/part0/, part1/ (*.hwz)
    python tools/gpu_lease/pack_scenes.py unpack PARTS_DIR/part0 CACHE
"""

from __future__ import annotations

import io
import json
import lzma
import os
import sys
from pathlib import Path

import numpy as np


def pack_scene(npz: Path) -> bytes:
    """One prepared scene as bytes: a JSON header, the image's high and low bytes (xz), the other arrays
    (npz)."""
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    img = arrays.pop("image")
    if img.dtype != np.float16:
        raise ValueError(f"{npz}: image is {img.dtype}, not float16")
    u = img.view(np.uint16)
    hi = lzma.compress((u >> 8).astype(np.uint8).tobytes())
    lo = lzma.compress((u & 255).astype(np.uint8).tobytes())
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    rest = buf.getvalue()
    head = json.dumps({"shape": list(img.shape), "n": [len(hi), len(lo), len(rest)]}).encode()
    return len(head).to_bytes(4, "little") + head + hi + lo + rest


def unpack_scene(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of one packed scene (inverse of ``pack_scene``)."""
    n = int.from_bytes(data[:4], "little")
    head = json.loads(data[4 : 4 + n])
    a, b, c = head["n"]
    o = 4 + n
    hi = np.frombuffer(lzma.decompress(data[o : o + a]), np.uint8).astype(np.uint16)
    lo = np.frombuffer(lzma.decompress(data[o + a : o + a + b]), np.uint8).astype(np.uint16)
    with np.load(io.BytesIO(data[o + a + b : o + a + b + c])) as z:
        rest = {k: z[k] for k in z.files}
    return {"image": ((hi << 8) | lo).view(np.float16).reshape(head["shape"]), **rest}


def pack(cache: Path, out: Path, parts: int) -> list[int]:
    """Every scene of ``cache`` into ``out/part<i>/<city>.hwz`` (parts emptied first): the eotdl mosaic into
    part 0, which the first call unpacks (a probe with eotdl arms needs it), then the largest first into the
    smallest part. Half-written files (``*.tmp.npz``) are left out."""
    sizes = [0] * parts
    for old in out.glob("part*/*.hwz"):
        old.unlink()
    scenes = [p for p in cache.glob("*.npz") if ".tmp" not in p.name]
    for npz in sorted(scenes, key=lambda p: (p.stem != "eotdl", -p.stat().st_size)):
        i = 0 if npz.stem == "eotdl" else sizes.index(min(sizes))
        dest = out / f"part{i}" / f"{npz.stem}.hwz"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(pack_scene(npz))
        sizes[i] += dest.stat().st_size
    return sizes


def unpack(part: Path, cache: Path) -> list[str]:
    """The scenes of one part into ``cache/<city>.npz``."""
    cache.mkdir(parents=True, exist_ok=True)
    done = []
    for p in sorted(part.glob("*.hwz")):
        tmp = cache / f"{p.stem}.unpack.tmp.npz"
        np.savez(tmp, **unpack_scene(p.read_bytes()))
        os.replace(tmp, cache / f"{p.stem}.npz")  # whole or not at all
        done.append(p.stem)
    return done


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "pack":
        sizes = pack(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        print("parts (MB):", " ".join(f"{s / 1e6:.1f}" for s in sizes))
    elif len(sys.argv) == 4 and sys.argv[1] == "unpack":
        print("unpacked:", " ".join(unpack(Path(sys.argv[2]), Path(sys.argv[3]))))
    else:
        sys.exit(__doc__)
