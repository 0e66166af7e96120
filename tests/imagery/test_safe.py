"""Sentinel-2 SAFE products on disk (Google Cloud's public bucket, the Copernicus Data Space): the local
source and `detect` read a granule's JP2 bands with the product's name and metadata (level, platform, time,
cloud cover, and the DN offset ESA adds from processing baseline 04.00 on).

The SAFE folders here are built from the bundled Genoa sample (real L2A reflectance): its DN written as JP2
under ESA's folder layout, plus 1000 where the product's baseline adds the offset. The metadata file is a
minimal one written here with the tags and layout of ESA's MTD_MSIL1C.xml / MTD_MSIL2A.xml (not a recorded
file)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from detect.cli import main
from imagery.errors import InputError
from imagery.read import open_raster
from imagery.safe import find_safe, read_safe
from imagery.samples import list_samples
from imagery.sources.local import LocalCatalog

SAMPLE = next(s for s in list_samples() if s.id.startswith("genoa"))
L1C = "S2B_MSIL1C_20230710T101559_N0509_R065_T32TMQ_20230710T122335"
L1C_2018 = "S2A_MSIL1C_20180520T023321_N0206_R046_T32TMQ_20180520T061935"
L2A = "S2B_MSIL2A_20230710T101559_N0509_R065_T32TMQ_20230710T131125"
BANDS = ("B02", "B03", "B04", "B08")
ZERO_COLS = 10  # the first columns hold DN 0: outside the swath


def _mtd(level: str, *, offset: int | None, cloud: float = 12.5, baseline: str = "05.09") -> str:
    """A metadata file with ESA's tags: start time, spacecraft, baseline, quantification, offsets by band
    id (``physicalBand`` names them), cloud cover."""
    boa = level == "L2A"
    quant = "BOA_QUANTIFICATION_VALUE" if boa else "QUANTIFICATION_VALUE"
    off_tag = "BOA_ADD_OFFSET" if boa else "RADIO_ADD_OFFSET"
    names = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
    wrap = "BOA_ADD_OFFSET_VALUES_LIST" if boa else "Radiometric_Offset_List"
    offsets = (
        ""
        if offset is None
        else f"<{wrap}>"
        + "".join(f'<{off_tag} band_id="{i}">{offset}</{off_tag}>' for i in range(13))
        + f"</{wrap}>"
    )
    spectral = "".join(
        f'<Spectral_Information bandId="{i}" physicalBand="{n}"/>' for i, n in enumerate(names)
    )
    lv = level[1:]  # "1C", "2A"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<n1:Level-{lv}_User_Product '
        f'xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-{lv}.xsd">'
        "<n1:General_Info><Product_Info>"
        "<PRODUCT_START_TIME>2023-07-10T10:15:59.024Z</PRODUCT_START_TIME>"
        f"<PROCESSING_LEVEL>Level-{lv}</PROCESSING_LEVEL><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>"
        "<Datatake><SPACECRAFT_NAME>Sentinel-2B</SPACECRAFT_NAME></Datatake></Product_Info>"
        f'<Product_Image_Characteristics><{quant} unit="none">10000</{quant}>{offsets}'
        f"<Spectral_Information_List>{spectral}</Spectral_Information_List></Product_Image_Characteristics>"
        "</n1:General_Info><n1:Quality_Indicators_Info>"
        f"<Cloud_Coverage_Assessment>{cloud}</Cloud_Coverage_Assessment>"
        f"</n1:Quality_Indicators_Info></n1:Level-{lv}_User_Product>"
    )


def _jp2(path: Path, a: np.ndarray, src) -> None:
    profile = dict(
        driver="JP2OpenJPEG", width=a.shape[1], height=a.shape[0], count=1, dtype="uint16", crs=src.crs,
        transform=src.transform @ src.transform.scale(src.width / a.shape[1], src.height / a.shape[0]),
        QUALITY=100, REVERSIBLE="YES",
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(a, 1)


GRANULE = "{level}_T32TMQ_A033122_20230710T101554"
SENSING = "2023-07-10T10:24:58.867Z"  # the granule's, minutes after the datatake start in the name


def _safe(
    root: Path,
    name: str,
    add_dn: int,
    mtd: str | None = None,
    *,
    granules: tuple[str, ...] = ("T32TMQ",),
    sensing: str | None = SENSING,
) -> Path:
    """A SAFE folder with the sample's bands (DN + ``add_dn``; a strip of DN 0, outside the swath) as ESA
    writes it: per granule IMG_DATA (Level-2A split into R10m and R20m, with an SCL of open water at 20 m),
    QI_DATA with masks named like bands (from baseline 04.00), MTD_TL.xml with the granule's sensing time."""
    level = "L2A" if "MSIL2A" in name else "L1C"
    safe = root / f"{name}.SAFE"
    for tile in granules:
        granule = safe / "GRANULE" / GRANULE.format(level=level).replace("T32TMQ", tile)
        img = granule / "IMG_DATA"
        stem = f"{tile}_20230710T101559"
        with rasterio.open(SAMPLE.path) as src:
            for i, band in enumerate(src.descriptions, 1):
                dn = src.read(i).astype(np.int32)
                dn = np.where(dn > 0, dn + add_dn, 0).astype(np.uint16)
                dn[:, :ZERO_COLS] = 0
                if level == "L1C":
                    folder, file = img, f"{stem}_{band}.jp2"
                else:
                    folder, file = img / "R10m", f"{stem}_{band}_10m.jp2"
                folder.mkdir(parents=True, exist_ok=True)
                _jp2(folder / file, dn, src)
                if level == "L2A" and band == "B02":  # the 20 m copies ESA also writes: never chosen
                    (img / "R20m").mkdir(parents=True, exist_ok=True)
                    _jp2(img / "R20m" / f"{stem}_{band}_20m.jp2", dn[::2, ::2] * 0 + 1, src)
                    _jp2(img / "R20m" / f"{stem}_SCL_20m.jp2", np.full((200, 200), 6, np.uint16), src)
        (granule / "QI_DATA").mkdir()
        for mask in ("MSK_DETFOO_B01.jp2", "MSK_QUALIT_B01.jp2", "MSK_CLASSI_B00.jp2"):
            (granule / "QI_DATA" / mask).write_bytes(b"not read")
        if sensing:
            (granule / "MTD_TL.xml").write_text(
                '<n1:Level-1C_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-1C_'
                f'Tile_Metadata.xsd"><n1:General_Info><SENSING_TIME metadataLevel="Standard">{sensing}'
                "</SENSING_TIME></n1:General_Info></n1:Level-1C_Tile_ID>"
            )
    if mtd is not None:
        (safe / f"MTD_MSI{level}.xml").write_text(mtd)
    return safe


