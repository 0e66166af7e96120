"""The `run` pipeline end to end on real bundled imagery (local source, classical detector):
resume without repeated work, a failing scene recorded and skipped, an interrupted run resumed."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from shapely.geometry import box, shape

from detect import pipeline
from detect.core.geometry import Detection
from detect.pipeline.records import record_key, safe_name
from imagery.aoi import Zone, aoi_from_bbox
from imagery.errors import InputError
from imagery.samples import list_samples

SAMPLE = next(s for s in list_samples() if s.id.startswith("athens"))
DAY = SAMPLE.datetime.date()


def _copy_scene(
    src_dir: Path,
    dst_root: Path,
    new_id: str,
    days_later: int,
    bands: int | None = None,
    path_light: dict[str, float] | None = None,
    empty: tuple[str, ...] = (),
) -> None:
    """A copy of the sample as another acquisition (other id and date), optionally with fewer bands, as
    a Level-1C scene with ``path_light`` (reflectance per band) added where there is data, or with the
    ``empty`` bands all nodata (0)."""
    dst = dst_root / new_id
    dst.mkdir(parents=True)
    meta = json.loads((src_dir / "scene.json").read_text())
    when = SAMPLE.datetime + timedelta(days=days_later)
    meta.update(id=new_id, datetime=when.isoformat().replace("+00:00", "Z"))
    with rasterio.open(SAMPLE.path) as src:
        profile = src.profile
        n = bands or src.count
        data = src.read(list(range(1, n + 1)))
        descriptions = src.descriptions[:n]
        tags = src.tags()
    if path_light:
        meta["processing_level"] = tags["PROCESSING_LEVEL"] = "L1C"
        scale = float(tags["REFLECTANCE_SCALE"])
        for i, b in enumerate(descriptions):
            data[i] = np.where(data[i] > 0, data[i] + round(path_light[b] / scale), 0)
    for b in empty:
        data[descriptions.index(b)] = 0
    meta["bands"] = list(descriptions)
    profile.update(count=n, driver="GTiff")
    with rasterio.open(dst / f"{new_id}.tif", "w", **profile) as out:
        out.write(data)
        out.update_tags(**tags)
        for i, d in enumerate(descriptions, start=1):
            out.set_band_description(i, d)
    (dst / "scene.json").write_text(json.dumps(meta))


@pytest.fixture(scope="module")
def imagery_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    shutil.copytree(SAMPLE.path.parent, root / SAMPLE.id)
    _copy_scene(SAMPLE.path.parent, root, "athens-later", 2)
    _copy_scene(SAMPLE.path.parent, root, "athens-broken", 1, bands=3)  # no B08: the detector cannot run
    return root


AOI = aoi_from_bbox(
    (SAMPLE.bbox[0] + 0.002, SAMPLE.bbox[1] + 0.002, SAMPLE.bbox[2] - 0.002, SAMPLE.bbox[3] - 0.002),
    name="athens-test",
)


class LabelledVessels:
    """The samples' labelled vessels (real ships, hand-labelled in sen2ships) in place of a detector, for
    tests whose subject is the pipeline and its outputs rather than detector quality; the scene id's
    prefix names the sample whose labels apply (copies made here share their source's vessels)."""

    def __init__(self) -> None:
        self.labels = {s.id: json.loads(s.vessels.read_text())["features"] for s in list_samples()}

    def __call__(self, window, classes=("ship",), **kw) -> list[Detection]:
        sample = next(k for k in self.labels if window.scene_id.startswith(k.split("-")[0]))
        out = []
        for f in self.labels[sample] if "ship" in classes else []:
            poly = shape(f["geometry"])
            c = poly.centroid
            p = f["properties"]
            out.append(
                Detection(
                    "ship",
                    1.0,
                    poly,
                    c.x,
                    c.y,
                    p["length_m"],
                    p["width_m"],
                    0.0,
                    scene=window.scene_id,
                    acquired=window.acquired,
                    detector="labels",
                )
            )
        return out


def labels_inside(aoi, sample=SAMPLE) -> int:
    """Labelled vessels of ``sample`` whose centre lies in ``aoi``."""
    feats = json.loads(sample.vessels.read_text())["features"]
    return sum(aoi.geometry.contains(shape(f["geometry"]).centroid) for f in feats)


class CountingDetect:
    def __init__(self, inner, fail_on: str | None = None) -> None:
        self.inner, self.calls, self.fail_on = inner, [], fail_on

    def __call__(self, window, **kw):
        self.calls.append(window.scene_id)
        if window.scene_id == self.fail_on:
            raise KeyboardInterrupt
        return self.inner(window, **kw)


def _run(imagery_dir: Path, out: Path, steps: pipeline.Steps, **kw) -> pipeline.RunResult:
    kw.setdefault("report", False)  # charts and report are tested in test_report.py
    kw.setdefault("method", "baseline")
    return pipeline.run(
        AOI,
        DAY - timedelta(days=1),
        DAY + timedelta(days=3),
        out_dir=out,
        source=f"local:{imagery_dir}",
        progress=False,
        steps=steps,
        **kw,
    )


def test_run_counts_resumes_and_records_the_failing_scene(imagery_dir, tmp_path):
    counting = CountingDetect(LabelledVessels())
    steps = replace(pipeline.default_steps(), detect=counting)
    first = _run(imagery_dir, tmp_path / "run", steps)

    scenes = first.scenes.set_index("scene")
    assert scenes.loc["athens-broken", "status"] == "failed"
    assert "B08" in scenes.loc["athens-broken", "reason"]
    assert sorted(counting.calls) == ["athens-2023-08-18", "athens-later"]

    daily = first.daily()
    assert list(daily["date"]) == [DAY + timedelta(days=i) for i in range(-1, 4)]
    # the sample has no cloud band: its days are counted, marked as seen without a cloud mask
    assert list(daily["status"]) == ["unobserved", *["observed-unmasked", "unobserved"] * 2]
    seen = daily[daily["status"] == "observed-unmasked"]["count"]
    assert list(seen) == [labels_inside(AOI)] * 2
    assert daily["count"].isna().sum() == 3
    assert (tmp_path / "run" / "scenes" / "athens-later.json").is_file()
    # the copy is a revisit: every ship links into a two-day stay
    v = next(v for v in first.visits if v.zone == "all")
    assert v.stays == v.max_simultaneous == v.distinct_min == int(seen.iloc[0])

    counting.calls.clear()
    again = _run(imagery_dir, tmp_path / "run", steps)
    assert counting.calls == []  # the failed scene is retried (it fails in reading, before detection)
    pd.testing.assert_frame_equal(again.daily_counts, first.daily_counts)
    assert len(again.detections) == len(first.detections)


def test_interrupted_run_keeps_finished_scenes_and_resumes(imagery_dir, tmp_path):
    base = pipeline.default_steps()
    interrupting = CountingDetect(base.detect, fail_on="athens-later")
    with pytest.raises(KeyboardInterrupt):
        _run(imagery_dir, tmp_path / "run", replace(base, detect=interrupting))
    done = json.loads((tmp_path / "run" / "scenes" / "athens-2023-08-18.json").read_text())
    assert (
        done["status"] == "unknown" and done["n_detections"] > 0
    )  # no cloud band in the chip: cloud unknown
    assert not (tmp_path / "run" / "scenes" / "athens-later.json").exists()
    assert not list((tmp_path / "run" / "scenes").glob(".*.part"))

    counting = CountingDetect(base.detect)
    result = _run(imagery_dir, tmp_path / "run", replace(base, detect=counting))
    assert counting.calls == ["athens-later"]
    assert (result.daily()["status"] == "observed-unmasked").sum() == 2


def test_a_local_scene_file_replaced_under_its_name_is_redone(tmp_path):
    import os

    root = tmp_path / "scenes"
    _copy_scene(SAMPLE.path.parent, root, "athens-copy", 0)
    counting = CountingDetect(LabelledVessels())
    steps = replace(pipeline.default_steps(), detect=counting)
    _run(root, tmp_path / "run", steps)
    _run(root, tmp_path / "run", steps)
    assert counting.calls == ["athens-copy"]  # the rerun read it back
    tif = root / "athens-copy" / "athens-copy.tif"
    st = tif.stat()
    os.utime(tif, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # new pixels under the same name
    _run(root, tmp_path / "run", steps)
    assert counting.calls == ["athens-copy", "athens-copy"]
    sidecar = root / "athens-copy" / "scene.json"  # the same pixels, re-described: another level
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "processing_level": "L1C"}))
    again = _run(root, tmp_path / "run", steps)
    assert counting.calls == ["athens-copy"] * 3
    assert list(again.scenes["processing_level"]) == ["L1C"]


