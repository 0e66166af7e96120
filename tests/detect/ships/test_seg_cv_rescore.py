"""benchmarks/seg_cv_rescore.py: other weights of trained CV folds scored as training scores a fold; here the
"model soup" of branches of one stem (``--soup``) and the rows to score (``--variants``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from detect.ships.segment import UNet
from detect.ships.segment_train import prepare

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures"


def _runs(tmp_path: Path, n: int) -> tuple[list[Path], list[dict]]:
    """``n`` runs with fold 0's weights at step 4 (random, one architecture), the fixture scene prepared."""
    runs, states = [], []
    for i in range(n):
        torch.manual_seed(i)
        st = UNet().state_dict()
        d = tmp_path / f"r{i}" / "fold0"
        d.mkdir(parents=True)
        torch.save(st, d / "cycle-000004.pt")
        runs.append(d.parent)
        states.append(st)
    prepare(FIXTURES / "ships_train", runs[0] / "scenes")
    return runs, states


def _stub_inputs(monkeypatch, m, scored: list) -> None:
    """The fold plan of one fixture city, and ``score_fold`` recording what it was given."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import _seg_cv

    import detect.ships.segment_train as st

    plan = [{"fit": ["algiers"], "inner": ["x"], "held_out": ["y"]}]
    monkeypatch.setattr(_seg_cv, "cv_inputs", lambda *a, **k: (Path("."), plan, {}))

    def fake_score(seg, data, fold, truth, variants=None, **k):
        scored.append((seg, variants))
        return {**fold, "threshold": 0.9, "variants": {v: {} for v in (variants or st.VARIANTS)}}

    monkeypatch.setattr(st, "score_fold", fake_score)
    real = st.recalibrate_bn  # batch norm from 3 batches of training crops, not 100: a test's time
    monkeypatch.setattr(st, "recalibrate_bn", lambda *a, **k: real(*a, **{**k, "batches": 3}))


def test_a_soup_is_the_mean_of_the_branches_weights_with_batch_norm_re_estimated(
    tmp_path, load_script, monkeypatch
):
    m = load_script("benchmarks/seg_cv_rescore.py")
    runs, states = _runs(tmp_path, 3)
    scored: list = []
    _stub_inputs(monkeypatch, m, scored)
    out = tmp_path / "soup"
    args = ["--cv-dir", str(runs[0]), "--soup", str(runs[1]), "--soup", str(runs[2]), "--out", str(out)]
    assert m.main([*args, "--step", "4", "--folds", "0", "--variants", "default"]) == 0
    kept = torch.load(out / "fold0" / "model.pt", weights_only=True)
    for k, v in kept.items():
        if "running" in k or "num_batches" in k:
            continue
        mean = sum(st[k] for st in states) / 3
        assert torch.allclose(v, mean, atol=1e-6), k
    # batch norm statistics come from training crops, not from the three runs' (their initial 0 and 1)
    assert not torch.allclose(kept["enc.0.1.running_mean"], states[0]["enc.0.1.running_mean"])
    seg, variants = scored[0]
    assert variants == ["default"]
    assert json.loads((out / "fold0" / "result.json").read_text())["threshold"] == 0.9
    # a rerun asking for the rows a fold has does nothing; asking for more scores it again from the kept
    # soup, not a new mean
    import detect.ships.segment_train as st

    monkeypatch.setattr(st, "mean_model", lambda *a, **k: pytest.fail("averaged again"))
    assert m.main([*args, "--step", "4", "--folds", "0", "--variants", "default"]) == 0 and len(scored) == 1
    assert m.main([*args, "--step", "4", "--folds", "0"]) == 0 and len(scored) == 2
    seg, variants = scored[1]
    assert variants is None  # every row by default
    assert all(torch.equal(v, kept[k]) for k, v in seg.net.state_dict().items())
    assert m.main([*args, "--step", "4", "--folds", "0"]) == 0 and len(scored) == 2  # every row there now
    # the kept soup belongs to its runs and its batch-norm crops: other runs, other ingredients' contents or
    # another crop seed into the same --out are refused, not scored as this soup
    (out / "fold0" / "result.json").unlink()
    with pytest.raises(SystemExit, match="is the mean of other weights"):
        m.main([*args[:4], "--out", str(out), "--step", "4", "--folds", "0"])
    with pytest.raises(SystemExit, match="is the mean of other weights or batch-norm crops"):
        m.main([*args, "--step", "4", "--folds", "0", "--seed", "1"])
    torch.save(states[1], runs[2] / "fold0" / "cycle-000004.pt")  # a branch trained again
    with pytest.raises(SystemExit, match="is the mean of other weights"):
        m.main([*args, "--step", "4", "--folds", "0"])
    assert len(scored) == 2


def test_a_soup_refuses_missing_branches_and_other_means(tmp_path, load_script, monkeypatch, capsys):
    m = load_script("benchmarks/seg_cv_rescore.py")
    runs, _ = _runs(tmp_path, 2)
    _stub_inputs(monkeypatch, m, [])
    base = ["--cv-dir", str(runs[0]), "--soup", str(runs[1]), "--out", str(tmp_path / "o"), "--folds", "0"]
    with pytest.raises(SystemExit, match=r"cycle-000008\.pt not found"):
        m.main([*base, "--step", "8"])
    with pytest.raises(SystemExit):
        m.main([*base, "--step", "4", "--average", "2"])
    assert "two different means" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        m.main([*base, "--step", "4", "--soup", str(runs[0])])  # the --cv-dir again
    assert "given twice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        m.main([*base, "--step", "4", "--variants", "B08"])  # the threshold needs the default row
    assert "includes default" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_score_fold_scores_only_the_rows_asked_for(monkeypatch):
    import detect.ships.segment_train as st

    seen = []
    monkeypatch.setattr(st, "detect_cities", lambda seg, data, cities, variant, t: seen.append(variant) or {})
    fold = {"held_out": ["h"], "inner": ["i"], "fit": ["f"]}
    res = st.score_fold(None, Path("."), fold, {}, variants=["default", "B08"])
    assert set(res["variants"]) == {"default", "B08"} and len(seen) == 3  # inner + two rows
    with pytest.raises(ValueError, match="unknown variants"):
        st.score_fold(None, Path("."), fold, {}, variants=["B12"])


def _soup_cv(cv: Path, run: Path, rows: dict[int, list[str]], arms=("a", "b")) -> None:
    """A scored soup CV of ``arms``' folds: per fold ``k`` in ``rows``, ``result.json`` with those rows of one
    held-out city at threshold ``THRESHOLDS[k]``, and the ``soup.json`` seg_cv_rescore writes."""
    from detect.core.weights import sha256_file
    from tests.detect.ships.records import scene_rec

    for k, names in rows.items():
        res = {
            "held_out": ["y"],
            "inner": ["x"],
            "fit": ["algiers"],
            "threshold": THRESHOLDS[k],
            "inner_f1": 0.7,
        }
        res["variants"] = {v: {"y": scene_rec(6, 8)} for v in names}
        (cv / f"fold{k}").mkdir(parents=True)
        (cv / f"fold{k}" / "result.json").write_text(json.dumps(res))
        shas = [sha256_file(run / arm / f"fold{k}" / "cycle-000004.pt") for arm in arms]
        (cv / f"fold{k}" / "soup.json").write_text(json.dumps({"sha256": shas}))


THRESHOLDS = {0: 0.95, 1: 0.85, 2: 0.7}  # median 0.85


def test_the_soup_of_final_models_is_written_with_its_cv_as_its_spec(tmp_path, load_script, monkeypatch):
    from detect.core.weights import sha256_file
    from detect.ships.segment import SegModel
    from detect.ships.segment_train import VARIANTS

    m = load_script("benchmarks/seg_soup_final.py")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import _seg_cv

    import detect.ships.segment_train as st

    cache = tmp_path / "scenes"
    prepare(FIXTURES / "ships_train", cache)
    plan = [{"fit": ["algiers"], "inner": [], "held_out": []}] * 3  # the prepared cities, as a real plan
    data = FIXTURES / "ships_train"
    monkeypatch.setattr(_seg_cv, "cv_inputs", lambda *a, **k: (data, plan, {}))
    real = st.recalibrate_bn
    monkeypatch.setattr(st, "recalibrate_bn", lambda *a, **k: real(*a, **{**k, "batches": 3}))
    run = tmp_path / "run"
    states = []
    for i, arm in enumerate(("a", "b", "c")):
        for job in ("final", "fold0", "fold1", "fold2"):
            torch.manual_seed(i * 10 + len(job))
            (run / arm / job).mkdir(parents=True)
            st_ = UNet().state_dict()
            torch.save(st_, run / arm / job / "cycle-000004.pt")
            if job == "final":
                states.append(st_)
    args = ["--cache", str(cache), "--run", str(run), "--arms", "a,b", "--step", "4"]
    out = tmp_path / "w" / "ships-test.pt"

    def refused(cv: Path, match: str, arms: str = "a,b") -> None:
        with pytest.raises(SystemExit, match=match):
            m.main([*args[:5], arms, "--step", "4", "--cv", str(cv), "--out", str(out)])

    every = list(VARIANTS)
    # one fold scored with --variants default: the card's band-set rows would pool two folds of three
    _soup_cv(tmp_path / "part", run, {0: every, 1: ["default"], 2: every})
    refused(tmp_path / "part", r"fold1: no no_water, B08, rgb, rgb8 rows")
    _soup_cv(tmp_path / "other", run, {0: every, 1: every, 2: every}, arms=("a", "c"))  # another soup's CV
    refused(tmp_path / "other", r"fold0: its soup is not of these branches")
    _soup_cv(tmp_path / "two", run, {0: every, 1: every})
    refused(tmp_path / "two", r"folds \[0, 1\] scored, not all 3")
    refused(tmp_path / "two", r"d/final/cycle-000004\.pt not found", arms="a,d")
    with pytest.raises(SystemExit):
        m.main([*args[:5], "a,a", "--step", "4", "--cv", str(tmp_path / "two"), "--out", str(out)])
    assert not out.exists()

    _soup_cv(tmp_path / "cv", run, {0: every, 1: every, 2: every})
    assert m.main([*args, "--cv", str(tmp_path / "cv"), "--out", str(out), "--precision", "bf16"]) == 0
    spec = json.loads(out.with_suffix(".json").read_text())
    assert spec["name"] == "ships-test" and spec["threshold"] == 0.85  # the median of the folds' thresholds
    assert spec["sha256"] == sha256_file(out)
    cv = spec["metrics"]["cv"]
    assert cv["pooled"]["tp"] == 18 and set(cv["by_input"]) == set(VARIANTS)
    training = spec["metrics"]["training"]
    assert training["soup"]["of"] == ["a/final/cycle-000004.pt", "b/final/cycle-000004.pt"]
    assert training["config"]["precision"] == "bf16" and training["cities"] == ["algiers"]
    got = torch.load(out, weights_only=True)
    k = "enc.0.0.weight"
    assert torch.allclose(got[k], (states[0][k] + states[1][k]) / 2, atol=1e-6)
    seg = SegModel.load(out)  # the detector loads it, sha256 checked
    assert seg.spec.threshold == 0.85
