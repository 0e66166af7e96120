"""CPU time of the ship segmentation network alone at other widths (``UNet(base=...)``), before training a
wider one: the issue's budget is 1.5 s per 1000 x 1000 px for the whole default detector, which with v6
(base 16) took 0.77 s (``benchmarks/detect_speed.py``). Untrained weights of each width (the compute is the
same), the network's ``probabilities`` over one encoded 1000 x 1000 px five-band scene, on onnxruntime (as
``auto`` runs it) and on torch; median of ``--repeat`` after one warm-up.

    python benchmarks/seg_width_speed.py [--bases 16,20,24] [--depths 4,5] [--encoders efficientnet-b4]
                                         [--threads 2] [--repeat 3]

``--depths``: U-Net levels (``UNet(depth=...)``), every width at each depth. ``--encoders``: also the U-Net on
a pretrained encoder (``detect.ships.effnet``; its shape is fixed, so one row each), with a check that
onnxruntime's probabilities are torch's.
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

from detect.ships.segment import SEG_BANDS, SegModel, SegSpec, encode, onnx_session, seg_network  # noqa: E402

SIZE = 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bases", default="16,20,24")
    ap.add_argument("--depths", default="4")
    ap.add_argument("--encoders", default="", help="comma-separated: pretrained-encoder networks too")
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
        shapes = [(int(b), int(d), "") for d in a.depths.split(",") for b in a.bases.split(",")]
        shapes += [(16, 4, e) for e in a.encoders.split(",") if e]
        for base, depth, enc in shapes:
            net = seg_network(base, depth, enc).eval()
            tag = f"{base:032d}{depth:032d}" if not enc else enc.encode().hex().ljust(64, "0")[:64]
            spec = SegSpec(name=enc or f"w{base}d{depth}", base=base, depth=depth, encoder=enc, sha256=tag)
            params = sum(p.numel() for p in net.parameters())
            session = onnx_session(net, spec)

            def seconds(model: SegModel) -> str:
                # one warm-up first: onnxruntime's first run plans its memory, torch's picks kernels
                return f"{measure(lambda: model.probabilities(x), a.repeat).seconds:.2f}"

            ort = seconds(SegModel(net, spec, session=session)) if session is not None else "n/a"
            if enc and session is not None:  # the exported graph computes what torch does
                crop = x[:, :256, :256]
                by_ort = SegModel(net, spec, session=session).probabilities(crop)
                diff = np.abs(by_ort - SegModel(net, spec).probabilities(crop)).max()
                print(f"{enc}: onnxruntime against torch, 256 x 256 px: probabilities within {diff:.1e}")
            shape = [base, depth] if not enc else [enc, "-"]
            rows.append([*shape, f"{params / 1e6:.2f} M", ort, seconds(SegModel(net, spec))])
    print(table(["base", "depth", "parameters", "onnxruntime s", "torch s"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
