"""Hand-made scene records, as ``detect.ships.segment_train.scene_record`` writes them, for the tests of the
scripts that pool records by threshold (``benchmarks/seg_threshold_rules.py``,
``benchmarks/seg_bandset_thresholds.py``)."""

from __future__ import annotations


def scene_rec(tp: int, n_pred: int, n_truth: int = 10) -> dict:
    """One scene: ``tp`` of ``n_truth`` 100 m ships found among ``n_pred`` detections, no AP inputs."""
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
