"""One ship, one detection: refinement must not leave two boxes on one hull."""

from __future__ import annotations

from pathlib import Path

from detect.detectors import detect_paths

CHIP = Path(__file__).resolve().parents[2] / "fixtures" / "ais" / "eotdl_219000606_whole.tif"


def test_a_ferry_and_its_wake_come_out_as_one_ship() -> None:
    # Real eotdl chip (Kiel Bay, 2022-08-12): YOLO boxes the ferry's hull and hull + wake; refinement
    # snaps both to the same 120 m hull, which used to be reported twice.
    found, _ = detect_paths([CHIP], classes=("ship",), method="yolo")
    assert len(found) == 1
    assert 100 <= found[0].length_m <= 140