def test_a_product_is_read_from_its_name_and_metadata_file(tmp_path):
    safe = _safe(tmp_path, L1C, 1000)
    p = read_safe(safe)
    assert (p.name, p.platform, p.level, p.baseline, p.tile) == (L1C, "sentinel-2b", "L1C", "05.09", "32TMQ")
    assert p.datetime.isoformat() == "2023-07-10T10:15:59+00:00"
    assert p.offset_dn("B04") == -1000 and p.scale == 1e-4 and p.offset_rule == "SAFE baseline 05.09"
    assert read_safe(tmp_path / f"{L1C_2018}.SAFE").offset_dn("B04") == 0  # baseline 02.06: no offset
    assert find_safe(next(safe.rglob("*_B04.jp2"))) == safe
    assert find_safe(tmp_path) is None
    # one granule: its own sensing time (MTD_TL.xml), not the datatake start of the name
    g = read_safe(safe, next(safe.glob("GRANULE/*")))
    assert (g.datetime.isoformat(), g.tile, g.scene_id) == ("2023-07-10T10:24:58.867000+00:00", "32TMQ", L1C)
    s1 = tmp_path / "S1A_IW_GRDH_1SDV_20230710T054411_20230710T054436_049350_05EF1A_9C3B.SAFE" / "sigma0"
    s1.mkdir(parents=True)
    assert find_safe(s1) is None  # a Sentinel-1 product is not read as a Sentinel-2 one
    # the metadata file wins: its offsets by band id (B8A is id 8), quantification and cloud cover
    mtd = _mtd("L1C", offset=-1000).replace('band_id="8">-1000', 'band_id="8">-999')
    (safe / "MTD_MSIL1C.xml").write_text(mtd)
    p = read_safe(safe)
    assert (p.offset_dn("B8A"), p.offset_dn("B08"), p.offset_dn("B09")) == (-999, -1000, -1000)
    assert (p.cloud_cover, p.quantification, p.platform, p.level) == (12.5, 10000.0, "sentinel-2b", "L1C")
    assert p.offset_rule == "SAFE MTD_MSIL1C.xml"
    # a metadata file of a baseline before 04.00 has no offset list: its baseline decides, not the name's
    (safe / "MTD_MSIL1C.xml").write_text(_mtd("L1C", offset=None, baseline="02.06"))
    assert read_safe(safe).offset_dn("B04") == 0
    (safe / "MTD_MSIL1C.xml").write_text("<not xml")
    with pytest.raises(InputError, match=r"MTD_MSIL1C\.xml"):
        read_safe(safe)


