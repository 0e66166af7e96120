"""The report and the map page in a real headless Chromium: they open from the run folder with no network,
no console error and no failed load, every image loads, the screenshots are not blank, and the map steps
through the days (an unobserved day says so). Skipped where Chromium is missing (.ci/run installs it)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.browser import Browser, chromium
from tests.detect.report.series import run_series

CHROMIUM = chromium()
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (Debian: apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    result = run_series(tmp)
    return result, tmp / "run"


@pytest.fixture(scope="module")
def browser():
    with Browser(CHROMIUM) as b:
        yield b


def not_blank(png: bytes) -> None:
    with Image.open(io.BytesIO(png)) as im:
        arr = np.asarray(im.convert("RGB"), dtype=float)
    assert arr.shape[0] > 500 and arr.shape[1] >= 1000
    assert arr.std() > 20  # text, charts and imagery, not one flat colour
    assert (arr < 250).any(axis=-1).mean() > 0.05  # not a white page


def page_is_clean(page) -> None:
    assert page.errors == [], page.errors
    assert page.failed == [], page.failed
    broken = [i["src"] for i in page.images if not (i["complete"] and i["width"] > 0 and i["height"] > 0)]
    assert broken == []


def test_report_opens_with_every_image_loaded(run_folder, browser):
    result, out = run_folder
    page = browser.open(out / "report.html")
    page_is_clean(page)
    assert page.title.startswith("harborwatch: genoa-series")
    crops = int(result.daily()["count"].sum())
    srcs = [i["src"].rsplit("/", 1)[-1] for i in page.images]
    assert {"counts.png", "map.png", "claims.png", "baseline.png"} <= set(srcs)
    assert sum(s.endswith(".jpg") for s in srcs) == crops > 0
    not_blank(page.screenshot)


def test_map_opens_offline_and_steps_through_observed_and_unobserved_days(run_folder, browser):
    result, out = run_folder
    whole = result.daily()
    first_unseen = int(np.flatnonzero((whole["status"] == "unobserved").to_numpy())[0])
    page = browser.open(
        out / "map.html",
        then=[
            "document.getElementById('label').textContent",
            "document.querySelectorAll('.leaflet-overlay-pane path').length",
            "document.querySelectorAll('.leaflet-image-layer').length",
            f"(function () {{ var s = document.getElementById('day'); s.value = {first_unseen};"
            " s.dispatchEvent(new Event('input')); return document.getElementById('label').textContent; })()",
            "document.getElementById('unseen').hidden",
            "document.getElementById('unseen').textContent",
            "document.querySelectorAll('.leaflet-image-layer').length",
            "document.getElementById('strip').children.length",
        ],
    )
    page_is_clean(page)
    not_blank(page.screenshot)
    label, paths, layers, unseen_label, hidden, unseen_text, layers_after, cells = page.values
    busiest = whole.loc[whole["count"].fillna(-1).astype(int).idxmax()]
    assert label.startswith(f"{busiest['date']} — observed-unmasked — {busiest['count']} ships")
    # the day's counted detections and the zones (the AOI outline) are drawn over its image
    assert paths == busiest["count"] + 1 and layers == 1
    assert "unobserved" in unseen_label and hidden is False and "no count (not 0)" in unseen_text
    assert layers_after == 0 and cells == len(whole)
    # the image the page showed came from the run folder and loaded
    assert any(i["src"].endswith(".jpg") and "map_files/" in i["src"] and i["width"] > 0 for i in page.images)


def test_the_check_itself_catches_a_missing_image_and_a_script_error(tmp_path, browser):
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!doctype html><html><body><p>x</p><img src="missing.png">'
        "<script>console.error('boom'); undefinedFunction();</script></body></html>"
    )
    page = browser.open(bad, settle_s=0.3)
    assert any("boom" in e for e in page.errors) and any("undefinedFunction" in e for e in page.errors)
    assert any("ERR_FILE_NOT_FOUND" in f for f in page.failed)
    assert [i["width"] for i in page.images] == [0]