@pytest.mark.parametrize(
    "damage", ["empty", "corrupt", "missing", "fewer features", "no properties", "no geometry", "no class"]
)
def test_a_finished_scene_whose_detections_file_is_damaged_is_redone(imagery_dir, tmp_path, damage):
    counting = CountingDetect(LabelledVessels())
    steps = replace(pipeline.default_steps(), detect=counting)
    first = _run(imagery_dir, tmp_path / "run", steps)
    geojson = tmp_path / "run" / "scenes" / "athens-later.geojson"
    if damage == "missing":
        geojson.unlink()
    elif damage == "fewer features":
        fc = json.loads(geojson.read_text())
        geojson.write_text(json.dumps({**fc, "features": fc["features"][1:]}))
    elif damage.startswith("no "):  # as many features, one of them edited
        fc = json.loads(geojson.read_text())
        f = fc["features"][0]
        if damage == "no class":
            del f["properties"]["class"]
        else:
            f[damage[3:]] = None
        geojson.write_text(json.dumps(fc))
    else:
        geojson.write_text({"empty": "", "corrupt": '{"type": "FeatureCollection", "feat'}[damage])

    counting.calls.clear()
    again = _run(imagery_dir, tmp_path / "run", steps)
    assert counting.calls == ["athens-later"]
    pd.testing.assert_frame_equal(again.daily_counts, first.daily_counts)
    assert len(again.detections) == len(first.detections)


