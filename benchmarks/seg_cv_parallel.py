"""Train the folds of one or more leave-cities-out CV runs of the ship segmentation model side by side, one
process per fold (and per final model), on one GPU or on CPU cores: v6's recipe in its three stages, as
``benchmarks/seg_cv_gpu.sh`` runs it (copy-paste for the first two cycles, repaint and wakes up to the last
cycle, hard negatives in the last), from an already prepared scene cache; on CUDA in true fp32 (TF32 off,
where the CLI keeps torch's default). It only trains: score the folds
afterwards, where the sen2ships files are, with ``benchmarks/seg_cv_rescore.py --step STEPS`` and tabulate
them with ``benchmarks/ship_cv_seg.py``.

An arm is one run of the recipe:
``NAME[:seed=N][:eotdl][:quay=P][:haze=P][:hard=P][:base=W][:depth=D][:from=ARM]`` (``quay=P``: that share of
the pasted hulls berthed along a quay, ``--quay-paste`` of the CLI, in every stage; ``haze=P``: that share
of crops under thin haze, ``--haze``, in every stage, for Level-1C input (score its L1C side with
``seg_toa.py``, and rescore with ``seg_cv_rescore.py --haze P``); ``hard=P``: that share of crops on hard
negatives in the last stage instead of ``--hard-negatives``; ``base=W``: the U-Net's width, ``--base``,
16 by default; score it with ``seg_cv_rescore.py --base W``; ``depth=D``: the U-Net's levels, 4 by default,
5 doubles the receptive field; score it with ``seg_cv_rescore.py --depth D``). Two seeds of each arm, for
instance, give the lever and the spread between runs of one recipe in one sitting:

    python benchmarks/seg_cv_parallel.py --cache RUNS/seg/scenes --out RUNS/par --device cuda:0 \\
        --arm ctl0:seed=0 --arm ctl1:seed=1 --arm eot0:seed=0:eotdl --arm eot1:seed=1:eotdl --final eot0

``--encoder efficientnet-b4`` trains the pretrained-encoder network (``ships-s2-seg-b4``) in every arm;
its v2 recipe is the first two stages of a 4,800-step run, in bf16 (another seed of it, as an ensemble
member, with the weights packed in float16 to come back from a GPU machine):

    python benchmarks/seg_cv_parallel.py --cache C --out R --device cuda:0 --encoder efficientnet-b4 \\
        --precision bf16 --steps 4800 --stop-at 3600 --arm b1:seed=1 --final b1 --pack P --pack-half

**Paired arms** share everything up to a step and differ after it: train a stem arm to a stage end with
``--stop-at`` (6,000: the end of the repaint-and-wakes stage), then arms with ``from=STEM`` start from the
stem's checkpoint of each job (weights and optimiser; crops drawn from the arm's own seed from there, so
arms of one seed draw the same ones) and train only what is left, e.g. the last cycle with and without
a lever:

    python benchmarks/seg_cv_parallel.py --cache C --out R --arm s0:seed=0 --stop-at 6000
    python benchmarks/seg_cv_parallel.py --cache C --out R --arm c0:seed=0:from=s0 \\
        --arm h0:seed=0:haze=0.3:from=s0

A branch is a sixth of a whole run, but it does not remove the noise: in session 18 two control branches of
one stem (crops of seed 0 and 1) differed by 0.015 pooled F1 and by up to 0.11 in one fold, as whole runs do
(sd 0.022). Compare a lever over several crop seeds of its branch and of the control (see the ship card).

Every process checkpoints (``train`` resumes): a rerun with the same ``--out`` continues. ``--deadline S``
stops the workers after S seconds; ``--pack DIR`` then writes one tar per arm into DIR (more, ``<arm>.1.tar``
and on, where one would pass 15 MiB; ``--pack-half`` stores the weights in float16, for networks whose file
alone passes it, like the pretrained-encoder one of ``--encoder efficientnet-b4``) with each fold's latest
cycle-end weights and log (``fold<k>/cycle-<step>.pt``), as ``seg_cv_rescore.py`` reads them once unpacked
into a run folder beside a ``scenes/`` link. The cache is what ``harborwatch train ships-seg`` prepares in
``OUT/scenes`` (the 15 sen2ships cities, and ``eotdl.npz`` for ``--eotdl`` arms).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_arm(text: str) -> dict:
    """``NAME[:seed=N][:eotdl][:quay=P][:haze=P][:hard=P][:base=W][:depth=D][:from=ARM]`` → {"name", "seed",
    "eotdl", "quay", "haze", "hard" (None: ``--hard-negatives``), "base", "depth", "from"}."""
    name, *opts = text.split(":")
    arm = {
        "name": name,
        "seed": 0,
        "eotdl": False,
        "quay": 0.0,
        "haze": 0.0,
        "hard": None,
        "base": 16,
        "depth": 4,
        "from": None,
    }
    for o in opts:
        key = o.split("=", 1)[0]
        if o == "eotdl":
            arm["eotdl"] = True
        elif o.startswith("from=") and o[5:]:
            arm["from"] = o[5:]
        elif o.startswith("seed=") and o[5:].isdigit():
            arm["seed"] = int(o[5:])
        elif o.startswith("base=") and o[5:].isdigit() and 4 <= int(o[5:]) <= 64:
            arm["base"] = int(o[5:])
        elif o.startswith("depth=") and o[6:].isdigit() and 2 <= int(o[6:]) <= 6:
            arm["depth"] = int(o[6:])
        elif key in ("quay", "haze", "hard") and "=" in o:
            value = o.split("=", 1)[1]
            try:
                arm[key] = float(value)
            except ValueError:
                arm[key] = -1.0
            if not 0 <= arm[key] <= 1:
                raise SystemExit(f"seg_cv_parallel: {key}= is a share from 0 to 1, not {value!r} in {text!r}")
        else:
            raise SystemExit(f"seg_cv_parallel: unknown arm option {o!r} in {text!r}")
    if not name.replace("-", "").replace("_", "").isalnum():
        raise SystemExit(f"seg_cv_parallel: an arm's name is letters, digits, - and _: {name!r}")
    return arm


def stages(steps: int, cycle: int) -> list[int]:
    """The stage ends of seg_cv_gpu.sh: two cycles of copy-paste, repaint and wakes to the last cycle, the
    last cycle with hard negatives (one stage when there are fewer than four cycles)."""
    if cycle < 1:
        raise SystemExit("seg_cv_parallel: --cycle must be at least 1 (the recipe's stages are whole cycles)")
    if steps % cycle:
        raise SystemExit(f"seg_cv_parallel: --steps {steps} is not a whole number of cycles ({cycle})")
    return [2 * cycle, steps - cycle, steps] if steps >= 4 * cycle else [steps]


def stop_at(ends: list[int], step: int | None) -> list[int]:
    """The stage ends to train when stopping after ``step`` (None: all); ``step`` must be one of them."""
    if step is None:
        return ends
    if step not in ends:
        raise SystemExit(
            f"seg_cv_parallel: --stop-at {step} is not a stage end ({', '.join(map(str, ends))})"
        )
    return ends[: ends.index(step) + 1]


def branch(out: Path, arm: dict, job: str) -> None:
    """Start ``job`` of an arm with ``from=STEM`` from the stem's checkpoint (weights, optimiser), cycle-end
    weights and hard negatives, with random states drawn afresh from the arm's seed and the stem's step: arms
    of one seed draw the same crops from there (paired), another seed gives the spread of what is left alone.
    Once: a job that has its own checkpoint resumes from it."""
    import shutil

    import torch

    from detect.ships.segment_train import branch_checkpoint, branch_draw

    here, stem = job_dir(out, arm["name"], job), job_dir(out, arm["from"], job)
    if (here / "checkpoint.pt").is_file():
        return
    if not (stem / "checkpoint.pt").is_file():
        raise SystemExit(f"seg_cv_parallel: {arm['name']} starts from {stem}, which has no checkpoint.pt")
    here.mkdir(parents=True, exist_ok=True)
    for p in sorted(stem.glob("cycle-[0-9]*.pt")):
        shutil.copy2(p, here / f".{p.name}.part")
        os.replace(here / f".{p.name}.part", here / p.name)
    st = torch.load(stem / "checkpoint.pt", map_location="cpu", weights_only=False)
    # the hard negatives, then the checkpoint last: a job killed before it copies again
    branch_checkpoint(stem, here, branch_draw(arm["seed"], int(st["step"])), st)


def mine_for_branches(a: argparse.Namespace, arm: dict, job: str) -> None:
    """Mine the hard negatives of ``job``'s last stage once, from the checkpoint of ``arm``'s stem, into the
    stem's folder, so that every arm branching there copies them instead of mining the same ones (mining
    depends only on the weights). Nothing to do where the stem has them, was not stopped at a stage end before
    the last stage, or ``arm`` trains no hard negatives."""
    import torch

    from detect.ships.segment_train import TrainingScenes, network, use_hard_negatives

    d, ends = job_dir(a.out, arm["from"], job), stages(a.steps, a.cycle)
    cfg = stage_config(a, arm, len(ends) - 1, ends)
    if cfg.p_hard <= 0 or (d / "hard_negatives.json").is_file() or not (d / "checkpoint.pt").is_file():
        return
    st = torch.load(d / "checkpoint.pt", map_location="cpu", weights_only=False)
    if int(st["step"]) not in ends[:-1]:
        return
    cities, plan = fold_cities(a.cache, a.k)
    fit = cities if job == "final" else plan[int(job)]["fit"]
    model = network(cfg)
    model.load_state_dict(st["model"])
    scenes = TrainingScenes(a.cache, fit + (["eotdl"] if arm["eotdl"] else []))
    use_hard_negatives(model.to(a.device).eval(), scenes, d, int(st["step"]), cfg, a.device)


def stage_config(a: argparse.Namespace, arm: dict, i: int, ends: list[int]):
    from detect.ships.segment_train import SegTrainConfig

    one = len(ends) == 1
    hard = a.hard_negatives if arm.get("hard") is None else arm["hard"]
    return SegTrainConfig(
        steps=ends[i],
        cycle=a.cycle,
        p_paste=a.paste,
        p_colour=a.hull_colour if (i > 0 or one) else 0.0,
        p_wake=a.wakes if (i > 0 or one) else 0.0,
        p_hard=hard if (i == len(ends) - 1 and not one) else 0.0,
        precision=a.precision,
        seed=arm["seed"],
        eotdl=arm["eotdl"],
        p_quay=arm.get("quay", 0.0),
        p_haze=arm.get("haze", 0.0),
        base=arm.get("base", 16),
        depth=arm.get("depth", 4),
        encoder=a.encoder,
        encoder_lr=a.encoder_lr,
    )


def fold_cities(cache: Path, k: int) -> tuple[list[str], list[dict]]:
    """The sen2ships cities in the cache and their folds, exactly as ``cv_setup`` makes them."""
    from detect.ships.segment_train import fold_plan

    cities = sorted(p.stem for p in cache.glob("*.npz") if p.stem != "eotdl" and ".tmp" not in p.name)
    if not cities:
        raise SystemExit(f"seg_cv_parallel: no prepared scenes in {cache}")
    return cities, fold_plan(cities, k)


def job_dir(out: Path, arm: str, job: str) -> Path:
    """Where one job trains: ``out/<arm>/fold<k>`` or ``out/<arm>/final``."""
    return out / arm / ("final" if job == "final" else f"fold{job}")


def worker(a: argparse.Namespace, arm: dict, job: str) -> int:
    """One fold (``job`` = its number) or the final model (``job`` = "final") of one arm, stage by stage."""
    import torch

    from detect.ships.segment_train import train

    torch.set_num_threads(a.threads)
    if a.device.startswith("cuda"):  # true fp32, as on CPU (TF32 convolutions are cuDNN's default)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    cities, plan = fold_cities(a.cache, a.k)
    fit = cities if job == "final" else plan[int(job)]["fit"]
    fit = fit + (["eotdl"] if arm["eotdl"] else [])
    out = job_dir(a.out, arm["name"], job)
    ends = stages(a.steps, a.cycle)
    if arm["from"]:
        branch(a.out, arm, job)
    t0 = time.time()
    for i in range(len(stop_at(ends, a.stop_at))):
        ts = time.time()
        train(a.cache, fit, out, stage_config(a, arm, i, ends), device=a.device, progress=print)
        print(f"{arm['name']} {job}: stage to step {ends[i]} took {time.time() - ts:.1f} s", flush=True)
    print(f"{arm['name']} {job}: done in {time.time() - t0:.0f} s", flush=True)
    return 0


#: About the largest tar ``pack`` writes (files counted with 1 KiB of header each; tar's end blocks can add up
#: to ~10 KiB): a lent GPU machine returns files of at most 16 MiB.
MAX_TAR = 15 * 2**20


def half_copy(path: Path) -> Path:
    """A copy of the state dict in ``path`` beside it (``.half-<name>``) with its floating tensors in float16,
    those beyond float16's range (a batch norm's variance, say) left in float32; ``load_state_dict`` brings
    them back to the network's float32."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    small = {k for k, v in state.items() if v.is_floating_point() and v.numel() and v.abs().max() < 6e4}
    half = {k: v.half() if k in small else v for k, v in state.items()}
    out = path.with_name(f".half-{path.name}")
    torch.save(half, out)
    return out


