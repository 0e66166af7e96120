"""benchmarks/seg_threshold_rules.py: the inner-city threshold rules on hand-made records."""

from __future__ import annotations

from tests.detect.ships.records import scene_rec


def test_rules_pick_from_the_inner_records(load_script):
    m = load_script("benchmarks/seg_threshold_rules.py")
    # F1 by threshold: a lone spike at 0.5 (0.9), a plateau around 0.8 (0.8 0.84 0.8), 0.63 at the top
    inner = {
        0.4: [scene_rec(5, 20)],
        0.5: [scene_rec(9, 10)],
        0.6: [scene_rec(5, 20)],
        0.7: [scene_rec(8, 10)],
        0.8: [scene_rec(8, 9)],
        0.9: [scene_rec(8, 10)],
        0.95: [scene_rec(5, 6)],
    }
    assert m.rule_max(inner) == 0.5
    assert m.rule_smooth(inner) == 0.8  # the plateau, not the spike
    assert m.rule_count(inner) == 0.9  # 10 detections for 10 ships: the highest such threshold
    assert m.RULES["fixed 0.95"](inner) == 0.95
    tie = {0.3: [scene_rec(5, 10)], 0.6: [scene_rec(5, 10)]}
    assert m.rule_max(tie) == 0.3  # the lowest on ties, as training chooses