def test_detect_reads_a_granule_with_the_offset_taken_off(tmp_path, capsys):
    safe = _safe(tmp_path, L1C, 1000)
    img = next(safe.rglob("IMG_DATA"))
    want = open_raster(SAMPLE.path)
    for path in (img, safe):  # the granule's IMG_DATA, or the product folder of one granule
        got = open_raster(path)
        assert (got.scene_id, got.band_names, got.processing_level) == (L1C, BANDS, "L1C")
        # DN − 1000, × 1e-4: the sample's; DN 0 is outside the swath: no data, not −0.1
        assert not got.valid[:, :ZERO_COLS].any() and np.isnan(got.data[:, :, :ZERO_COLS]).all()
        np.testing.assert_allclose(got.data[:, :, ZERO_COLS:], want.data[:, :, ZERO_COLS:], atol=1e-6)
        assert np.nanmin(got.data) >= 0
    # through the CLI, as a user passes a downloaded product
    out = tmp_path / "ships.geojson"
    with pytest.raises(SystemExit) as e:
        main(["-q", "detect", str(safe), "--classes", "ship", "--out", str(out)])
    assert e.value.code == 0
    feats = json.loads(out.read_text())["features"]
    assert feats and {f["properties"]["scene"] for f in feats} == {L1C}
    assert {f["properties"]["acquired"] for f in feats} == {"2023-07-10T10:24:58.867000Z"}
    assert all("haze-corrected" in f["properties"]["detector"] for f in feats)  # known to be Level-1C
    with pytest.raises(SystemExit):  # the granule's IMG_DATA
        main(["-q", "detect", str(img), "--classes", "ship", "--out", str(out)])
    assert {f["properties"]["scene"] for f in json.loads(out.read_text())["features"]} == {L1C}
    with pytest.raises(SystemExit):  # the granule's own folder (IMG_DATA's parent) is read as the granule
        main(["-q", "detect", str(img.parent), "--classes", "ship", "--out", str(out)])
    assert len(json.loads(out.read_text())["features"]) == len(feats)
    with pytest.raises(SystemExit):  # the product and its granule given together are one input
        main(["-q", "detect", str(safe), str(img), "--classes", "ship", "--out", str(out)])
    assert len(json.loads(out.read_text())["features"]) == len(feats)


def test_the_local_source_makes_one_scene_per_granule_named_by_its_product(tmp_path):
    _safe(tmp_path, L1C, 1000, _mtd("L1C", offset=-1000))
    l2a_safe = _safe(tmp_path, L2A, 1000)
    scenes = {s.id: s for s in LocalCatalog(tmp_path).scenes()}
    assert set(scenes) == {L1C, L2A}  # not "IMG_DATA", and L2A's R10m/R20m are one scene
    l1c, l2a = scenes[L1C], scenes[L2A]
    assert (l1c.processing_level, l1c.platform, l1c.cloud_cover, l1c.processing_baseline) == (
        "L1C",
        "sentinel-2b",
        12.5,
        "05.09",
    )
    assert l1c.assets["B04"].offset_dn == -1000 and l1c.assets["B04"].request["offset_rule"].endswith(".xml")
    assert (l2a.processing_level, l2a.cloud_cover) == ("L2A", None)
    assert set(l2a.assets) == {*BANDS, "SCL"}
    assert l2a.assets["B02"].href.endswith("_B02_10m.jp2")  # the finest file of a band
    assert l2a.assets["B04"].offset_dn == -1000 and l2a.assets["SCL"].offset_dn == 0
    assert l2a.assets["B04"].media_type == "image/jp2"
    # detect reads such a product as one input too: the 10 m bands, offset taken off
    window = open_raster(l2a_safe)
    assert (window.scene_id, window.band_names) == (L2A, BANDS)
    np.testing.assert_allclose(
        window.data[:, :, ZERO_COLS:], open_raster(SAMPLE.path).data[:, :, ZERO_COLS:], atol=1e-6
    )


