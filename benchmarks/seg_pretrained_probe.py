"""Does a pretrained encoder help the ship segmenter on cities it never saw? The probe (session 22) that led
to ``harborwatch train ships-seg --encoder efficientnet-b4`` (``detect.ships.effnet``), kept to reproduce its
runs and to carry them over (``export``).

The only Sentinel-2 encoder with pretrained weights that this project can install (PyPI, nothing fetched at
run time) is the one inside ukis-csmask (DLR, Apache-2.0; Wieland et al. 2019, RSE 230): a U-Net on an
EfficientNet-B4 encoder, ImageNet weights fine-tuned on Sentinel-2 and Landsat cloud and cloud-shadow masks,
4 bands (blue, green, red, NIR) of L2A reflectance at ~30 m, shipped as ONNX. Its encoder's weights load by
name into ``segmentation_models_pytorch.Unet("efficientnet-b4")``. This script trains that encoder
(to its stride-16 stage, ``--encoder-depth``) with a new decoder and v6's first stage (copy-paste 0.5, one
1,200-step cosine cycle, bf16, seed 0: the same crops as the stem ``s0`` of ``seg_cv_parallel.py``), each fold
in its own process, and scores the folds as ``seg_cv_rescore.py`` does (inner-split thresholds). Compare with
that stem's ``cycle-001200.pt`` scored the same way.

    pip install -e ".[pretrained-probe]"   # segmentation-models-pytorch, ukis-csmask
    python benchmarks/seg_pretrained_probe.py train --cache S --out R/pt --fold 0 [--threads 1]   # each fold
    python benchmarks/seg_pretrained_probe.py score --cache S --run R/pt --out pt-1200 [--variants default]
    python benchmarks/ship_cv_seg.py --cv-dir pt-1200 --cv-dir s0-1200
    python benchmarks/seg_pretrained_probe.py export --run R/pt --out RUN   # for harborwatch train ships-seg

The network takes the project's encoded input (``detect.ships.segment.encode``): the four bands go to the
pretrained stem normalised with ukis-csmask's statistics (an absent band at its mean), and all ten channels
(B11 and the presence flags too) through a zero-initialised convolution added to the stem's output, so the
encoder starts as the pretrained one (the decoder is new). The encoder learns at ``--encoder-lr-scale`` (0.1)
of the recipe's rate. ``train --no-pretrained --encoder-lr-scale 1.0`` is the control: the same network from
random weights, at the recipe's rate. ``detect.ships.effnet.EffUNet`` is this network without the stride-32
stage (which smp's encoder computes here and nothing reads): the same outputs and gradients from the same
weights (checked to the bit, session 23). For speed use ``seg_width_speed.py --encoders efficientnet-b4``.
Known offset: the stem pads a 96 px crop by (0, 1) (TensorFlow's
"same"), the added convolution by 1 on each side, so the two sample the input one pixel apart (learnable; kept
so that runs compare).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

#: ukis-csmask's 4-band L2A model and the band statistics its json gives (mean, std of blue, green, red, NIR).
CSMASK_MODEL = "model_4b_l2a"
INSTALL = 'pip install -e ".[pretrained-probe]"'


def csmask_files() -> tuple[Path, Path]:
    try:
        import ukis_csmask
    except ImportError:
        sys.exit(f"seg_pretrained_probe: needs ukis-csmask ({INSTALL})")
    root = Path(ukis_csmask.__file__).parent
    return root / f"{CSMASK_MODEL}.onnx", root / f"{CSMASK_MODEL}.json"


class PretrainedSeg(nn.Module):
    """ukis-csmask's EfficientNet-B4 encoder under a new U-Net decoder; input and output as ``UNet``'s."""

    def __init__(self, encoder_depth: int = 4, pretrained: bool = True) -> None:
        super().__init__()
        import json

        try:
            import segmentation_models_pytorch as smp
        except ImportError:
            sys.exit(f"seg_pretrained_probe: needs segmentation-models-pytorch ({INSTALL})")

        from detect.ships.segment import SEG_BANDS

        dec = (256, 128, 64, 32, 16)[-encoder_depth:]
        self.net = smp.Unet(
            "efficientnet-b4",
            encoder_weights=None,
            in_channels=4,
            classes=2,
            encoder_depth=encoder_depth,
            decoder_channels=dec,
        )
        onnx_path, json_path = csmask_files()
        mean, std = json.loads(json_path.read_text())["data"]["dataset_statistics"]["img"]
        self.register_buffer("mean", torch.tensor(mean).view(1, 4, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 4, 1, 1))
        self.idx = [SEG_BANDS.index(b) for b in ("B02", "B03", "B04", "B08")]
        self.n = len(SEG_BANDS)
        stem = self.net.encoder._conv_stem
        self.extra = nn.Conv2d(2 * self.n, stem.out_channels, 3, stride=2, padding=1, bias=False)
        nn.init.zeros_(self.extra.weight)
        self._extra_out: torch.Tensor | None = None
        stem.register_forward_hook(self._add_extra)
        for q in self.net.encoder.parameters():
            q.encoder_param = True  # read by ScaledAdamW
        self.loaded = self.load_csmask(onnx_path) if pretrained else 0

    def load_csmask(self, onnx_path: Path) -> int:
        """The encoder's weights from ukis-csmask's ONNX model (by name); how many tensors were loaded."""
        import onnx
        from onnx import numpy_helper

        init = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(onnx_path)).graph.initializer}
        sd = self.net.encoder.state_dict()
        loaded = 0
        for k in sd:
            src = init.get(f"model.encoder.{k}")
            if src is None:
                continue
            if tuple(src.shape) != tuple(sd[k].shape):
                raise SystemExit(f"seg_pretrained_probe: {k}: {src.shape} in ukis-csmask, {sd[k].shape} here")
            sd[k] = torch.from_numpy(np.array(src))
            loaded += 1
        self.net.encoder.load_state_dict(sd)
        if loaded < 0.9 * len([k for k in sd if not k.endswith("num_batches_tracked")]):
            raise SystemExit(f"seg_pretrained_probe: only {loaded} encoder tensors found in {onnx_path}")
        return loaded

    def _add_extra(self, module: nn.Module, inp: tuple, out: torch.Tensor) -> torch.Tensor:
        e = self._extra_out
        return out if e is None else out + e.to(out.dtype)  # both ceil(H/2) x ceil(W/2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.n
        refl = (x[:, self.idx] / 3.0) ** 2
        present = x[:, [n + i for i in self.idx]]
        z = (refl - self.mean) / self.std * present
        self._extra_out = self.extra(x)
        try:
            return self.net(z)
        finally:
            self._extra_out = None


def install(encoder_depth: int, lr_scale: float, pretrained: bool = True) -> None:
    """Make the project's trainer and scorers build ``PretrainedSeg`` wherever they build ``UNet``, and its
    AdamW train the encoder at ``lr_scale`` of the rate it sets."""
    import detect.ships.segment as seg
    import detect.ships.segment_train as st

    def factory(base: int = 16, depth: int = 4, **_: object) -> nn.Module:
        return PretrainedSeg(encoder_depth, pretrained=pretrained)

    seg.UNet = factory
    st.UNet = factory

    class ScaledAdamW(torch.optim.AdamW):
        def __init__(self, params, **kw):
            # train() passes one group (the plain U-Net's): its parameters, split here
            params = [q for g in params for q in (g["params"] if isinstance(g, dict) else [g])]
            enc = [p for p in params if getattr(p, "encoder_param", False)]
            rest = [p for p in params if not getattr(p, "encoder_param", False)]
            if not enc or not rest:
                raise SystemExit(
                    "seg_pretrained_probe: the encoder's parameters were not found for their rate"
                )
            groups = [{"params": rest, "scale": 1.0}, {"params": enc, "scale": lr_scale}]
            super().__init__([{**g, "lr_scale": 1.0} for g in groups], **kw)  # train()'s scale: none

        def load_state_dict(self, state):  # a resumed run keeps the encoder rate it began with
            was = [g.get("scale") for g in state["param_groups"]]
            if was != [1.0, lr_scale]:
                raise SystemExit(f"seg_pretrained_probe: the checkpoint was trained with scales {was}")
            super().load_state_dict(state)

        def step(self, closure=None):
            lrs = [g["lr"] for g in self.param_groups]
            for g in self.param_groups:
                g["lr"] = g["lr"] * g["scale"]
            try:
                return super().step(closure)
            finally:
                for g, lr in zip(self.param_groups, lrs, strict=True):
                    g["lr"] = lr

    st.torch.optim.AdamW = ScaledAdamW  # this process only: it trains nothing else


def export(run: Path, out: Path) -> int:
    """The probe's runs (``run/fold<k>``, ``run/final``) as runs of ``harborwatch train ships-seg --encoder
    efficientnet-b4`` in ``out``: every weights file and checkpoint converted to
    ``detect.ships.effnet.EffUNet`` (``from_smp_state``: the same network less the stride-32 stage, whose
    output the probe computed and never used), the optimiser's encoder group cut to the parameters kept.
    The same outputs and gradients; a continued run draws other stochastic-depth masks than the probe would
    have (its stride-32 blocks drew random numbers too): equal in distribution, not bit for bit."""
    from detect.ships.effnet import EffUNet
    from detect.ships.segment import SEG_BANDS

    net = EffUNet(SEG_BANDS)
    n_enc = sum(1 for _ in net.encoder.parameters())
    n_rest = sum(1 for _ in net.parameters()) - n_enc
    if not run.is_dir():
        sys.exit(f"seg_pretrained_probe: no run folder {run}")
    done = 0
    runs = [d for d in run.iterdir() if d.is_dir() and (d.name == "final" or d.name.startswith("fold"))]
    if not runs:
        sys.exit(f"seg_pretrained_probe: {run} holds no fold<k> or final folder of the probe")
    for src in sorted(runs):
        dst = out / src.name
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.glob("*.pt")):
            try:
                st = convert(torch.load(f, map_location="cpu", weights_only=False), n_rest, n_enc)
            except (OSError, RuntimeError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as e:
                sys.exit(f"seg_pretrained_probe: {f}: not a probe checkpoint or weights file ({e})")
            torch.save(st, dst / f.name)
            done += 1
    print(f"{done} files converted into {out}")
    return 0


def convert(st: dict, n_rest: int, n_enc: int) -> dict:
    """One probe weights file or checkpoint (``export``) in ``EffUNet``'s terms (ValueError: not one)."""
    from detect.ships.effnet import from_smp_state

    if "model" not in st:
        return from_smp_state(st)
    st["model"] = from_smp_state(st["model"])  # a checkpoint: weights, optimiser, step, random states
    groups = st["opt"]["param_groups"]
    if len(groups) != 2 or any("scale" not in g for g in groups):
        raise ValueError("its optimiser is not the probe's (two groups with their scale)")
    rest, enc = groups
    if len(rest["params"]) != n_rest or len(enc["params"]) < n_enc:
        raise ValueError(f"optimiser groups of {len(rest['params'])} and {len(enc['params'])} parameters")
    enc["params"] = enc["params"][:n_enc]  # the encoder's parameters come first, in EffUNet's order
    keep = set(rest["params"]) | set(enc["params"])
    st["opt"]["state"] = {i: v for i, v in st["opt"]["state"].items() if i in keep}
    for g in groups:
        g["lr_scale"] = g.pop("scale")
    return st


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="one fold (or 'final') of the probe")
    t.add_argument("--cache", type=Path, required=True, help="a prepared scene cache (OUT/scenes of a run)")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--fold", required=True, help="0..4 or final")
    t.add_argument("--steps", type=int, default=1200)
    t.add_argument("--threads", type=int, default=1)
    x = sub.add_parser("export", help="as runs of harborwatch train ships-seg --encoder efficientnet-b4")
    x.add_argument("--run", type=Path, required=True, help="the --out of train")
    x.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("score", help="score the trained folds as seg_cv_rescore.py does")
    s.add_argument("--cache", type=Path, required=True)
    s.add_argument("--run", type=Path, required=True, help="the --out of train")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--step", type=int, default=1200)
    s.add_argument("--variants", default="default")
    s.add_argument("--folds", default="0,1,2,3,4")
    s.add_argument("--threads", type=int, default=2)
    for p in (t, s):
        p.add_argument("--encoder-depth", type=int, default=4)
        p.add_argument("--encoder-lr-scale", type=float, default=0.1)
    t.add_argument(
        "--no-pretrained", action="store_true", help="the control: the same network from random weights"
    )
    a = ap.parse_args(argv)
    if a.cmd == "export":
        return export(a.run, a.out)
    install(a.encoder_depth, a.encoder_lr_scale, pretrained=not getattr(a, "no_pretrained", False))
    torch.set_num_threads(a.threads)
    if a.cmd == "train":
        from seg_cv_parallel import fold_cities

        from detect.ships.segment_train import SegTrainConfig, train

        cities, plan = fold_cities(a.cache, 5)
        fit = cities if a.fold == "final" else plan[int(a.fold)]["fit"]
        cfg = SegTrainConfig(steps=a.steps, cycle=1200, p_paste=0.5, precision="bf16", seed=0)
        out = a.out / ("final" if a.fold == "final" else f"fold{a.fold}")
        train(a.cache, fit, out, cfg, progress=lambda m: print(m, flush=True))
        return 0
    run = a.run.resolve()
    if not (run / "scenes").exists():
        (run / "scenes").symlink_to(a.cache.resolve())
    import seg_cv_rescore

    return seg_cv_rescore.main(
        [
            "--cv-dir", str(run), "--out", str(a.out), "--step", str(a.step), "--paste", "0.5",
            "--cycle", "1200", "--variants", a.variants, "--folds", a.folds, "--threads", str(a.threads),
        ]
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
