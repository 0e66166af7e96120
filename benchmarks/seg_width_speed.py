"""CPU time of the ship segmentation network alone at other widths (``UNet(base=...)``), before training a
wider one: the issue's budget is 1.5 s per 1000 x 1000 px for the whole default detector, which with v6
(base 16) took 0.77 s (``benchmarks/detect_speed.py``). Untrained weights of each width (the compute is the
same), the network's ``probabilities`` over one encoded 1000 x 1000 px five-band scene, on onnxruntime (as
``auto`` runs it) and on torch; median of ``--repeat`` after one warm-up.

    python benchmarks/seg_width_speed.py [--bases 16,20,24] [--depths 4,5] [--threads 2] [--repeat 3]

``--depths``: U-Net levels (``UNet(depth=...)``), every width at each depth.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))  # _measure, also where the script is imported by path

from _measure import measure, table  # noqa: E402

from detect.ships.segment import SEG_BANDS, SegModel, SegSpec, UNet, encode, onnx_session  # noqa: E402

SIZE = 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bases", default="16,20,24")
    ap.add_argument("--depths", default="4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    refl = rng.uniform(0.0, 0.3, (len(SEG_BANDS), SIZE, SIZE)).astype(np.float32)
    x = encode(refl, SEG_BANDS)
    print(f"{a.threads} threads, {SIZE} x {SIZE} px, the network only, median of {a.repeat}\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp  # ONNX exports of untrained weights stay out of the user's cache
        shapes = [(int(b), int(d)) for d in a.depths.split(",") for b in a.bases.split(",")]
        for base, depth in shapes:
            net = UNet(base=base, depth=depth).eval()
            spec = SegSpec(name=f"w{base}d{depth}", base=base, depth=depth, sha256=f"{base:032d}{depth:032d}")
            params = sum(p.numel() for p in net.parameters())
            session = onnx_session(net, spec)

            def seconds(model: SegModel) -> str:
                # one warm-up first: onnxruntime's first run plans its memory, torch's picks kernels
                return f"{measure(lambda: model.probabilities(x), a.repeat).seconds:.2f}"

            ort = seconds(SegModel(net, spec, session=session)) if session is not None else "n/a"
            rows.append([base, depth, f"{params / 1e6:.2f} M", ort, seconds(SegModel(net, spec))])
    print(table(["base", "depth", "parameters", "onnxruntime s", "torch s"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
