"""The local source: band folders and multi-band GeoTIFFs written here with rasterio."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box

from imagery.aoi import Aoi
from imagery.catalog import get_catalog
from imagery.errors import InputError

# A 2 km square at 10 m in UTM 51N on the Longkou waterfront (EPSG:32651).
ORIGIN = (259600.0, 4171040.0)
AOI = Aoi(name="longkou-test", kind="port", geometry=box(120.28, 37.64, 120.29, 37.65))


def write_tif(
    path: Path,
    bands: int = 1,
    descriptions: tuple[str, ...] | None = None,
    size: int = 200,
    origin: tuple[float, float] = ORIGIN,
    crs: str = "EPSG:32651",
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (np.arange(bands * size * size, dtype=np.uint16).reshape(bands, size, size) % 3000) + 1
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=bands,
        dtype="uint16",
        crs=crs,
        transform=Affine(10, 0, origin[0], 0, -10, origin[1]),
        nodata=0,
    ) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, d)
    return path


def test_band_folder_with_sidecar(tmp_path):
    folder = tmp_path / "longkou"
    for b in ("B02", "B03", "B04", "B08", "SCL"):
        write_tif(folder / f"longkou_{b}.tif")
    (folder / "scene.json").write_text(
        json.dumps(
            {
                "id": "longkou-2018-05-20",
                "datetime": "2018-05-20T02:33:21Z",
                "platform": "sentinel-2a",
                "processing_level": "L1C",
                "cloud_cover": 12.5,
                "bands": ["B02", "B03", "B04", "B08"],
            }
        )
    )
    cat = get_catalog(f"local:{tmp_path}")
    [s] = cat.search(AOI, "2018-05-01", "2018-06-30", collection="sentinel-2-l1c")
    assert s.id == "longkou-2018-05-20" and s.source == "local"
    assert s.datetime == datetime(2018, 5, 20, 2, 33, 21, tzinfo=timezone.utc)
    assert (s.platform, s.processing_level) == ("sentinel-2a", "L1C")
    assert (s.cloud_cover, s.crs) == (12.5, "EPSG:32651")
    assert s.bands == ("B02", "B03", "B04", "B08", "SCL")
    assert s.assets["B04"].href == str(folder / "longkou_B04.tif")
    w, south, e, n = s.footprint.bounds
    assert 120.27 < w < 120.28 and 37.62 < south < 37.64 and 120.29 < e < 120.30 and 37.65 < n < 37.66
    assert s.properties["aoi_coverage"] == pytest.approx(1.0)


def test_multiband_file_with_descriptions_and_date_in_name(tmp_path):
    write_tif(tmp_path / "S2B_MSIL2A_20180603T023319_N0206_stack.tif", 4, ("B02", "B03", "B04", "B08"))
    [s] = get_catalog(f"local:{tmp_path}").search(AOI, "2018-06-03", "2018-06-03", collection="any")
    assert s.datetime == datetime(2018, 6, 3, 2, 33, 19, tzinfo=timezone.utc)
    assert (s.platform, s.processing_level, s.processing_baseline) == ("sentinel-2b", "L2A", "02.06")
    assert s.bands == ("B02", "B03", "B04", "B08")
    assert s.assets["B08"].request["band_index"] == 4


def test_date_only_name_and_period_filter(tmp_path):
    write_tif(tmp_path / "chip_2018-05-10.tif", 2, ("B04", "B08"))
    write_tif(tmp_path / "chip_2018-07-10.tif", 2, ("B04", "B08"))
    found = get_catalog(f"local:{tmp_path}").search(AOI, "2018-05-01", "2018-06-30", collection="any")
    assert [s.id for s in found] == ["chip_2018-05-10"]
    assert found[0].properties["datetime_precision"] == "day"


def test_stac_item_beside_band_files(tmp_path):
    folder = tmp_path / "scene"
    write_tif(folder / "x_B04.tif")
    item = {
        "type": "Feature",
        "id": "S2A_51SWD_20180520_0_L1C",
        "collection": "sentinel-2-l1c",
        "properties": {
            "datetime": "2018-05-20T02:33:21.000Z",
            "platform": "sentinel-2a",
            "eo:cloud_cover": 3.0,
            "s2:processing_baseline": "02.06",
        },
    }
    (folder / "item.json").write_text(json.dumps(item))
    cat = get_catalog(f"local:{tmp_path}")
    [s] = cat.search(AOI, "2018-05-20", "2018-05-20", collection="sentinel-2-l1c")
    assert (s.id, s.processing_level) == (item["id"], "L1C")
    assert (s.cloud_cover, s.processing_baseline) == (3.0, "02.06")


def test_scene_without_datetime_is_an_input_error_naming_it(tmp_path):
    folder = tmp_path / "genoa"
    write_tif(folder / "genoa_B04.tif")
    with pytest.raises(InputError, match="genoa"):
        get_catalog(f"local:{tmp_path}").search(AOI, "2018-01-01", "2018-12-31", collection="any")


def test_aoi_outside_and_level_mismatch_are_filtered(tmp_path):
    write_tif(tmp_path / "a_20180520T023321.tif", 1, ("B04",))
    (tmp_path / "a_20180520T023321.json").write_text(json.dumps({"processing_level": "L2A"}))
    cat = get_catalog(f"local:{tmp_path}")
    far = Aoi(name="far", kind="custom", geometry=box(10, 10, 10.1, 10.1))
    assert cat.search(far, "2018-05-01", "2018-06-30", collection="any") == []
    assert cat.search(AOI, "2018-05-01", "2018-06-30", collection="sentinel-2-l1c") == []
    assert len(cat.search(AOI, "2018-05-01", "2018-06-30", collection="sentinel-2-l2a")) == 1


def test_multiband_without_band_names_is_skipped_with_a_warning(tmp_path, caplog):
    write_tif(tmp_path / "rgb_20180520T023321.tif", 3)
    assert get_catalog(f"local:{tmp_path}").search(AOI, "2018-05-01", "2018-06-30", collection="any") == []
    assert "band descriptions" in caplog.text


def test_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        get_catalog(f"local:{tmp_path / 'nope'}")


def test_corrupt_files_are_scenes_marked_unreadable(tmp_path, caplog):
    """A corrupt file is listed (marked UNREADABLE, no footprint, kept whatever the AOI) when its time
    is known, skipped with a warning when not; a band folder keeps its readable bands and names the rest."""
    from imagery.sources.local import UNREADABLE, UNREADABLE_BANDS

    (tmp_path / "stack_20180520T023321.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    (tmp_path / "nodate.tif").write_bytes(b"garbage")
    folder = tmp_path / "longkou_20180521T023321"
    for b in ("B02", "B08"):
        write_tif(folder / f"longkou_{b}.tif")
    (folder / "longkou_B04.tif").write_bytes(b"garbage")
    (tmp_path / "all-bad_20180522T023321").mkdir()
    (tmp_path / "all-bad_20180522T023321" / "x_B04.tif").write_bytes(b"garbage")

    found = get_catalog(f"local:{tmp_path}").search(AOI, "2018-05-01", "2018-06-30", collection="any")
    by_id = {s.id: s for s in found}
    assert list(by_id) == ["stack_20180520T023321", "longkou_20180521T023321", "all-bad_20180522T023321"]
    assert "stack_20180520T023321.tif" in by_id["stack_20180520T023321"].properties[UNREADABLE]
    assert by_id["stack_20180520T023321"].footprint is None
    assert "x_B04.tif" in by_id["all-bad_20180522T023321"].properties[UNREADABLE]
    good = by_id["longkou_20180521T023321"]
    assert UNREADABLE not in good.properties and good.properties["aoi_coverage"] == pytest.approx(1.0)
    assert list(good.properties[UNREADABLE_BANDS]) == ["B04"] and good.bands == ("B02", "B04", "B08")
    assert "nodate.tif" in caplog.text and "no acquisition time" in caplog.text
    assert get_catalog(f"local:{tmp_path}").search(AOI, "2018-06-01", "2018-06-30", collection="any") == []


def test_files_of_one_name_in_two_folders_are_two_scenes(tmp_path):
    # halves of one date in two folders, both named by the date: a search keeps one scene per id, so one
    # half was silently lost; each now takes its path under the root as id
    write_tif(tmp_path / "west" / "2018-05-10.tif", 2, ("B04", "B08"), size=100)
    write_tif(tmp_path / "east" / "2018-05-10.tif", 2, ("B04", "B08"), size=100, origin=(260600.0, 4171040.0))
    write_tif(tmp_path / "other" / "chip_2018-05-10.tif", 2, ("B04", "B08"))  # a unique name keeps its id
    found = get_catalog(f"local:{tmp_path}").search(AOI, "2018-05-01", "2018-06-30", collection="any")
    assert sorted(s.id for s in found) == ["chip_2018-05-10", "east/2018-05-10.tif", "west/2018-05-10.tif"]


def test_a_local_source_naming_a_file_that_is_no_raster_is_bad_input(tmp_path):
    from imagery.errors import InputError
    from imagery.sources.local import LocalCatalog

    f = tmp_path / "notes.txt"
    f.write_text("not a raster")
    with pytest.raises(InputError, match="local source: cannot read"):
        LocalCatalog(f).scenes()
