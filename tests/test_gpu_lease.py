"""tools/gpu_lease: the scene cache travels in parts bit for bit, training imports without the GIS stack, and
the probe's logs choose the job set that fits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "tools" / "gpu_lease"


def test_scenes_travel_in_parts_bit_for_bit(tmp_path, load_script):
    from detect.ships.segment_train import prepare

    cache = tmp_path / "scenes"
    prepare(ROOT / "tests" / "fixtures" / "ships_train", cache)
    z = dict(np.load(cache / "algiers.npz"))
    z["image"] = z["image"].copy()
    z["image"][0, :3, :3] = np.nan  # as real scenes hold outside their footprint
    np.savez(cache / "copy.npz", **z)
    np.savez(cache / "eotdl.npz", **z)  # the smallest, and still packed into part 0
    (cache / "algiers.123.tmp.npz").write_bytes(b"half-written")  # left out
    ps = load_script("tools/gpu_lease/pack_scenes.py")
    (tmp_path / "xfer" / "part1").mkdir(parents=True)
    (tmp_path / "xfer" / "part1" / "stale.hwz").write_bytes(b"from an earlier pack")
    sizes = ps.pack(cache, tmp_path / "xfer", 2)
    assert (tmp_path / "xfer" / "part0" / "eotdl.hwz").is_file()
    assert not (tmp_path / "xfer" / "part1" / "stale.hwz").exists()
    assert all(s > 0 for s in sizes)
    assert sum(sizes) < sum(p.stat().st_size for p in cache.glob("*.npz"))
    back = tmp_path / "back"
    got = ps.unpack(tmp_path / "xfer" / "part0", back) + ps.unpack(tmp_path / "xfer" / "part1", back)
    assert sorted(got) == ["algiers", "copy", "eotdl"]
    assert not list(back.glob("*.tmp.npz"))
    for name in got:
        a, b = np.load(cache / f"{name}.npz"), np.load(back / f"{name}.npz")
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            x, y = a[k], b[k]
            assert x.dtype == y.dtype and x.shape == y.shape
            if x.dtype == np.float16:
                x, y = x.view(np.uint16), y.view(np.uint16)  # NaNs compared by their bits
            assert np.array_equal(x, y), (name, k)


def test_training_imports_where_the_gis_stack_is_missing():
    code = (
        "import detect.ships.segment_train as t, rasterio\n"
        "assert type(rasterio).__name__ == 'StandIn'\n"
        "try:\n    rasterio.open('x.tif')\nexcept RuntimeError as e:\n    print('refused:', e)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{KIT}{os.pathsep}{ROOT}", "HW_FORCE_NOGIS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "refused: rasterio.open is not installed" in out.stdout
    # where the packages are installed (here), nothing is stood in for
    env.pop("HW_FORCE_NOGIS")
    real = subprocess.run(
        [sys.executable, "-c", "import rasterio; print(type(rasterio).__name__, rasterio.__version__)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert real.returncode == 0 and real.stdout.startswith("module "), real.stdout + real.stderr


def test_the_probe_chooses_the_largest_job_set_that_fits(tmp_path, load_script):
    decide = load_script("tools/gpu_lease/decide.py")
    for i in range(21):
        d = tmp_path / "probe" / "a" / f"fold{i}"
        d.mkdir(parents=True)
        (d / "train.log").write_text(
            "fold: step 150/150 loss 0.5 0.05 s/step\nx: stage to step 150 took 3.0 s\n"
            "x: stage to step 200 took 5.0 s\n"
        )
    out = tmp_path / "args"
    q = "--arm q0:seed=0:quay=0.5 --arm q1:seed=1:quay=0.5 --arm q2:seed=2:quay=0.5"
    arms = f"{q} --arm c2:seed=2 --final q0"
    sets = decide.job_sets(arms)
    assert [n for _, n in sets] == [21, 20, 16, 15, 11, 10, 6, 5]
    assert sets[2][0] == f"{q} --final q0"
    assert sets[-1][0] == "--arm q0:seed=0:quay=0.5"
    # a final whose arm is cut goes with it
    assert [n for _, n in decide.job_sets("--arm a --arm b --final b")] == [11, 10, 5]
    with pytest.raises(SystemExit, match="pairs"):
        decide.job_sets("--arm a --steps 7200")
    with pytest.raises(SystemExit, match="no --arm"):
        decide.job_sets("--final a")
    with pytest.raises(SystemExit, match="no such --arm"):
        decide.job_sets("--arm a --final b")
    probe = [str(tmp_path / "probe"), "21"]
    # 7200 steps x 0.05 s x 1.5 (SLOWDOWN) x n/21 + 90 + 2 x 5: 21 jobs 640 s, 20 jobs 614 s, 16 jobs 511 s,
    # 15 jobs 486 s
    assert decide.main([*probe, "520", str(out), "7200", "150", arms]) == 0
    assert out.read_text() == sets[2][0]
    assert decide.main([*probe, "500", str(out), "7200", "150", arms]) == 0
    assert out.read_text() == sets[3][0]
    assert decide.main([*probe, "650", str(out), "7200", "150", arms]) == 0
    assert out.read_text() == arms
    # nothing measured: the smallest set, and a non-zero exit for probe.sh to report
    assert decide.main([str(tmp_path / "empty"), "21", "470", str(out), "7200", "150", arms]) == 1
    assert out.read_text() == sets[-1][0]


def test_the_call_scripts_parse():
    for script in ("probe.sh", "train.sh"):
        r = subprocess.run(["bash", "-n", str(KIT / script)], capture_output=True, text=True)
        assert r.returncode == 0, f"{script}: {r.stderr}"
