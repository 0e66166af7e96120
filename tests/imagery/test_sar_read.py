"""Sentinel-1 GRD reading: calibration to sigma0, GCP warping onto the grid, polarisation and LUT errors."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from imagery.errors import InputError, MissingBandsError
from imagery.sar import (
    CalibrationError,
    MissingCalibrationError,
    PolarisationError,
    calibrate,
    parse_calibration,
    product_polarisations,
    read_s1,
    to_db,
)
from imagery.sources.planetary_computer import PlanetaryComputerCatalog
from imagery.types import Asset, Grid, Scene
from tests.rangeserver import RangeServer

PRODUCT = "S1A_IW_GRDH_1SDV_20180716T004042_20180716T004107_022812_02792A_FD5B"
PC_S1 = "sentinel-1-grd__S1A_IW_GRDH_1SDV_20250312T052236_20250312T052301_058267_073394.json"
PC_BLOB = "https://sentinel1euwest.blob.core.windows.net/"


@pytest.fixture
def safe(fixtures_dir: Path) -> Path:
    return fixtures_dir / "sar" / PRODUCT


def calibration_xml(lines, pixels, sigma, pol: str = "VV") -> str:
    """A calibration annotation in the Sentinel-1 IPF layout; ``sigma`` is (len(lines), len(pixels))."""
    vectors = "".join(
        "<calibrationVector><azimuthTime>2018-07-16T00:40:42.000000</azimuthTime>"
        f"<line>{ln}</line><pixel count=\"{len(pixels)}\">{' '.join(str(p) for p in pixels)}</pixel>"
        f"<sigmaNought count=\"{len(pixels)}\">{' '.join(f'{v:.6e}' for v in row)}</sigmaNought>"
        f"<betaNought count=\"{len(pixels)}\">{' '.join('2.375e+02' for _ in pixels)}</betaNought>"
        "</calibrationVector>"
        for ln, row in zip(lines, sigma, strict=True)
    )
    return (
        f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><calibration><adsHeader><missionId>S1A</missionId>"
        f"<productType>GRD</productType><polarisation>{pol}</polarisation><mode>IW</mode></adsHeader>"
        "<calibrationInformation><absoluteCalibrationConstant>1.000000e+00</absoluteCalibrationConstant>"
        f"</calibrationInformation><calibrationVectorList count=\"{len(lines)}\">{vectors}"
        "</calibrationVectorList></calibration>"
    )


def with_calibration(safe: Path, tmp_path: Path, value: float, pol: str = "VV") -> Path:
    """A copy of the fixture SAFE folder with a constant-LUT calibration annotation."""
    out = tmp_path / safe.name
    shutil.copytree(safe, out)
    cal = out / "annotation" / "calibration"
    cal.mkdir(parents=True)
    (cal / f"calibration-iw-{pol.lower()}.xml").write_text(
        calibration_xml([0, 150, 299], [0, 150, 299], [[value] * 3] * 3, pol)
    )
    return out


def test_polarisations_come_from_the_product_name():
    assert product_polarisations(PRODUCT) == ("VV", "VH")
    assert product_polarisations("S1B_IW_GRDH_1SDH_20180716T004042_x") == ("HH", "HV")
    assert product_polarisations("S1A_IW_GRDH_1SSV_20180716T004042_x") == ("VV",)
    assert product_polarisations("T51SWD_20180520T023321_B02") is None


def test_lut_is_bilinear_between_vectors_and_clamped():
    lut = parse_calibration(calibration_xml([0, 100], [0, 10, 20], [[100, 200, 300], [300, 400, 500]]))
    a = lut.lut("sigma0", np.array([0.0, 50.0, 100.0, 500.0]), np.array([0.0, 5.0, 20.0, 40.0]))
    assert a[0].tolist() == [100, 150, 300, 300]
    assert a[1].tolist() == [200, 250, 400, 400]
    assert a[3].tolist() == a[2].tolist() == [300, 350, 500, 500]
    dn = np.array([[0, 300]], dtype=np.uint16)
    s0 = calibrate(dn, lut, row_off=50, col_off=4)  # pixels 4 and 5 of line 50 → A = 240, 250
    assert np.isnan(s0[0, 0])  # DN 0 is no data
    assert s0[0, 1] == pytest.approx(300**2 / 250**2, rel=1e-6)


def test_reads_real_grd_crop_as_sigma0_on_a_utm_grid(safe, tmp_path):
    folder = with_calibration(safe, tmp_path, 500.0)
    w = read_s1(folder, ("VV",), res_m=200.0)
    assert w.band_names == ("VV",) and w.meta["quantity"] == "sigma0" and w.meta["sensor"] == "S1"
    assert w.crs == "EPSG:32643" and w.grid.res_m == 200.0
    assert w.acquired == datetime(2018, 7, 16, 0, 40, 42, tzinfo=timezone.utc)
    # The crop is a rotated swath inside a north-up grid: most but not all of the grid is covered.
    assert 0.6 < w.valid_fraction < 0.85
    # Descending pass: lines run roughly south, pixels (range, right-looking) roughly west.
    assert 180 < w.meta["azimuth_bearing_deg"] < 200 and 270 < w.meta["range_bearing_deg"] < 290
    # Same grid, uncalibrated DN²: sigma0 must be exactly DN² / 500² wherever both are valid.
    dn2 = read_s1(safe, ("VV",), grid=w.grid, allow_uncalibrated=True)
    assert dn2.meta["quantity"] == "dn2"
    ok = w.valid & dn2.valid
    np.testing.assert_allclose(w.data[0][ok], dn2.data[0][ok] / 500.0**2, rtol=1e-5)
    # Sea in July monsoon off Kochi, decimated product: backscatter lies in a plausible range.
    db = to_db(w.data[0][ok])
    assert -30 < np.median(db) < 5


def test_gcp_warp_puts_a_bright_pixel_where_its_gcp_says(safe, tmp_path):
    """A GCP's own pixel must land at that GCP's lon/lat on the output grid (TPS is exact at GCPs)."""
    with rasterio.open(safe / "measurement" / "iw-vv.tiff") as src:
        gcps, _ = src.gcps
        profile = src.profile
        inside = [g for g in gcps if 40 <= g.row < 260 and 40 <= g.col < 260]
        dn = np.full((src.height, src.width), 100, np.uint16)
    g = inside[0]
    r, c = int(g.row), int(g.col)
    dn[r, c] = 10000
    folder = tmp_path / PRODUCT
    (folder / "measurement").mkdir(parents=True)
    profile.pop("transform", None)  # GCP-only, like the real product
    profile.update(gcps=gcps, crs="EPSG:4326")
    with rasterio.open(folder / "measurement" / "iw-vv.tiff", "w", **profile) as dst:
        dst.write(dn, 1)
    w = read_s1(folder, grid=None, res_m=50.0, allow_uncalibrated=True)
    row, col = np.unravel_index(np.nanargmax(w.data[0]), w.grid.shape)
    x, y = w.grid.transform @ (col + 0.5, row + 0.5)
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(w.crs, "EPSG:4326", always_xy=True).transform(x, y)
    # GCP (row, col) is the pixel's top-left corner; the pixel centre is half a ~200 m pixel away.
    dx = (lon - g.x) * 111_320 * np.cos(np.radians(lat))
    dy = (lat - g.y) * 110_574
    assert np.hypot(dx, dy) < 300.0


def test_asking_vv_of_an_hh_hv_product_is_a_one_line_error(safe, tmp_path):
    folder = tmp_path / PRODUCT.replace("1SDV", "1SDH")
    (folder / "measurement").mkdir(parents=True)
    shutil.copy(safe / "measurement" / "iw-vv.tiff", folder / "measurement" / "iw-hh.tiff")
    with pytest.raises(PolarisationError, match=r"carries HH\+HV, not VV; ask for HH or HV") as e:
        read_s1(folder, ("VV",), allow_uncalibrated=True)
    assert isinstance(e.value, InputError) and "\n" not in str(e.value)


def test_asking_vh_of_a_single_pol_product_is_an_error(safe, tmp_path):
    folder = tmp_path / PRODUCT.replace("1SDV", "1SSV")
    shutil.copytree(safe, folder)
    with pytest.raises(PolarisationError, match=r"carries VV, not VH"):
        read_s1(folder, ("VV", "VH"), allow_uncalibrated=True)


def test_missing_calibration_is_a_clear_error(safe):
    with pytest.raises(MissingCalibrationError, match=r"no calibration LUT for VV .*'sigma0'") as e:
        read_s1(safe, ("VV",), res_m=200.0)
    assert isinstance(e.value, InputError) and isinstance(e.value, FileNotFoundError)


def test_calibration_for_the_wrong_polarisation_is_refused(safe, tmp_path):
    xml = tmp_path / "calibration-iw-vh.xml"
    xml.write_text(calibration_xml([0, 299], [0, 299], [[500, 500], [500, 500]], pol="VH"))
    with pytest.raises(CalibrationError, match="is for VH, not VV"):
        read_s1(safe, ("VV",), res_m=200.0, calibration=xml)


def test_malformed_calibration_xml_is_a_read_error(tmp_path):
    with pytest.raises(CalibrationError, match="no calibrationVectorList"):
        parse_calibration("<calibration><adsHeader/></calibration>", "bad.xml")


def _utm_geotiff(path: Path, data: np.ndarray) -> Grid:
    t = Affine(10.0, 0, 500_000.0, 0, -10.0, 4_000_000.0)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="float32", crs="EPSG:32651", transform=t) as dst:
        dst.write(data.astype(np.float32), 1)
    return Grid("EPSG:32651", t, data.shape[1], data.shape[0])


def test_calibrated_geotiff_is_read_as_is_only_when_declared(tmp_path):
    sigma0 = np.full((40, 50), 0.01, np.float32)
    sigma0[10, 20] = 1.0
    sigma0[0, 0] = 0.0  # outside the swath
    path = tmp_path / "longkou_VV.tif"
    grid = _utm_geotiff(path, sigma0)
    with pytest.raises(MissingCalibrationError):
        read_s1(path, ("VV",))
    w = read_s1(path, ("VV",), calibrated="sigma0", db=True)
    assert w.grid == grid and w.meta["units"] == "dB"
    assert w.data[0, 10, 20] == pytest.approx(0.0) and w.data[0, 5, 5] == pytest.approx(-20.0)
    assert not w.valid[0, 0] and w.valid[5, 5]
    with pytest.raises(PolarisationError, match="carries VV, not VH"):
        read_s1(path, ("VH",), calibrated="sigma0")


def test_rtc_scene_is_gamma0_and_lists_its_polarisations(tmp_path):
    path = tmp_path / "vv.tif"
    _utm_geotiff(path, np.full((20, 20), 0.02, np.float32))
    shutil.copy(path, tmp_path / "vh.tif")
    scene = Scene(
        id="S1A_IW_GRDH_1SDV_20180601T095000_20180601T095025_022200_026800_ABCD",
        source="planetary-computer", collection="sentinel-1-rtc",
        datetime=datetime(2018, 6, 1, 9, 50, tzinfo=timezone.utc), platform="sentinel-1a",
        processing_level="GRD", cloud_cover=None, footprint=box(120, 37, 121, 38),
        assets={"vv": Asset(str(path), "VV", scale=1.0),
                "vh": Asset(str(tmp_path / "vh.tif"), "VH", scale=1.0)},
        properties={"sar:polarizations": ["VV", "VH"]},
    )
    w = read_s1(scene, ("VV", "VH"))
    assert w.band_names == ("VV", "VH") and w.meta["quantity"] == "gamma0"
    assert w.acquired == scene.datetime and w.source == "planetary-computer"
    np.testing.assert_allclose(w.data, 0.02)
    with pytest.raises(PolarisationError, match="not HH"):
        read_s1(scene, ("HH",))
    grd = Scene(**{**scene.__dict__, "collection": "sentinel-1-grd"})
    with pytest.raises(MissingCalibrationError):
        read_s1(grd, ("VV",))


def test_optical_band_names_are_not_polarisations():
    with pytest.raises(PolarisationError, match="unknown polarisation B04"):
        from imagery.sar import check_polarisations

        check_polarisations(["B04"], ["VV"], "x")
    assert not issubclass(PolarisationError, MissingBandsError)


class QuerySigner:
    """Appends the recorded SAS query to every href, as ``SasSigner`` does to Azure blob hrefs (which it
    refuses to sign on any other host, such as 127.0.0.1)."""

    sas_url = "test://query-signer"  # the key readers find it under when they re-sign

    def __init__(self, token: str) -> None:
        self.token = token

    def sign(self, href: str) -> str:
        return f"{href}?{self.token}"


def test_planetary_computer_grd_scene_is_calibrated_with_its_own_signed_luts(safe, fixtures_dir, tmp_path):
    """The recorded PC item → Scene → read_s1, with its blobs served from 127.0.0.1: the measurement crop
    as both vv and vh, and a calibration XML per polarisation at the item's own schema-calibration paths."""
    pc_dir = fixtures_dir / "stac" / "planetary-computer"
    item = json.loads((pc_dir / "items" / PC_S1).read_text(encoding="utf-8"))
    token = json.loads((pc_dir / "sas_token_sentinel2l2a01_sentinel2-l2.json").read_text())["token"]
    blobs = tmp_path / "blobs"
    for pol, a in (("vv", 500.0), ("vh", 250.0)):
        tiff = blobs / item["assets"][pol]["href"].removeprefix(PC_BLOB)
        tiff.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(safe / "measurement" / "iw-vv.tiff", tiff)
        xml = blobs / item["assets"][f"schema-calibration-{pol}"]["href"].removeprefix(PC_BLOB)
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(calibration_xml([0, 150, 299], [0, 150, 299], [[a] * 3] * 3, pol.upper()))
    with RangeServer(blobs) as server:
        served = json.loads(json.dumps(item).replace(PC_BLOB, server.base_url + "/"))
        pc = PlanetaryComputerCatalog(url="http://unused.invalid", signer=QuerySigner(token))  # type: ignore[arg-type]
        scene = pc.item_to_scene(served, "sentinel-1-grd")
        w = read_s1(scene, ("VV", "VH"), res_m=200.0)
    assert w.band_names == ("VV", "VH") and w.meta["quantity"] == "sigma0"
    assert w.acquired == scene.datetime and w.source == "planetary-computer" and w.scene_id == item["id"]
    # Both LUT files were fetched, with the SAS query, and each polarisation used its own: the same DN
    # calibrated with A = 250 instead of 500 is four times brighter.
    fetched = {r.path.split("?")[0].rsplit("/", 1)[-1] for r in server.requests if r.status in (200, 206)}
    assert {"calibration-iw-vv.xml", "calibration-iw-vh.xml", "iw-vv.tiff", "iw-vh.tiff"} <= fetched
    assert all(r.path.endswith("?" + token) for r in server.requests)
    assert w.valid_fraction > 0.5
    np.testing.assert_allclose(w.data[1][w.valid], 4.0 * w.data[0][w.valid], rtol=1e-5)
    # VV over HTTP equals VV read from the SAFE folder with the same LUT.
    local = read_s1(with_calibration(safe, tmp_path, 500.0), ("VV",), grid=w.grid)
    np.testing.assert_allclose(w.data[0], local.data[0], rtol=1e-6, equal_nan=True)
