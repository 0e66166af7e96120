"""Training speed of the hull-segmentation ship model (``harborwatch train ships-seg``) on this machine.

    python benchmarks/seg_train_speed.py [--threads 2] [--repeat 10] [--data SEN2SHIPS --steps 60]

Part 1 times one optimiser step (a batch of 16 crops of 96 px, the shipped U-Net, its loss, AdamW) on
random input in four settings: fp32 in the default memory layout (training before session 12), fp32
channels-last, bf16 autocast, and bf16 channels-last (what ``--precision bf16`` runs now; fp32 now
runs channels-last too). Part 2 (with ``--data`` or ``$HARBORWATCH_DATA``; docs/data.md) runs the real
``detect.ships.segment_train.train`` for ``--steps`` steps on three sen2ships cities with copy-paste, so
crop sampling and augmentation are included, once per precision. Threads: ``--threads`` (one per run
when several runs share the cores, as the 5-fold CV does).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _measure import machine, measure, table  # noqa: E402


def cpu_has_bf16() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return "yes" if "avx512_bf16" in f.read() else "no (bf16 autocast may be slower than fp32 here)"
    except OSError:
        return "unknown"


def step_fn(channels_last: bool, bf16: bool):
    import torch

    from detect.ships.segment import SEG_BANDS, UNet
    from detect.ships.segment_train import optimiser_step

    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = UNet().to(memory_format=fmt).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x = torch.randn(16, 2 * len(SEG_BANDS), 96, 96).contiguous(memory_format=fmt)
    y = (torch.rand(16, 2, 96, 96) > 0.9).float()

    def step() -> float:  # the training loop's own step (``train`` calls the same function)
        return optimiser_step(model, opt, x, y, "bf16" if bf16 else "fp32").item()

    return step


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument(
        "--data", help="sen2ships trainval folder (default: $HARBORWATCH_DATA/sen2ships/trainval)"
    )
    ap.add_argument("--steps", type=int, default=60, help="steps of the real training loop per precision")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; torch {torch.__version__}, {args.threads} thread(s)")
    print(f"AVX512-BF16 in this CPU: {cpu_has_bf16()}\n")
    rows = []
    base = None
    for name, cl, bf in (
        ("fp32, default layout (before)", False, False),
        ("fp32, channels-last (`--precision fp32` now)", True, False),
        ("bf16 autocast, default layout", False, True),
        ("bf16 autocast, channels-last (`--precision bf16`)", True, True),
    ):
        m = measure(step_fn(cl, bf), repeat=args.repeat, warmup=2)
        base = base or m.seconds
        rows.append([name, f"{m.seconds:.3f}", f"{base / m.seconds:.2f}x", f"{m.peak_rss_mb:.0f}"])
    print("One optimiser step, batch 16 × 96 px, random input (median of --repeat):\n")
    print(table(["setting", "s/step", "speed-up", "peak RSS MB"], rows))

    data = args.data or (
        str(Path(os.environ["HARBORWATCH_DATA"]) / "sen2ships" / "trainval")
        if os.environ.get("HARBORWATCH_DATA")
        else None
    )
    if not data or not Path(data).is_dir():
        print("\nPart 2 skipped: no sen2ships data (--data or $HARBORWATCH_DATA; docs/data.md).")
        return 0
    from detect.ships.segment_train import SegTrainConfig, prepare, train

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "scenes"
        cities = prepare(Path(data), cache, ["valencia", "genoa", "klang"])
        for precision in ("fp32", "bf16"):
            cfg = SegTrainConfig(
                steps=args.steps, checkpoint_every=args.steps, p_paste=0.5, precision=precision
            )
            t0 = time.perf_counter()
            train(cache, cities, Path(tmp) / precision, cfg)
            dt = (time.perf_counter() - t0) / args.steps
            rows.append([precision, str(args.steps), f"{dt:.3f}", f"{dt * 1200 / 60:.1f}"])
    print(
        f"\nThe real training loop (`train`, copy-paste 0.5, cities {', '.join(cities)}; "
        "includes start-up):\n"
    )
    print(table(["precision", "steps", "s/step", "min per 1,200-step cycle"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