def test_a_run_over_downloaded_products_counts_ships_with_their_metadata(tmp_path, capsys):
    products = tmp_path / "products"
    _safe(products, L1C, 1000, _mtd("L1C", offset=-1000))
    west, south, east, north = SAMPLE.bbox
    aoi = f"{west + 0.004},{south + 0.004},{east - 0.004},{north - 0.004}"
    day = str(SAMPLE.datetime.date())
    with pytest.raises(SystemExit) as e:
        main(["-q", "run", "--aoi", aoi, "--start", day, "--end", day, "--source", f"local:{products}",
              "--collection", "sentinel-2-l1c", "--out", str(tmp_path / "run")])  # fmt: skip
    assert e.value.code == 0
    scenes = pd.read_csv(tmp_path / "run" / "scenes.csv")
    row = scenes.iloc[0]
    assert (row["scene"], row["processing_level"], row["platform"], row["cloud_cover"]) == (
        L1C,
        "L1C",
        "sentinel-2b",
        12.5,
    )
    assert row["n_detections"] > 0


def test_search_and_fetch_default_to_the_collection_run_uses(tmp_path, capsys):
    # a local folder says its own level (as `run` reads it): a 2023 Level-1C product is not filtered out by
    # a fixed sentinel-2-l2a default
    products = tmp_path / "products"
    _safe(products, L1C, 1000)
    day = str(SAMPLE.datetime.date())
    west, south, east, north = SAMPLE.bbox
    period = ["--aoi", f"{west},{south},{east},{north}", "--start", day, "--end", day]
    with pytest.raises(SystemExit) as e:
        main(["-q", "search", *period, "--source", f"local:{products}", "--json"])
    assert e.value.code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["processing_level"]) for r in rows] == [(L1C, "L1C")]
    with pytest.raises(SystemExit) as e:
        main(["-q", "fetch", *period, "--source", f"local:{products}", "--out", str(tmp_path / "out")])
    assert e.value.code == 0
    assert len(list((tmp_path / "out").glob("*.tif"))) == 1


def test_broken_metadata_mixed_folders_and_old_multi_granule_products_each_count(tmp_path, capsys):
    products = tmp_path / "products"
    good = _safe(products, L2A, 1000, _mtd("L2A", offset=-1000))
    broken = _safe(products, L1C, 1000)
    (broken / "MTD_MSIL1C.xml").write_text("")  # an interrupted download
    old = "S2A_OPER_PRD_MSIL1C_PDMC_20160905T104813_R065_V20160905T101559_20160905T101559"
    _safe(products, old, 0, granules=("T32TMQ", "T32TMR"), sensing=None)
    (products / "plain").mkdir()
    shutil.copy(SAMPLE.path, products / "plain" / "genoa-2023-07-10.tif")  # a GeoTIFF beside the products
    shutil.copy(SAMPLE.path.parent / "scene.json", products / "plain" / "scene.json")
    scenes = {s.id: s for s in LocalCatalog(products).scenes()}
    assert set(scenes) == {L2A, L1C, f"{old}_T32TMQ", f"{old}_T32TMR", "genoa-2023-07-10"}
    assert "MTD_MSIL1C.xml" in capsys.readouterr().err  # said, and the product's name still read
    assert scenes[L1C].assets["B04"].offset_dn == -1000 and scenes[L1C].processing_level == "L1C"
    assert scenes[f"{old}_T32TMR"].datetime.isoformat() == "2016-09-05T10:15:59+00:00"  # V…: sensing start
    assert scenes[f"{old}_T32TMR"].assets["B04"].offset_dn == 0
    assert scenes[L2A].assets["B04"].request["offset_rule"] == "SAFE MTD_MSIL2A.xml"
    assert scenes[L2A].datetime.isoformat() == "2023-07-10T10:24:58.867000+00:00"
    # a run over all of it: times of whole and fractional seconds side by side, a broken metadata file
    west, south, east, north = SAMPLE.bbox
    aoi = f"{west + 0.004},{south + 0.004},{east - 0.004},{north - 0.004}"
    with pytest.raises(SystemExit) as e:
        main(["-q", "run", "--aoi", aoi, "--start", "2023-07-10", "--end", "2023-07-10", "--source",
              f"local:{products}", "--out", str(tmp_path / "run")])  # fmt: skip
    assert e.value.code == 0
    done = pd.read_csv(tmp_path / "run" / "scenes.csv").set_index("scene")
    assert set(done.index) == {L2A, L1C, "genoa-2023-07-10"} and (done["n_detections"] > 0).all()
    assert good.is_dir()
