"""`harborwatch detect` / `evaluate`: the GeoJSON contract, --json summaries, and one-line exit-2 errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from detect.cli import main
from detect.core.geometry import CONTRACT_PROPERTIES
from detect.core.inputs import read_window
from detect.core.weights import resolve_weights

CHIPS = Path(__file__).parents[2] / "fixtures" / "chips"
CHIP = CHIPS / "honolulu_chip.tif"
WEIGHTS, _ = resolve_weights("ships-s2")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["-q", *argv])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def _write(path: Path, data: np.ndarray, **kw) -> Path:
    profile = dict(
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs="EPSG:32604",
        transform=Affine(10, 0, 600_000, 0, -10, 2_360_000),
    )
    profile.update(kw)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def test_detect_writes_the_geojson_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "det.geojson"
    rc, stdout, _ = run(
        [
            "detect",
            str(CHIP),
            str(CHIPS / "marseille_water.tif"),
            "--out",
            str(out),
            "--method",
            "baseline",
            "--json",
        ],
        capsys,
    )
    assert rc == 0
    summary = json.loads(stdout)
    fc = json.loads(out.read_text())
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    assert summary["out"] == str(out) and summary["counts"]["ship"] == len(fc["features"]) > 0
    assert [p["counts"]["ship"] for p in summary["paths"]][1] == 0
    for f in fc["features"]:
        assert f["type"] == "Feature" and f["geometry"]["type"] == "Polygon"
        ring = np.asarray(f["geometry"]["coordinates"][0])
        assert ring.shape == (5, 2) and (ring[0] == ring[-1]).all()
        # EPSG:4326 lon/lat, here Honolulu harbour.
        assert np.all((ring[:, 0] > -158.0) & (ring[:, 0] < -157.9)) and np.all(
            (ring[:, 1] > 21.3) & (ring[:, 1] < 21.4)
        )
        p = f["properties"]
        assert set(CONTRACT_PROPERTIES) <= set(p)
        assert p["class"] == "ship" and 0 <= p["score"] <= 1 and p["scene"] == "honolulu_chip"
        assert 0 < p["width_m"] <= p["length_m"] <= 400 and 0 <= p["heading_deg"] < 180
        assert p["acquired"] is None  # a bare GeoTIFF does not say when it was taken
    assert sorted(x.name for x in tmp_path.iterdir()) == ["det.geojson"]  # atomic: no temp files left


def test_a_band_folder_gives_the_same_detections_as_the_multiband_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "honolulu"
    folder.mkdir()
    with rasterio.open(CHIP) as src:
        profile = {**src.profile, "count": 1}
        for i, band in enumerate(src.descriptions, start=1):
            with rasterio.open(folder / f"honolulu_{band}.tif", "w", **profile) as dst:
                dst.write(src.read(i), 1)
                dst.update_tags(REFLECTANCE_SCALE="0.0001")
    a, b = tmp_path / "a.geojson", tmp_path / "b.geojson"
    assert run(["detect", str(CHIP), "--out", str(a), "--method", "baseline"], capsys)[0] == 0
    assert run(["detect", str(folder), "--out", str(b), "--method", "baseline"], capsys)[0] == 0
    fa, fb = (json.loads(p.read_text())["features"] for p in (a, b))
    assert len(fa) == len(fb) > 0
    assert [f["geometry"] for f in fa] == [f["geometry"] for f in fb]


def test_bands_option_names_the_bands_of_an_undescribed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with rasterio.open(CHIP) as src:
        bare = _write(tmp_path / "bare.tif", src.read(), crs=src.crs, transform=src.transform)
    rc, _, err = run(
        ["detect", str(bare), "--out", str(tmp_path / "x.geojson"), "--method", "baseline"], capsys
    )
    assert rc == 2 and "--bands" in err and len(err.strip().splitlines()) == 1
    rc, out, _ = run(
        [
            "detect",
            str(bare),
            "--bands",
            "B02,B03,B04,B08",
            "--out",
            str(tmp_path / "x.geojson"),
            "--method",
            "baseline",
            "--json",
        ],
        capsys,
    )
    assert rc == 0 and json.loads(out)["counts"]["ship"] > 0


def test_acquisition_time_and_scene_come_from_the_fetch_tags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tagged = tmp_path / "tagged.tif"
    with rasterio.open(CHIP) as src, rasterio.open(tagged, "w", **src.profile) as dst:
        dst.write(src.read())
        dst.descriptions = src.descriptions
        dst.update_tags(**src.tags(), DATETIME="2023-01-08T20:56:21+00:00", SCENE_ID="S2B_MSIL2A_20230108")
    out = tmp_path / "d.geojson"
    assert run(["detect", str(tagged), "--out", str(out), "--method", "baseline"], capsys)[0] == 0
    props = [f["properties"] for f in json.loads(out.read_text())["features"]]
    assert props and all(p["acquired"] == "2023-01-08T20:56:21Z" for p in props)
    assert all(p["scene"] == "S2B_MSIL2A_20230108" for p in props)


def test_scale_option_overrides_the_file_tag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.geojson", tmp_path / "b.geojson"
    base = ["detect", str(CHIP), "--method", "baseline", "--json"]
    _, same, _ = run([*base, "--out", str(a), "--scale", "1e-4"], capsys)  # what the chip's tag says
    _, dark, _ = run([*base, "--out", str(b), "--scale", "1/65535"], capsys)  # 6.55× darker: fewer pass
    n_tag = json.loads(run([*base, "--out", str(a)], capsys)[1])["counts"]["ship"]
    assert json.loads(same)["counts"]["ship"] == n_tag
    assert json.loads(dark)["counts"]["ship"] < n_tag


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    cplx = _write(tmp_path / "complex.tif", np.ones((1, 8, 8), np.complex64))
    onebit = _write(tmp_path / "mask.tif", np.ones((1, 8, 8), np.uint8), nbits=1)
    return {
        "missing path": ([str(tmp_path / "nope.tif")], "no such file"),
        "empty file": ([str(empty)], "empty file"),
        "corrupt file": ([str(corrupt)], "not a readable raster"),
        "complex dtype": ([str(cplx)], "complex"),
        "1-bit": ([str(onebit)], "1-bit"),
        "missing bands": ([str(CHIP), "--bands", "B02,B03"], "missing band(s) B08"),
        "bad conf": ([str(CHIP), "--conf", "1.5"], "conf must lie in [0, 1]"),
        "bad scale": ([str(CHIP), "--scale", "1/0"], "--scale"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing path",
        "empty file",
        "corrupt file",
        "complex dtype",
        "1-bit",
        "missing bands",
        "bad conf",
        "bad scale",
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, message = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out.geojson"
    rc, stdout, err = run(["detect", *args, "--out", str(out), "--method", "baseline"], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harborwatch: error:") and message in lines[0]
    assert not out.exists() and stdout == ""


def test_an_input_missing_bands_is_refused_before_any_detection_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "rgb_only"
    folder.mkdir()
    with (
        rasterio.open(CHIP) as src,
        rasterio.open(folder / "x_B02.tif", "w", **{**src.profile, "count": 1}) as dst,
    ):
        dst.write(src.read(1), 1)
    from detect.ships.baseline import BaselineDetector

    def boom(self, window, *, conf=None):
        raise AssertionError("detection ran before the inputs were checked")

    monkeypatch.setattr(BaselineDetector, "detect", boom)
    rc, _, err = run(
        ["detect", str(CHIP), str(folder), "--out", str(tmp_path / "o.geojson"), "--method", "baseline"],
        capsys,
    )
    assert rc == 2 and "missing band(s) B08" in err and str(folder) in err


def test_an_input_without_a_crs_is_refused_before_any_detection_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with rasterio.open(CHIP) as src:
        profile, data, names = src.profile, src.read(), src.descriptions
    profile = {k: v for k, v in profile.items() if k not in ("crs", "transform")}
    bare = tmp_path / "bare.tif"
    with rasterio.open(bare, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = names
    from detect.ships.baseline import BaselineDetector

    def boom(self, window, *, conf=None):
        raise AssertionError("detection ran before the inputs were checked")

    monkeypatch.setattr(BaselineDetector, "detect", boom)
    rc, _, err = run(
        ["detect", str(CHIP), str(bare), "--out", str(tmp_path / "o.geojson"), "--method", "baseline"], capsys
    )
    assert rc == 2 and "has no CRS" in err and str(bare) in err


def test_evaluate_prints_per_scene_and_overall_scores(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(
        [
            "evaluate",
            "--images",
            str(CHIPS),
            "--annotations",
            str(CHIPS / "annotations.json"),
            "--method",
            "baseline",
            "--json",
        ],
        capsys,
    )
    assert rc == 0
    report = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert [s["scene"] for s in report["scenes"]] == ["honolulu_chip", "marseille_water"]
    assert report["scenes"][1]["ap50"] is None  # no ships there: AP is undefined, not NaN
    overall = report["overall"]
    assert overall["n_truth"] == 12 and overall["tp"] >= 2
    for key in ("precision", "recall", "f1", "ap50", "count_error", "length_mae_m"):
        assert key in overall
    rc, text, _ = run(
        [
            "evaluate",
            "--images",
            str(CHIPS),
            "--annotations",
            str(CHIPS / "annotations.json"),
            "--method",
            "baseline",
        ],
        capsys,
    )
    assert rc == 0 and "honolulu_chip" in text and "overall" in text and "AP50" in text


def test_evaluate_with_a_missing_annotations_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(
        [
            "evaluate",
            "--images",
            str(CHIPS),
            "--annotations",
            str(tmp_path / "x.json"),
            "--method",
            "baseline",
        ],
        capsys,
    )
    assert rc == 2 and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("case", ["no images", "no annotations", "annotations elsewhere", "no ships there"])
def test_evaluate_without_a_labelled_image_is_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coco = json.loads((CHIPS / "annotations.json").read_text())
    cities = ["--cities", "marseille"] if case == "no ships there" else []  # a chip of open water
    if case == "no images":
        coco.update(images=[], annotations=[])
    elif case == "no annotations":
        coco["annotations"] = []
    elif case == "annotations elsewhere":  # on an image the file does not list
        coco["annotations"] = [{**a, "image_id": 99} for a in coco["annotations"]]
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(coco))
    args = ["evaluate", "--images", str(CHIPS), "--annotations", str(path), "--method", "baseline"]
    rc, out, err = run([*args, *cities], capsys)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("harborwatch: error: no labelled images found in")


@pytest.mark.parametrize(("method", "weights"), [("seg", "ships-s2-seg.pt"), ("yolo", "ships-s2.pt")])
def test_missing_weights_fail_with_one_line(
    method: str,
    weights: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from detect.core.registry import clear_detector_cache

    empty = tmp_path / "no-weights"
    empty.mkdir()
    monkeypatch.setenv("HARBORWATCH_WEIGHTS_DIR", str(empty))
    clear_detector_cache()  # detectors built earlier in this process hold the real weights
    try:
        rc, _, err = run(
            ["detect", str(CHIP), "--method", method, "--out", str(tmp_path / "x.geojson")], capsys
        )
    finally:
        clear_detector_cache()
    assert rc == 1 and weights in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.geojson").exists()


def test_a_run_whose_default_model_cannot_load_fails_before_any_scene(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # auto loaded its models on first use: every scene was recorded as failed and the run ended with exit 0
    import shutil

    from detect.core.registry import clear_detector_cache
    from detect.core.weights import weights_dir

    partial = tmp_path / "weights"
    shutil.copytree(weights_dir(), partial, ignore=shutil.ignore_patterns("ships-s2-seg.pt"))
    monkeypatch.setenv("HARBORWATCH_WEIGHTS_DIR", str(partial))
    clear_detector_cache()
    out = tmp_path / "run"
    try:
        args = ["run", "--aoi", "23.5644,37.9325,23.6074,37.9666", "--start", "2023-08-17"]
        rc, _, err = run([*args, "--end", "2023-08-19", "--source", "samples", "--out", str(out)], capsys)
    finally:
        clear_detector_cache()
    assert rc == 1 and "member ships-s2-seg" in err and "Traceback" not in err
    assert not list(out.glob("scenes/*.json"))


@pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"shipped weights {WEIGHTS} not present yet")
def test_yolo_detect_on_the_real_chip_follows_the_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from detect.detectors import get_detector

    out = tmp_path / "det.geojson"
    rc, stdout, _ = run(["detect", str(CHIP), "--out", str(out), "--method", "yolo", "--json"], capsys)
    assert rc == 0
    fc = json.loads(out.read_text())
    expected = get_detector("ship", "yolo").detect(read_window(CHIP))
    assert json.loads(stdout)["counts"]["ship"] == len(fc["features"]) == len(expected) > 0
    for f, d in zip(fc["features"], expected, strict=True):
        p = f["properties"]
        assert p["detector"] == d.detector and p["detector"].startswith("yolo:")
        assert p["score"] == pytest.approx(d.score, abs=1e-4) and p["on_land"] is False
        assert 0 < p["width_m"] <= p["length_m"] and 0 <= p["heading_deg"] < 180
        assert p["length_source"] in ("pixels", "axis", "box")


@pytest.mark.skipif(not WEIGHTS.is_file(), reason=f"shipped weights {WEIGHTS} not present yet")
def test_yolo_tta_is_a_method_of_detect_and_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tta.geojson"
    rc, stdout, _ = run(["detect", str(CHIP), "--method", "yolo-tta", "--out", str(out), "--json"], capsys)
    assert rc == 0 and json.loads(stdout)["method"] == "yolo-tta"
    feats = json.loads(out.read_text())["features"]
    assert feats and all(f["properties"]["detector"].endswith("+tta") for f in feats)
    rc, stdout, _ = run(
        ["evaluate", "--images", str(CHIPS), "--annotations", str(CHIPS / "annotations.json"),
         "--method", "yolo-tta", "--json"],
        capsys,
    )  # fmt: skip
    assert rc == 0 and json.loads(stdout)["overall"]["n_truth"] > 0


def test_an_out_that_cannot_be_written_is_refused_before_any_detection(tmp_path, capsys, monkeypatch):
    import detect.detectors

    def never(*a, **k):
        raise AssertionError("detection ran before --out was checked")

    monkeypatch.setattr(detect.detectors, "detect_paths", never)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    sample = Path(__file__).parents[3] / "imagery" / "samples" / "genoa-2023-07-10" / "genoa-2023-07-10.tif"
    rc, _, err = run(["detect", str(sample), "--out", str(blocker / "ships.geojson")], capsys)
    assert rc == 2 and "a file stands where a folder is needed" in err


def test_one_input_given_twice_is_read_once(tmp_path, capsys):
    sample = Path(__file__).parents[3] / "imagery" / "samples" / "genoa-2023-07-10" / "genoa-2023-07-10.tif"
    once, twice = tmp_path / "once.geojson", tmp_path / "twice.geojson"
    assert run(["detect", str(sample), "--classes", "ship", "--out", str(once)], capsys)[0] == 0
    rc, _, err = run(["detect", str(sample), str(sample), "--out", str(twice), "--classes", "ship"], capsys)
    assert rc == 0 and "1 input(s) given more than once" in err
    n = len(json.loads(once.read_text())["features"])
    assert n > 0 and len(json.loads(twice.read_text())["features"]) == n
