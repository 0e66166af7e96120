"""benchmarks/seg_threshold_rules.py: the inner-city threshold rules on hand-made records."""

from __future__ import annotations


def _rec(tp: int, n_pred: int, n_truth: int = 10) -> dict:
    return {
        "tp": tp,
        "n_pred": n_pred,
        "n_truth": n_truth,
        "truth_len": [100.0] * n_truth,
        "truth_matched": [i < tp for i in range(n_truth)],
        "len_err": [0.0] * tp,
        "ap_scores": [],
        "ap_hits": [],
    }


def test_rules_pick_from_the_inner_records(load_script):
    m = load_script("benchmarks/seg_threshold_rules.py")
    # F1 by threshold: a lone spike at 0.5 (0.9), a plateau around 0.8 (0.8 0.84 0.8), 0.63 at the top
    inner = {
        0.4: [_rec(5, 20)],
        0.5: [_rec(9, 10)],
        0.6: [_rec(5, 20)],
        0.7: [_rec(8, 10)],
        0.8: [_rec(8, 9)],
        0.9: [_rec(8, 10)],
        0.95: [_rec(5, 6)],
    }
    assert m.rule_max(inner) == 0.5
    assert m.rule_smooth(inner) == 0.8  # the plateau, not the spike
    assert m.rule_count(inner) == 0.9  # 10 detections for 10 ships: the highest such threshold
    assert m.RULES["fixed 0.95"](inner) == 0.95
    tie = {0.3: [_rec(5, 10)], 0.6: [_rec(5, 10)]}
    assert m.rule_max(tie) == 0.3  # the lowest on ties, as training chooses