def test_scene_ids_that_differ_only_in_odd_characters_keep_their_own_files(tmp_path):
    imagery = tmp_path / "scenes"
    _copy_scene(SAMPLE.path.parent, imagery, "athens 2023-08-20", 2)
    _copy_scene(SAMPLE.path.parent, imagery, "athens_2023-08-20", 2)
    steps = replace(pipeline.default_steps(), detect=LabelledVessels())
    first = _run(imagery, tmp_path / "run", steps)
    assert sorted(first.scenes["scene"]) == ["athens 2023-08-20", "athens_2023-08-20"]
    assert list(first.scenes["n_detections"]) == [labels_inside(AOI)] * 2
    assert len(first.detections) == 2 * labels_inside(AOI)
    # the id of safe characters keeps its file name, so run folders written before still resume
    assert (tmp_path / "run" / "scenes" / "athens_2023-08-20.json").is_file()
    assert len(list((tmp_path / "run" / "scenes").glob("*.json"))) == 2

    counting = CountingDetect(LabelledVessels())
    again = _run(imagery, tmp_path / "run", replace(steps, detect=counting))
    assert counting.calls == []
    assert len(again.detections) == len(first.detections)


def test_safe_name_keeps_ids_of_safe_characters_and_tells_the_others_apart():
    assert safe_name("S2A_34SGH_20230818_0_L2A") == "S2A_34SGH_20230818_0_L2A"
    names = {safe_name(i) for i in ("a b", "a_b", "a/b", "x" * 250, "x" * 251)}
    assert len(names) == 5 and "a_b" in names and all(len(n) <= 200 for n in names)


def test_changed_parameters_or_zones_redo_the_scenes(imagery_dir, tmp_path):
    base = pipeline.default_steps()
    _run(imagery_dir, tmp_path / "run", base)
    counting = CountingDetect(base.detect)
    _run(imagery_dir, tmp_path / "run", replace(base, detect=counting), conf=0.9)
    assert sorted(counting.calls) == ["athens-2023-08-18", "athens-later"]

    # a new zone: coverage and membership were computed per scene, so the scenes are redone
    zoned = replace(
        AOI, zones=(Zone("west", "berth", box(AOI.bbox[0], AOI.bbox[1], AOI.bbox[0] + 0.01, AOI.bbox[3])),)
    )
    counting.calls.clear()
    result = pipeline.run(
        zoned,
        DAY,
        DAY,
        out_dir=tmp_path / "run",
        source=f"local:{imagery_dir}",
        method="baseline",
        conf=0.9,
        progress=False,
        report=False,
        steps=replace(base, detect=counting),
    )
    assert counting.calls == ["athens-2023-08-18"]
    assert set(result.daily_counts["zone"]) == {"all", "west"}
    assert result.coverage.set_index("zone").loc["west", "observed_fraction"] == pytest.approx(1.0)
    counts = result.daily_counts.set_index("zone")["count"]
    assert counts["west"] <= counts["all"]


