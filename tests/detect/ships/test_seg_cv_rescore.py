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
        return {**fold, "threshold": 0.9, "variants": {"default": {}}}

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
    # a rerun of a scored fold does nothing; with the result gone it reads the kept soup, not a new mean
    import detect.ships.segment_train as st

    monkeypatch.setattr(st, "mean_model", lambda *a, **k: pytest.fail("averaged again"))
    assert m.main([*args, "--step", "4", "--folds", "0"]) == 0 and len(scored) == 1
    (out / "fold0" / "result.json").unlink()
    assert m.main([*args, "--step", "4", "--folds", "0"]) == 0
    seg, variants = scored[1]
    assert variants is None  # every row by default
    assert all(torch.equal(v, kept[k]) for k, v in seg.net.state_dict().items())
    # the kept soup belongs to its runs: other runs into the same --out are refused, not scored as this soup
    (out / "fold0" / "result.json").unlink()
    with pytest.raises(SystemExit, match="is the mean of other weights"):
        m.main([*args[:4], "--out", str(out), "--step", "4", "--folds", "0"])


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


def _soup_cv(cv: Path, rows: list[str], threshold: float = 0.85) -> None:
    """A scored one-fold soup CV: ``fold0/result.json`` with ``rows`` of one held-out city."""
    from tests.detect.ships.records import scene_rec

    res = {"held_out": ["y"], "inner": ["x"], "fit": ["algiers"], "threshold": threshold, "inner_f1": 0.7}
    res["variants"] = {v: {"y": scene_rec(6, 8)} for v in rows}
    (cv / "fold0").mkdir(parents=True)
    (cv / "fold0" / "result.json").write_text(json.dumps(res))


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
    plan = [{"fit": ["algiers"], "inner": ["x"], "held_out": ["y"]}]
    data = FIXTURES / "ships_train"
    monkeypatch.setattr(_seg_cv, "cv_inputs", lambda *a, **k: (data, plan, {}))
    real = st.recalibrate_bn
    monkeypatch.setattr(st, "recalibrate_bn", lambda *a, **k: real(*a, **{**k, "batches": 3}))
    states = []
    for i, arm in enumerate(("a", "b")):
        torch.manual_seed(i)
        states.append(UNet().state_dict())
        (tmp_path / "run" / arm / "final").mkdir(parents=True)
        torch.save(states[-1], tmp_path / "run" / arm / "final" / "cycle-000004.pt")
    args = ["--cache", str(cache), "--run", str(tmp_path / "run"), "--arms", "a,b", "--step", "4"]
    out = tmp_path / "w" / "ships-test.pt"

    _soup_cv(tmp_path / "part", ["default"])  # scored with --variants default: no band-set rows for the card
    with pytest.raises(SystemExit, match="no no_water, B08, rgb, rgb8 rows"):
        m.main([*args, "--cv", str(tmp_path / "part"), "--out", str(out)])
    with pytest.raises(SystemExit, match=r"c/final/cycle-000004\.pt not found"):
        m.main([*args[:5], "a,c", "--step", "4", "--cv", str(tmp_path / "part"), "--out", str(out)])
    assert not out.exists()

    _soup_cv(tmp_path / "cv", list(VARIANTS))
    assert m.main([*args, "--cv", str(tmp_path / "cv"), "--out", str(out), "--precision", "bf16"]) == 0
    spec = json.loads(out.with_suffix(".json").read_text())
    assert spec["name"] == "ships-test" and spec["threshold"] == 0.85  # the soup CV's (median) threshold
    assert spec["sha256"] == sha256_file(out)
    cv = spec["metrics"]["cv"]
    assert cv["pooled"]["tp"] == 6 and set(cv["by_input"]) == set(VARIANTS)
    training = spec["metrics"]["training"]
    assert training["soup"]["of"] == ["a/final/cycle-000004.pt", "b/final/cycle-000004.pt"]
    assert training["config"]["precision"] == "bf16" and training["cities"] == ["algiers"]
    got = torch.load(out, weights_only=True)
    k = "enc.0.0.weight"
    assert torch.allclose(got[k], (states[0][k] + states[1][k]) / 2, atol=1e-6)
    seg = SegModel.load(out)  # the detector loads it, sha256 checked
    assert seg.spec.threshold == 0.85
