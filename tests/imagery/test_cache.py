"""The content-addressed band cache: keys, round trips, damaged entries and concurrent writers."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from imagery.cache import Cache, default_cache_dir, strip_signature
from imagery.types import Grid

GRID = Grid("EPSG:32651", Affine(10, 0, 252810, 0, -10, 4178450), 64, 48)
HREF = "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/51/S/WD/2018/05/20/B04.tif"


def _key(cache: Cache, **kw) -> str:
    args = dict(source="planetary-computer", item_id="S2A_MSIL2A_20180520", href=HREF, band="B04", grid=GRID,
                params={"offset_dn": 0.0, "scale": 1e-4})
    args.update(kw)
    return cache.key(**args)


def test_key_ignores_url_signatures_but_not_what_determines_pixels(tmp_path):
    cache = Cache(tmp_path)
    base = _key(cache)
    assert _key(cache, href=HREF + "?st=2024-05-13&se=2024-05-14&sig=abc%3D") == base
    assert len(base) == 64
    different = [
        _key(cache, band="B03"),
        _key(cache, item_id="other"),
        _key(cache, source="earth-search"),
        _key(cache, href=HREF.replace("B04", "B08")),
        _key(cache, grid=Grid(GRID.crs, GRID.transform, 64, 49)),
        _key(cache, params={"offset_dn": -1000.0, "scale": 1e-4}),
    ]
    assert len({base, *different}) == len(different) + 1


def test_strip_signature_keeps_local_paths():
    assert strip_signature("/data/x.tif") == "/data/x.tif"
    assert strip_signature("C:\\data\\x.tif") == "C:\\data\\x.tif"
    assert strip_signature("https://h/x.tif?sig=1#frag") == "https://h/x.tif"


def test_round_trip_and_hit_miss_counts(tmp_path):
    cache = Cache(tmp_path)
    key = _key(cache)
    assert cache.get(key) is None and cache.misses == 1
    arr = np.arange(GRID.width * GRID.height, dtype=np.float32).reshape(GRID.shape)
    arr[0, 0] = np.nan
    cache.put(key, arr, {"band": "B04"})
    got, meta = cache.get(key)
    np.testing.assert_array_equal(got, arr)
    assert got.dtype == np.float32 and meta["band"] == "B04" and cache.hits == 1
    assert key in cache
    assert not list(tmp_path.rglob("*.part"))


def test_damaged_entry_is_a_miss_and_is_removed(tmp_path):
    cache = Cache(tmp_path)
    key = _key(cache)
    npy = cache.put(key, np.zeros(GRID.shape, np.float32))
    npy.write_bytes(b"garbage")
    assert cache.get(key) is None
    assert not npy.exists()


def test_location_from_argument_then_environment_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HARBORWATCH_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert default_cache_dir() == tmp_path / "env"
    assert Cache().root == tmp_path / "env"
    monkeypatch.delenv("HARBORWATCH_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == Path.home() / ".cache" / "harborwatch"


def _writer(root: str, key: str, n: int) -> None:
    cache = Cache(root)
    arr = np.full((256, 256), 7.0, np.float32)
    for _ in range(n):
        cache.put(key, arr, {"writer": "child"})


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_concurrent_writers_never_expose_a_partial_entry(tmp_path):
    cache = Cache(tmp_path)
    key = _key(cache)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), key, 15)) for _ in range(2)]
    for p in procs:
        p.start()
    seen = 0
    while any(p.is_alive() for p in procs):
        got = cache.get(key)
        if got is not None:
            seen += 1
            assert got[0].shape == (256, 256) and float(got[0].min()) == 7.0
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert cache.get(key) is not None
    assert not list(tmp_path.rglob("*.part"))


def test_a_cache_folder_that_is_a_file_is_bad_input(tmp_path):
    # every read failed one by one with a raw NotADirectoryError (HARBORWATCH_CACHE_DIR=/etc/hostname)
    from imagery.cache import Cache
    from imagery.errors import InputError

    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        Cache(f)
