"""benchmarks/seg_bandset_thresholds.py: band groups, and each held-out scene scored at its group's threshold
(hand-made records)."""

from __future__ import annotations

from tests.detect.ships.records import scene_rec


def test_groups_follow_the_bands_the_detector_needs(load_script):
    m = load_script("benchmarks/seg_bandset_thresholds.py")
    assert m.group_of(["B02", "B03", "B04", "B08", "B11"]) == "full"
    assert m.group_of(["B02", "B03", "B04", "B08"]) == "full"
    assert m.group_of(["B08", "B11"]) == "nir"  # Los Angeles
    assert m.group_of(["B03", "B04", "B08", "B11"]) == "nir"  # Santos: no B02
    assert m.group_of(["B02", "B03", "B04"]) == "rgb"


def test_each_held_out_scene_is_scored_at_its_own_groups_threshold(load_script):
    m = load_script("benchmarks/seg_bandset_thresholds.py")
    # inner cities: full bands are best at 0.9, read as B08 B11 at 0.5, as true colour at 0.9
    inner = {
        "full": {0.5: [scene_rec(9, 30)], 0.9: [scene_rec(8, 9)]},
        "nir": {0.5: [scene_rec(8, 10)], 0.9: [scene_rec(2, 2)]},
        "rgb": {0.5: [scene_rec(9, 40)], 0.9: [scene_rec(6, 8)]},
    }
    # two held-out scenes: a full-band one and a B08 B11 one (the second record of each list)
    held_default = {0.5: [scene_rec(9, 20), scene_rec(7, 9)], 0.9: [scene_rec(8, 8), scene_rec(1, 1)]}
    one_variant = {0.5: [scene_rec(6, 10), scene_rec(5, 10)], 0.9: [scene_rec(2, 2), scene_rec(1, 1)]}
    recs = {
        0: {
            "inner": inner,
            "held": {"default": held_default, "B08": one_variant, "rgb": one_variant, "rgb8": one_variant},
            "held_groups": ["full", "nir"],
        }
    }
    rows = m.score_run(recs)
    assert rows["chosen"][0] == {"full": 0.9, "nir": 0.5, "rgb": 0.9}
    # training's one threshold (0.9) for both scenes: 9 of 20 ships, 9 detections
    assert (rows["default"]["one"]["tp"], rows["default"]["one"]["n_pred"]) == (9, 9)
    # the full scene at 0.9 (8 of 8), the B08 B11 scene at its group's 0.5 (7 of 9)
    assert (rows["default"]["group"]["tp"], rows["default"]["group"]["n_pred"]) == (15, 17)
    # the B08-only row at the nir threshold 0.5 (both scenes), the true-colour rows at the rgb one (0.9)
    assert (rows["B08"]["group"]["tp"], rows["B08"]["group"]["n_pred"]) == (11, 20)
    assert (rows["rgb"]["group"]["tp"], rows["rgb"]["group"]["n_pred"]) == (3, 3)
    assert rows["rgb8"]["group"] == rows["rgb"]["group"]


def test_a_group_no_inner_city_can_be_read_as_keeps_the_full_threshold(load_script):
    m = load_script("benchmarks/seg_bandset_thresholds.py")
    held = {0.5: [scene_rec(5, 10)], 0.9: [scene_rec(4, 4)]}
    recs = {
        0: {
            "inner": {
                "full": {0.5: [scene_rec(9, 30)], 0.9: [scene_rec(8, 9)]},
                "nir": {0.5: [], 0.9: []},
                "rgb": {},
            },
            "held": {"default": held, "B08": held, "rgb": held, "rgb8": held},
            "held_groups": ["nir"],
        }
    }
    rows = m.score_run(recs)
    # not best_threshold's 0.5 on empty records: the full-band 0.9
    assert rows["chosen"][0] == {"full": 0.9, "nir": 0.9, "rgb": 0.9}
    assert rows["default"]["group"] == rows["default"]["one"]
