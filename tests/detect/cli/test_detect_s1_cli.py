"""`harborwatch detect` on Sentinel-1: routed to the CFAR detector, the GeoJSON contract with sensor S1,
calibration from the file or the options, and a one-line exit-2 error for input without calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from detect.cli import main
from detect.core.geometry import CONTRACT_PROPERTIES
from detect.sar.sim import inject_vessel, simulate_clutter
from imagery.sar import declared_quantity, is_sentinel1, to_db
from tests.imagery.test_sar_read import PRODUCT, with_calibration

SEA = 10 ** (-20 / 10)
#: (row, col, length_m) of the vessels written into the simulated scene, 15 dB above the sea.
VESSELS = [(60, 60, 100.0), (60, 200, 150.0), (200, 130, 200.0)]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["-q", *argv])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def s1_geotiff(path: Path, *, description: str, db: bool = False, tags: dict | None = None) -> Path:
    """A 260 × 260 sigma0 scene at 10 m (UTM 51N) with three vessels, as a one-band GeoTIFF."""
    rng = np.random.default_rng(4)
    x = simulate_clutter((260, 260), -20.0, 4.4, rng=rng)
    for row, col, length in VESSELS:
        inject_vessel(x, row, col, length, 10.0, 15.0, SEA, heading_deg=60.0, rng=rng)
    data = to_db(x) if db else x
    profile = dict(
        driver="GTiff",
        width=260,
        height=260,
        count=1,
        dtype="float32",
        crs="EPSG:32651",
        transform=Affine(10, 0, 600_000, 0, -10, 4_170_000),
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[None].astype(np.float32))
        dst.set_band_description(1, description)
        dst.update_tags(**(tags or {}))
    return path


def features(path: Path) -> list[dict]:
    return json.loads(path.read_text())["features"]


@pytest.mark.parametrize(
    ("name", "description", "db", "tags"),
    [
        ("longkou.tif", "VV", False, {"SAR_QUANTITY": "sigma0"}),
        ("snap_export.tif", "Sigma0_VV_db", True, {}),
    ],
    ids=["tagged-linear", "snap-names-db"],
)
def test_an_s1_geotiff_goes_to_cfar_and_gives_s1_ships(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, description: str, db: bool, tags: dict
) -> None:
    path = s1_geotiff(tmp_path / name, description=description, db=db, tags=tags)
    out = tmp_path / "ships.geojson"
    rc, stdout, _ = run(["detect", str(path), "--out", str(out), "--json"], capsys)  # --method auto
    assert rc == 0
    summary = json.loads(stdout)
    assert summary["counts"] == {"ship": len(VESSELS)}
    feats = features(out)
    assert len(feats) == len(VESSELS)
    for f in feats:
        p = f["properties"]
        assert set(CONTRACT_PROPERTIES) <= set(p)
        assert p["sensor"] == "S1" and p["detector"] == "cfar" and p["class"] == "ship"
        assert p["quantity"] == "sigma0" and p["polarisation"] == "VV"
        assert p["peak_db"] is not None and p["peak_db"] > -10  # absolute dB: read as calibrated sigma0
    lengths = sorted(f["properties"]["length_m"] for f in feats)
    for got, truth in zip(lengths, sorted(v[2] for v in VESSELS), strict=True):
        assert 0.7 * truth < got < 1.4 * truth + 20


def test_s1_inputs_are_recognised_by_name_tag_bands_or_safe_folder(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    safe = fixtures_dir / "sar" / PRODUCT
    assert is_sentinel1(safe) and is_sentinel1(safe / "measurement" / "iw-vv.tiff")
    assert is_sentinel1(s1_geotiff(tmp_path / "a.tif", description="VH"))
    assert is_sentinel1(s1_geotiff(tmp_path / "b.tif", description="", tags={"SAR_QUANTITY": "gamma0"}))
    assert is_sentinel1(s1_geotiff(tmp_path / "x_hh.tif", description=""))
    assert not is_sentinel1(fixtures_dir / "chips" / "honolulu_chip.tif")
    assert declared_quantity(tmp_path / "b.tif") == ("gamma0", False)
    assert declared_quantity(s1_geotiff(tmp_path / "c.tif", description="Gamma0_VV_db")) == ("gamma0", True)


def test_input_without_calibration_is_one_line_and_exit_2(
    fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ships.geojson"
    rc, stdout, err = run(["detect", str(fixtures_dir / "sar" / PRODUCT), "--out", str(out)], capsys)
    assert rc == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("harborwatch: error: no calibration LUT for VV")
    assert "--uncalibrated" in err and "--calibration" in err and "Traceback" not in err
    assert not out.exists()
    # A float GeoTIFF that names its polarisation but not its quantity is refused the same way.
    tif = s1_geotiff(tmp_path / "x_VV.tif", description="")
    rc, _, err = run(["detect", str(tif), "--out", str(out), "--method", "cfar"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "--calibrated" in err


def test_uncalibrated_safe_folder_is_read_as_dn2_when_asked(
    fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ships.geojson"
    safe = fixtures_dir / "sar" / PRODUCT
    rc, stdout, _ = run(["detect", str(safe), "--out", str(out), "--uncalibrated", "--json"], capsys)
    assert rc == 0
    summary = json.loads(stdout)
    assert summary["paths"][0]["scene"] == PRODUCT
    feats = features(out)
    assert feats and all(f["properties"]["sensor"] == "S1" for f in feats)
    assert {f["properties"]["quantity"] for f in feats} == {"dn2"}
    assert all(f["properties"]["peak_db"] is None for f in feats)  # DN² has no absolute scale
    assert all(f["properties"]["acquired"] == "2018-07-16T00:40:42Z" for f in feats)


def test_a_safe_folder_with_its_calibration_is_sigma0(
    fixtures_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    safe = with_calibration(fixtures_dir / "sar" / PRODUCT, tmp_path, 500.0)
    out = tmp_path / "ships.geojson"
    rc, _, _ = run(["detect", str(safe), "--out", str(out), "--method", "cfar"], capsys)
    assert rc == 0
    feats = features(out)
    assert feats and {f["properties"]["quantity"] for f in feats} == {"sigma0"}
    assert all(f["properties"]["peak_db"] is not None for f in feats)


def test_an_optical_method_on_s1_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tif = s1_geotiff(tmp_path / "s1.tif", description="VV", tags={"SAR_QUANTITY": "sigma0"})
    rc, _, err = run(["detect", str(tif), "--out", str(tmp_path / "o.geojson"), "--method", "yolo"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "Sentinel-1" in err and "cfar" in err