def test_zone_coverage_reaches_the_daily_table(imagery_dir, tmp_path):
    """Clouds over part of the AOI (a real mask on the window) make the day partial, not observed."""
    base = pipeline.default_steps()

    def cloudy_left_half(window, area=None):
        cloud = np.zeros(window.grid.shape, bool)
        cloud[:, : window.grid.width // 2] = True
        return pipeline.screen_clouds(replace(window, cloud=cloud), area)

    result = _run(imagery_dir, tmp_path / "run", replace(base, screen=cloudy_left_half))
    seen = result.daily()[result.daily()["status"] != "unobserved"]
    assert set(seen["status"]) == {"partial"}
    assert seen["observed_fraction"].between(0.4, 0.6).all()
    assert seen["cloud_fraction"].between(0.4, 0.6).all()


def test_an_l1c_scene_gets_its_haze_taken_off_and_its_outputs_say_so(tmp_path):
    # the real sample (L2A) and the same pixels as an L1C scene a day later, with a Rayleigh path light
    # (benchmarks/seg_toa.py, sun 25° from zenith): the ship model subtracts it on the L1C scene only
    root = tmp_path / "scenes"
    shutil.copytree(SAMPLE.path.parent, root / SAMPLE.id)
    rayleigh = {"B02": 0.058, "B03": 0.034, "B04": 0.017, "B08": 0.007}
    _copy_scene(SAMPLE.path.parent, root, "athens-l1c", 1, path_light=rayleigh)
    res = _run(root, tmp_path / "out", pipeline.default_steps(), method="auto")
    scenes = pd.read_csv(res.paths["scenes_csv"]).set_index("scene")
    assert scenes.loc["athens-l1c", "processing_level"] == "L1C"
    dets = pd.read_parquet(res.paths["detections_parquet"])
    labels = dets.groupby("scene")["detector"].unique()
    assert list(labels["athens-l1c"]) == ["seg:ships-s2-seg-ens[B02+B03+B04+B08;haze-corrected]"]
    assert list(labels[SAMPLE.id]) == ["seg:ships-s2-seg-ens[B02+B03+B04+B08]"]
    n = dets["scene"].value_counts()
    assert abs(n["athens-l1c"] - n[SAMPLE.id]) <= 0.3 * n[SAMPLE.id]  # about as many ships seen
    # the haze index: B02's dark level, raised by exactly the path light added (one DN of rounding)
    dark = scenes["dark_b02"]
    assert 0.0 < dark[SAMPLE.id] < 0.05
    assert dark["athens-l1c"] - dark[SAMPLE.id] == pytest.approx(rayleigh["B02"], abs=2e-4)


def test_a_scene_with_an_all_nodata_band_is_observed_and_read_without_it(tmp_path):
    # B08 listed but empty (an empty asset, a masked band): the reader's "every band has data" would make
    # the whole scene invalid, so it would be screened out as unobserved; it is read as a true-colour scene
    root = tmp_path / "scenes"
    _copy_scene(SAMPLE.path.parent, root, "athens-no-nir", 0, empty=("B08",))
    res = _run(root, tmp_path / "out", pipeline.default_steps(), method="auto")
    scenes = pd.read_csv(res.paths["scenes_csv"]).set_index("scene")
    assert scenes.loc["athens-no-nir", "observed_fraction"] > 0.9
    assert "band(s) with no data left out: B08" in scenes.loc["athens-no-nir", "reason"]
    dets = pd.read_parquet(res.paths["detections_parquet"])
    assert len(dets) and set(dets["detector"]) == {"seg:ships-s2-seg-ens[B02+B03+B04]"}
    # the truck model needs B08: asked for trucks alone, the scene fails in one line that says the band
    # is empty, not missing
    res = _run(root, tmp_path / "trucks", pipeline.default_steps(), classes=("truck",))
    rec = pd.read_csv(res.paths["scenes_csv"]).set_index("scene").loc["athens-no-nir"]
    assert rec["status"] == "failed" and "B08" in rec["reason"] and "listed, but all nodata" in rec["reason"]
    # asked for ships and trucks, the scene still counts its ships; its day is unobserved for trucks only
    res = _run(
        root,
        tmp_path / "both",
        pipeline.default_steps(),
        method="auto",
        classes=("ship", "truck"),
        report=True,
    )
    rec = res.scenes.set_index("scene").loc["athens-no-nir"]
    assert rec["status"] == "unknown" and rec["unobserved_classes"] == "truck"  # unknown: no cloud band
    assert "no truck detection: missing band(s) B08" in rec["reason"]
    daily = res.daily_counts
    day = daily[(daily["date"] == DAY) & (daily["zone"] == "all")].set_index("class")
    assert day.loc["ship", "status"] == "observed-unmasked" and day.loc["ship", "count"] > 0
    assert day.loc["truck", "status"] == "unobserved" and pd.isna(day.loc["truck", "count"])
    assert "could not be searched for trucks" in res.paths["report_md"].read_text()
    assert res.summary()["scenes_without_class"] == {"truck": 1}


def test_bad_input_is_an_input_error(tmp_path):
    from imagery.errors import InputError

    with pytest.raises(InputError, match="before start"):
        pipeline.run(AOI, "2018-05-02", "2018-05-01", out_dir=tmp_path, steps=pipeline.default_steps())
    with pytest.raises(InputError, match="not a date"):
        pipeline.run(AOI, "May", "2018-05-01", out_dir=tmp_path, steps=pipeline.default_steps())


def test_default_collection_follows_the_l2a_archive():
    assert pipeline.default_collection("earth-search", date(2018, 5, 1)) == "sentinel-2-l1c"
    assert pipeline.default_collection("earth-search", date(2019, 5, 1)) == "sentinel-2-l2a"
    assert pipeline.default_collection("planetary-computer", date(2018, 5, 1)) == "sentinel-2-l2a"
    assert pipeline.default_collection("local:/x", date(2018, 5, 1)) == "any"
    assert pipeline.default_collection("earth-search", date(2018, 5, 1), "cfar") == "sentinel-1-grd"


def test_method_applies_to_classes_that_have_it():
    from detect.detectors import registered

    ship_methods = {m for c, m in registered() if c == "ship"}
    assert pipeline.detector_methods(["ship"], "baseline") == {"ship": "baseline"}
    assert "yolo" in ship_methods
    from imagery.errors import InputError

    with pytest.raises(InputError, match="unknown detector method 'no-such-method'"):
        pipeline.detector_methods(["ship"], "no-such-method")

    with pytest.raises(InputError, match="no detector for class 'zeppelin'"):
        pipeline.detector_methods(["zeppelin"], "yolo")
    # a truck method asked of ships ran auto without a word; for trucks alone it is theirs
    with pytest.raises(InputError, match=r"--method gbm has no ship detector; ship methods: .*seg-ens"):
        pipeline.detector_methods(["ship", "truck"], "gbm")
    assert pipeline.detector_methods(["truck"], "gbm") == {"truck": "gbm"}
    assert pipeline.detector_methods(["ship", "truck"], "seg") == {"ship": "seg", "truck": "gbm"}


def test_other_weights_make_another_record_key(tmp_path, monkeypatch):
    """A scene counted with other weights (a retrained model) is redone, not reused."""
    grid = AOI.grid(10.0)
    methods = {"ship": "yolo"}
    shipped = record_key(methods, None, grid, AOI)
    assert shipped["weights"]["ship"] and shipped == record_key(methods, None, grid, AOI)
    spec = json.loads((Path(pipeline.__file__).parents[2] / "weights" / "ships-s2.json").read_text())
    (tmp_path / "ships-s2.json").write_text(json.dumps({**spec, "sha256": "0" * 64}))
    monkeypatch.setenv("HARBORWATCH_WEIGHTS_DIR", str(tmp_path))
    retrained = record_key(methods, None, grid, AOI)
    assert retrained["weights"] == {"ship": "0" * 64} and retrained != shipped
    assert record_key({"ship": "baseline"}, None, grid, AOI)["weights"] == {"ship": None}


def test_another_haze_reference_makes_another_record_key(tmp_path, monkeypatch):
    """The seg spec's dark_reference changes what an L1C scene gives, so it is part of the key too."""
    grid = AOI.grid(10.0)
    methods = {"ship": "seg"}
    shipped = record_key(methods, None, grid, AOI)
    spec = json.loads((Path(pipeline.__file__).parents[2] / "weights" / "ships-s2-seg.json").read_text())
    assert shipped["weights"]["ship"].startswith(spec["sha256"] + "/dark:")
    (tmp_path / "ships-s2-seg.json").write_text(json.dumps({**spec, "dark_reference": {"B02": 0.03}}))
    monkeypatch.setenv("HARBORWATCH_WEIGHTS_DIR", str(tmp_path))
    assert record_key(methods, None, grid, AOI) != shipped
    (tmp_path / "ships-s2-seg.json").write_text(json.dumps({**spec, "dark_reference": {}}))
    assert record_key(methods, None, grid, AOI)["weights"] == {"ship": spec["sha256"]}


def test_plan_run_reads_2018_l1c_from_google_cloud_and_checks_classes():
    setup = pipeline.plan_run(
        AOI,
        date(2018, 5, 1),
        source="earth-search",
        collection=None,
        classes=["ship", " ship", "truck"],
        method="yolo",
        conf=None,
        sensors=None,
    )
    assert setup.collections == {"S2": "sentinel-2-l1c"}  # L2A is not global before Dec 2018
    assert setup.sources == {"S2": "earth-search:gcp"} and setup.classes == ("ship", "truck")
    assert setup.methods == {"S2": {"ship": "yolo", "truck": "gbm"}} and set(setup.keys) == {"S2", "S1"}
    common = {"collection": None, "method": "yolo", "conf": None}
    radar = pipeline.plan_run(AOI, DAY, source="planetary-computer", classes=["ship"], sensors="s1", **common)
    assert radar.methods == {"S1": {"ship": "cfar"}} and radar.sources == {"S1": "planetary-computer"}
    with pytest.raises(InputError, match="requester-pays"):
        pipeline.plan_run(AOI, DAY, source="earth-search", classes=["ship"], sensors="s1", **common)
    with pytest.raises(InputError, match="no classes"):
        pipeline.plan_run(AOI, DAY, source="earth-search", classes=[" "], sensors=None, **common)


def _band_folder(root: Path, scene_id: str, days_later: int, corrupt: str) -> None:
    """The sample as a band folder (one file per band, a scene.json), with band ``corrupt`` garbage."""
    folder = root / scene_id
    folder.mkdir()
    with rasterio.open(SAMPLE.path) as src:
        profile = {**src.profile, "count": 1, "driver": "GTiff"}
        for i, name in enumerate(src.descriptions, start=1):
            with rasterio.open(folder / f"athens_{name}.tif", "w", **profile) as out:
                out.write(src.read(i), 1)
    (folder / f"athens_{corrupt}.tif").write_bytes(b"not a tiff at all")
    when = (SAMPLE.datetime + timedelta(days=days_later)).isoformat().replace("+00:00", "Z")
    (folder / "scene.json").write_text(json.dumps({"id": scene_id, "datetime": when}))


def test_corrupt_files_are_failed_scenes_and_the_run_goes_on(tmp_path):
    """A corrupt multi-band file and a band folder with a corrupt band file the detector needs are each a
    failed scene in scenes.csv with a one-line reason; a corrupt band it does not need is named in the
    reason of a counted scene. The good scenes are counted and every output is written."""
    root = tmp_path / "imagery"
    shutil.copytree(SAMPLE.path.parent, root / SAMPLE.id)
    (root / "athens-corrupt-2023-08-19.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    _band_folder(root, "athens-bands", 2, corrupt="B08")  # the baseline detector reads B08
    _band_folder(root, "athens-bands-b04", 3, corrupt="B04")

    result = _run(root, tmp_path / "run", pipeline.default_steps(), report=True)

    scenes = pd.read_csv(tmp_path / "run" / "scenes.csv").set_index("scene")
    assert sorted(scenes.index) == [
        "athens-2023-08-18",
        "athens-bands",
        "athens-bands-b04",
        "athens-corrupt-2023-08-19",
    ]
    for bad, file in (
        ("athens-corrupt-2023-08-19", "athens-corrupt-2023-08-19.tif"),
        ("athens-bands", "B08"),
    ):
        assert scenes.loc[bad, "status"] == "failed"
        reason = scenes.loc[bad, "reason"]
        assert reason.startswith("RasterReadError: cannot read") and file in reason and "\n" not in reason
    assert scenes.loc["athens-bands-b04", "status"] == "unknown"  # no cloud band in the sample
    assert "unreadable band file(s) not used: B04" in scenes.loc["athens-bands-b04", "reason"]
    for name in ("daily_counts.csv", "detections.geojson", "run.json", "counts.png", "report.md"):
        assert (tmp_path / "run" / name).is_file(), name
    counts = result.daily().set_index("date")["count"]
    assert counts[DAY] == counts[DAY + timedelta(days=3)] > 0


def test_trucks_on_an_l1c_scene_are_haze_corrected_and_the_report_says_what_l1c_costs(tmp_path):
    # the real sample (L2A) and the same pixels as an L1C scene a day later (Rayleigh path light, as above);
    # trucks only: the truck model takes the haze off the L1C scene (the port's window has open water), the
    # report states the truck model's L1C caveat, not the ship model's, and its daily table gives each
    # observed day the haze index of the scene that counted it
    from detect.report.blocks import TRUCK_L1C_CAVEAT

    root = tmp_path / "scenes"
    shutil.copytree(SAMPLE.path.parent, root / SAMPLE.id)
    rayleigh = {"B02": 0.058, "B03": 0.034, "B04": 0.017, "B08": 0.007}
    _copy_scene(SAMPLE.path.parent, root, "athens-l1c", 1, path_light=rayleigh)
    res = _run(root, tmp_path / "out", pipeline.default_steps(), classes=("truck",), report=True)
    dets = pd.read_parquet(res.paths["detections_parquet"])
    labels = dets.groupby("scene")["detector"].unique()
    assert list(labels["athens-l1c"]) == ["trucks-s2-gbm[haze-corrected]"]
    assert list(labels[SAMPLE.id]) == ["trucks-s2-gbm"]
    text = (tmp_path / "out" / "report.md").read_text()
    assert TRUCK_L1C_CAVEAT in text and "the ship model was trained on Level-2A" not in text
    dark = pd.read_csv(res.paths["scenes_csv"]).set_index("scene")["dark_b02"]
    rows = [r.split("|") for r in text.splitlines() if r.startswith("| 20")]  # the daily table's rows
    head = next(r.split("|") for r in text.splitlines() if r.startswith("| date |"))
    col, scol = head.index(" dark_b02 "), head.index(" scene ")
    shown = {r[scol].strip(): r[col].strip() for r in rows if r[scol].strip()}
    assert shown == {sc: f"{dark[sc]:.3f}" for sc in (SAMPLE.id, "athens-l1c")}
    assert all(r[col].strip() == "" for r in rows if not r[scol].strip())  # unobserved days: no index
    assert "`dark_b02` is a haze index" in text


def test_a_scene_key_stamps_local_files_by_path_or_file_link_and_leaves_remote_ones(tmp_path):
    from detect.pipeline.records import scene_key
    from imagery.catalog import get_catalog

    root = tmp_path / "scenes"
    _copy_scene(SAMPLE.path.parent, root, "athens-copy", 0)
    [scene] = get_catalog(f"local:{root}").search(AOI, DAY, DAY + timedelta(days=1), collection="any")
    key = {"version": 3}
    plain = scene_key(scene, key)
    assert set(plain) == {"version", "files"}
    linked = replace(scene, assets={b: replace(a, href=f"file://{a.href}") for b, a in scene.assets.items()})
    assert scene_key(linked, key) == plain  # the imagery cache stamps file:// links too
    remote = replace(scene, assets={b: replace(a, href=f"https://x/{b}") for b, a in scene.assets.items()})
    assert scene_key(remote, key) == key


def test_a_rerun_without_baseline_or_claims_removes_their_earlier_files(imagery_dir, tmp_path):
    """baseline.csv/.json/.png, baseline_daily_counts.csv and claims.png of an earlier run stayed beside a
    claims.json of [] and a report that no longer mentioned them."""
    steps = replace(pipeline.default_steps(), detect=LabelledVessels())
    claims = tmp_path / "claims.yaml"
    claims.write_text(
        f"- {{id: c, source: s, aoi: {AOI.name}, start: {DAY}, end: {DAY}, metric: max_simultaneous, "
        "value: 1}\n"
    )
    out = tmp_path / "run"
    baseline = (DAY - timedelta(days=10), DAY - timedelta(days=5))
    _run(imagery_dir, out, steps, report=True, claims=str(claims), baseline=baseline)
    optional = {"baseline.csv", "baseline.json", "baseline.png", "baseline_daily_counts.csv", "claims.png"}
    assert optional <= {p.name for p in out.iterdir()}
    _run(imagery_dir, out, steps, report=True)
    assert not optional & {p.name for p in out.iterdir()}
    assert json.loads((out / "claims.json").read_text()) == []