def pack(a: argparse.Namespace, arms: list[dict], into: Path, max_bytes: int = MAX_TAR) -> None:
    """Per arm, each job's latest cycle-end weights, its log and its hard negatives, in ``<arm>.tar``; where
    one tar would pass ``max_bytes`` (wider networks), the jobs that follow go on into ``<arm>.1.tar``,
    ``<arm>.2.tar`` and so on. A job is never split."""
    from detect.ships.segment_train import cycle_weights

    into.mkdir(parents=True, exist_ok=True)
    for arm in arms:
        root = a.out / arm["name"]
        if not root.is_dir():
            continue
        parts: list[list[tuple[Path, str]]] = [[]]
        size = 0
        for job in sorted(root.iterdir()):
            ends = cycle_weights(job)
            weights = [half_copy(ends[-1]) if getattr(a, "pack_half", False) else ends[-1]] if ends else []
            files = [
                (p, f"{job.name}/{ends[-1].name if p in weights else p.name}")
                for p in [*weights, job / "train.log", job / "hard_negatives.json"]
                if p.is_file()
            ]
            n = sum(p.stat().st_size + 1024 for p, _ in files)
            if parts[-1] and size + n > max_bytes:
                parts.append([])
                size = 0
            parts[-1].extend(files)
            size += n
        names = [f"{arm['name']}.tar" if i == 0 else f"{arm['name']}.{i}.tar" for i in range(len(parts))]
        for name, files in zip(names, parts, strict=True):  # every part written before any old one goes
            with tarfile.open(into / f"{name}.tmp", "w") as tar:
                for p, arcname in files:
                    tar.add(p, arcname=arcname)
        for old in into.glob(f"{arm['name']}.*tar"):
            if old.name not in names:  # an earlier, longer split
                old.unlink()
        for name in names:
            os.replace(into / f"{name}.tmp", into / name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True, type=Path, help="prepared scenes (<city>.npz, eotdl.npz)")
    ap.add_argument("--out", required=True, type=Path, help="run folder: <arm>/fold<k>/, <arm>/final/")
    ap.add_argument(
        "--arm",
        action="append",
        default=[],
        help="NAME[:seed=N][:eotdl][:quay=P][:haze=P][:hard=P][:base=W][:depth=D][:from=ARM]",
    )
    ap.add_argument("--final", action="append", default=[], help="also train this arm's final model")
    ap.add_argument("--folds", default="0,1,2,3,4")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--steps", type=int, default=7200)
    ap.add_argument("--cycle", type=int, default=1200)
    ap.add_argument("--stop-at", type=int, default=None, help="train only up to this stage end (a stem)")
    ap.add_argument("--paste", type=float, default=0.5)
    ap.add_argument("--hull-colour", type=float, default=0.5)
    ap.add_argument("--wakes", type=float, default=0.5)
    ap.add_argument("--hard-negatives", type=float, default=0.2)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--encoder", default="", help="efficientnet-b4: the pretrained-encoder net (every arm)")
    ap.add_argument("--encoder-lr", type=float, default=0.1, help="the encoder's rate scale (with --encoder)")
    ap.add_argument(
        "--pack-half",
        action="store_true",
        help="pack the weights in float16 (a b4 network's 17 MB fit the 16 MiB a GPU machine returns)",
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--deadline", type=float, default=0, help="stop the workers after this many seconds")
    ap.add_argument("--pack", type=Path, default=None, help="write <arm>.tar files here at the end")
    ap.add_argument("--worker", nargs=2, metavar=("ARM", "JOB"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    arms = [parse_arm(t) for t in a.arm]
    if not arms:
        ap.error("give at least one --arm")
    by_name = {arm["name"]: arm for arm in arms}
    if len(by_name) != len(arms):
        ap.error("two arms share a name")
    if a.worker:
        return worker(a, by_name[a.worker[0]], a.worker[1])
    for name in a.final:
        if name not in by_name:
            ap.error(f"--final {name}: no such --arm")
    folds = a.folds.split(",")
    if not all(f.isdigit() and int(f) < a.k for f in folds):
        ap.error(f"--folds {a.folds}: fold numbers are 0 to {a.k - 1} (--k {a.k})")
    stop_at(stages(a.steps, a.cycle), a.stop_at)
    for arm in arms:
        if arm["from"] and (arm["from"] == arm["name"] or not (a.out / arm["from"]).is_dir()):
            ap.error(f"{arm['name']}: from={arm['from']} names no earlier arm under {a.out}")
    if any(arm["eotdl"] for arm in arms) and not (a.cache / "eotdl.npz").is_file():
        ap.error(f"an arm trains with eotdl, and {a.cache}/eotdl.npz is not there")
    fold_cities(a.cache, a.k)
    from detect.ships.segment_train import encoder_problem

    ends = stages(a.steps, a.cycle)
    for arm in arms:
        problem = encoder_problem(stage_config(a, arm, 0, ends))
        if problem:
            ap.error(f"{arm['name']}: {problem}")
    jobs = [(arm["name"], f) for arm in arms for f in folds]
    jobs += [(name, "final") for name in a.final]
    for name, job in jobs:  # once per stem and job: the first branch mines, the others find the file
        if by_name[name]["from"]:
            mine_for_branches(a, by_name[name], job)
    procs = {}
    start = time.time()
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "PYTHONUNBUFFERED": "1"}
    for name, job in jobs:
        d = job_dir(a.out, name, job)
        d.mkdir(parents=True, exist_ok=True)
        log = open(d / "train.log", "a")  # noqa: SIM115 (closed with the process)
        cmd = [sys.executable, __file__, "--worker", name, job, *(argv if argv is not None else sys.argv[1:])]
        procs[(name, job)] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
    print(f"seg_cv_parallel: {len(procs)} processes on {a.device}", flush=True)
    status = {}

    def record(key: tuple[str, str], p: subprocess.Popen, log: Any, stopped: bool = False) -> None:
        rc = "stopped" if stopped and p.returncode != 0 else p.returncode
        status[f"{key[0]}/{key[1]}"] = {"rc": rc, "s": round(time.time() - start)}
        print(f"seg_cv_parallel: {key[0]} {key[1]} rc {rc} at {time.time() - start:.0f} s", flush=True)
        log.close()

    def stop_all() -> None:
        for p, _ in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for key, (p, log) in list(procs.items()):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            record(key, p, log, stopped=True)
            del procs[key]

    try:
        while procs:
            time.sleep(2)
            for key, (p, log) in list(procs.items()):
                if p.poll() is not None:
                    record(key, p, log)
                    del procs[key]
            if a.deadline and time.time() - start > a.deadline and procs:
                print(f"seg_cv_parallel: deadline {a.deadline:.0f} s; stopping {len(procs)} jobs", flush=True)
                stop_all()
    finally:
        stop_all()  # nothing still writing while the weights are packed (an error or ^C above)
        if a.pack:
            pack(a, arms, a.pack)
            (a.pack / "status.json").write_text(json.dumps(status, indent=1))
    bad = [k for k, v in status.items() if v["rc"] != 0]
    print(f"seg_cv_parallel: {len(status) - len(bad)} of {len(status)} done in {time.time() - start:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
