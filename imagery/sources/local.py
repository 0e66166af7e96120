"""Local folders of GeoTIFF/COG files as a catalogue: one scene per band folder or per multi-band file,
and one per granule of a Sentinel-2 SAFE product (``imagery.safe``: its JP2 bands, named by the product).

A band folder holds one file per band named like ``<name>_B04.tif``; a multi-band file names its bands
in the band descriptions (or in its sidecar's ``bands``). The acquisition time comes from a sidecar
``scene.json`` ({"id", "datetime", "platform", "processing_level", "cloud_cover", "bands"}), a STAC item
JSON beside the files, or the name (``20180520T023321`` or ``2018-05-20``); the footprint from the
raster bounds. A file that cannot be opened is still a scene (``UNREADABLE`` in its properties says
why), so a run reports it as failed instead of losing it or stopping.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rasterio
from rasterio.errors import RasterioIOError
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from imagery.errors import InputError, RasterReadError
from imagery.read import BAND_FILE_RE, find_band_files, granule_band_files, normalise_band_name
from imagery.safe import RESOLUTION_FOLDERS, SafeProduct, find_safe, granule_dir, is_s2_safe, read_safe
from imagery.sources.base import check_limit, check_max_cloud, finish, parse_period
from imagery.sources.stac import item_baseline, item_datetime, item_level, item_platform
from imagery.types import Asset, Scene

if TYPE_CHECKING:
    from imagery.aoi import Aoi

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff")
SIDECAR = "scene.json"
#: Scene property holding why the scene's files cannot be read (a corrupt or truncated file).
UNREADABLE = "unreadable"
#: Scene property of a band folder: band → why its file cannot be read (the other bands can be).
UNREADABLE_BANDS = "unreadable_bands"
_BAND_RE = re.compile(r"^(B0[1-9]|B1[0-2]|B8A|SCL|VV|VH|HH|HV)$", re.IGNORECASE)
_DT_RE = re.compile(r"(?<!\d)(\d{8})T(\d{6})(?!\d)")
_DATE_RE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_LEVEL_OF = {
    "sentinel-2-l1c": "L1C",
    "sentinel-2-l2a": "L2A",
    "sentinel-2-c1-l2a": "L2A",
    "sentinel-1-grd": "GRD",
}


@dataclass(frozen=True)
class _Meta:
    id: str | None = None
    datetime: datetime | None = None
    precision: str = "second"
    platform: str | None = None
    level: str | None = None
    cloud_cover: float | None = None
    bands: tuple[str, ...] | None = None
    baseline: str | None = None
    origin: str = ""
    scale: float | None = None
    offset_dn: float | None = None
    #: The SAFE product a band folder lies in: its bands' DN offsets (``SafeProduct.offset_dn``).
    safe: SafeProduct | None = None


class LocalCatalog:
    """Scenes found under ``root`` (searched recursively). ``collection`` filters by processing level
    when a scene knows its level; ``collection='any'`` keeps every scene."""

    name = "local"
    collections = ("any", *_LEVEL_OF)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise InputError(f"local source: no such folder or file: {self.root}")

    def __repr__(self) -> str:
        return f"LocalCatalog({str(self.root)!r})"

    def search(
        self,
        aoi: Aoi,
        start: date | datetime | str,
        end: date | datetime | str,
        *,
        collection: str = "any",
        max_cloud: float | None = None,
        limit: int | None = None,
    ) -> list[Scene]:
        check_limit(limit)
        check_max_cloud(max_cloud)
        if collection not in self.collections:
            raise InputError(
                f"local source has no collection {collection!r}; choose one of: {', '.join(self.collections)}"
            )
        t0, t1 = parse_period(start, end)
        want = _LEVEL_OF.get(collection)
        scenes = [s for s in self.scenes() if want is None or s.processing_level in (want, "unknown")]
        readable = [s for s in scenes if UNREADABLE not in s.properties]
        # An unreadable file has no footprint to test against the AOI: keep it when its time fits, so
        # the run lists it as failed rather than losing it.
        broken = [
            s
            for s in scenes
            if UNREADABLE in s.properties
            and t0 <= s.datetime <= t1
            and (max_cloud is None or s.cloud_cover is None or s.cloud_cover <= max_cloud)
        ]
        out = sorted(
            [*finish(readable, aoi, t0, t1, max_cloud=max_cloud, limit=None), *broken],
            key=lambda s: (s.datetime, s.id),
        )
        return out[:limit] if limit is not None else out

    def scenes(self) -> list[Scene]:
        """Every scene under the root, in path order. A scene without an acquisition time is an InputError;
        a file that cannot be opened is a scene marked ``UNREADABLE`` (skipped with a warning when it has
        no acquisition time either, since no period can hold it)."""
        if self.root.is_file():
            try:
                return [self._file_scene(self.root)]
            except RasterReadError as e:  # the folder or file the user named is no raster: bad input
                raise InputError(f"local source: {e}") from None
        out: list[Scene] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            folder = Path(dirpath)
            if is_s2_safe(folder):  # a Sentinel-2 product: its scenes are its granules' IMG_DATA
                dirnames[:] = [d for d in dirnames if d.upper() == "GRANULE"]
            elif folder.parent.name.upper() == "GRANULE" and find_safe(folder) is not None:
                # not QI_DATA: from baseline 04.00 its masks are named like bands (MSK_DETFOO_B01.jp2)
                dirnames[:] = [d for d in dirnames if d.upper() == "IMG_DATA"]
            if folder.name.upper() == "IMG_DATA" and any(d in RESOLUTION_FOLDERS for d in dirnames):
                band_files = granule_band_files(folder)  # a Level-2A SAFE granule: one scene, not three
                dirnames[:] = [d for d in dirnames if d not in RESOLUTION_FOLDERS]
            else:
                band_files = find_band_files(folder)
            if band_files:
                out.append(self._folder_scene(folder, band_files))
            for name in sorted(filenames):
                p = folder / name
                is_raster = p.suffix.lower() in RASTER_SUFFIXES and not name.startswith(".")
                if is_raster and not BAND_FILE_RE.search(name):
                    scene = self._file_scene(p, quiet=True)
                    if scene is not None:
                        out.append(scene)
        return self._distinct_ids(out)

    def _distinct_ids(self, scenes: list[Scene]) -> list[Scene]:
        """Scenes that share an id (``2018-05-20.tif`` in two folders, or sidecars naming one product for
        two files) each take their path under the root as id instead: searches keep one scene per id, so
        all but one would be silently lost."""
        counts = Counter(s.id for s in scenes)
        if all(n == 1 for n in counts.values()):
            return scenes
        out = []
        for s in scenes:
            if counts[s.id] > 1:
                own = Path(s.properties["path"]).relative_to(self.root).as_posix()
                log.info("local scene id %s is not unique under %s: using %s", s.id, self.root, own)
                s = replace(s, id=own)
            out.append(s)
        return out

    # -- one scene per band folder -------------------------------------------------------------------
    def _folder_scene(self, folder: Path, band_files: Mapping[str, Path]) -> Scene:
        meta = _sidecar(folder / SIDECAR) or _stac_beside(folder) or _Meta()
        safe = find_safe(folder)
        if safe is not None:  # a granule's IMG_DATA: the product's name and metadata files fill the gaps
            try:
                product = read_safe(safe, granule_dir(folder))
            except InputError as e:  # the bands may be fine: the product's name still says what it is
                log.warning("%s; using what the product's name says", e)
                product = read_safe(safe, granule_dir(folder), metadata=False)
            meta = _merge(meta, _from_safe(product))
        if meta.datetime is None:
            meta = _merge(meta, _from_name(folder.name) or _from_names(p.name for p in band_files.values()))
        if meta.datetime is None:
            raise InputError(
                f'no acquisition time for {folder}: add {SIDECAR} with "datetime" (UTC ISO), '
                "a STAC item JSON, or put the date in the name (20180520T023321 or 2018-05-20)"
            )
        assets = {
            band: _asset(path, band, 1, meta)
            for band, path in sorted(band_files.items(), key=lambda kv: kv[0])
        }
        # The footprint from the first band file that opens; a corrupt band file stays an asset, so
        # reading that band fails with its own error while the others remain usable.
        order = sorted(band_files, key=lambda b: (b != "B04", b != "B08", b))
        errors: dict[str, str] = {}
        found = None
        for band in order:
            try:
                found = _footprint(band_files[band])
                break
            except RasterReadError as e:
                errors[band] = str(e)
        if found is None:
            return self._scene(meta, folder.name, assets, None, None, folder, unreadable=errors[order[0]])
        for band in order[len(errors) + 1 :]:  # the rest only opened, so a search stays quick
            try:
                with rasterio.open(band_files[band]):
                    pass
            except RasterioIOError as e:
                errors[band] = f"cannot read {band_files[band]}: {str(e).splitlines()[0]}"
        for why in errors.values():
            log.warning("%s: %s", folder.name, why)
        return self._scene(meta, folder.name, assets, *found, folder, unreadable_bands=errors)

    # -- one scene per multi-band file -----------------------------------------------------------------
    def _file_scene(self, path: Path, quiet: bool = False) -> Scene | None:
        meta = (
            _sidecar(path.with_suffix(".json"))
            or _sidecar(path.parent / SIDECAR)
            or _stac_beside(path.parent, path.stem)
            or _Meta()
        )
        try:
            with rasterio.open(path) as src:
                descriptions = list(src.descriptions)
                count = src.count
        except RasterioIOError as e:
            why = f"cannot read {path}: {str(e).splitlines()[0]}"
            if meta.datetime is None:
                meta = _merge(meta, _from_name(path.stem) or _from_name(path.parent.name))
            if meta.datetime is not None:
                log.warning("%s", why)
                assets = {band: _asset(path, band, i + 1, meta) for i, band in enumerate(meta.bands or ())}
                return self._scene(meta, path.stem, assets, None, None, path, unreadable=why)
            if quiet:
                log.warning(
                    "skipping %s: not a readable raster, and no acquisition time in its name or a "
                    "sidecar (%s)",
                    path,
                    str(e).splitlines()[0],
                )
                return None
            raise RasterReadError(why) from None
        names = [normalise_band_name(d) for d in descriptions if d and _BAND_RE.match(d.strip())]
        if len(names) == count:
            bands = tuple(names)
        elif meta.bands and len(meta.bands) == count:
            bands = meta.bands
        else:
            msg = (
                f"{path}: {count} band(s) without Sentinel band descriptions; name them (B02, B03, …) "
                f'or list them as "bands" in {SIDECAR}'
            )
            if quiet:
                log.warning("skipping %s", msg)
                return None
            raise InputError(msg)
        if meta.datetime is None:
            meta = _merge(meta, _from_name(path.stem) or _from_name(path.parent.name))
        if meta.datetime is None:
            raise InputError(
                f"no acquisition time for {path}: add {path.with_suffix('.json').name} or {SIDECAR} with "
                '"datetime" (UTC ISO), or put the date in the name (20180520T023321 or 2018-05-20)'
            )
        crs, footprint = _footprint(path)
        assets = {band: _asset(path, band, i + 1, meta) for i, band in enumerate(bands)}
        return self._scene(meta, path.stem, assets, crs, footprint, path)

    def _scene(
        self,
        meta: _Meta,
        default_id: str,
        assets: dict[str, Asset],
        crs: str | None,
        footprint: Any,
        path: Path,
        unreadable: str | None = None,
        unreadable_bands: Mapping[str, str] | None = None,
    ) -> Scene:
        assert meta.datetime is not None
        level = (meta.level or "unknown").upper() if meta.level else "unknown"
        props = {"path": str(path), "metadata": meta.origin, "datetime_precision": meta.precision}
        if unreadable:
            props[UNREADABLE] = unreadable
        if unreadable_bands:
            props[UNREADABLE_BANDS] = dict(sorted(unreadable_bands.items()))
        return Scene(
            id=meta.id or default_id,
            source=self.name,
            collection="local",
            datetime=meta.datetime,
            platform=meta.platform or "unknown",
            processing_level=level,
            cloud_cover=meta.cloud_cover,
            footprint=footprint,
            assets=assets,
            crs=crs,
            processing_baseline=meta.baseline,
            properties=props,
        )


def _asset(path: Path, band: str, index: int, meta: _Meta) -> Asset:
    categorical = band == "SCL"
    offset = meta.offset_dn
    request: dict[str, Any] = {"band_index": index, "scale_declared": meta.scale is not None}
    if offset is None and meta.safe is not None:  # ESA's JP2s carry the offset from baseline 04.00 on
        offset = meta.safe.offset_dn(band)
        request["offset_rule"] = meta.safe.offset_rule
    return Asset(
        href=str(path),
        band=band,
        media_type="image/jp2" if path.suffix.lower() == ".jp2" else "image/tiff",
        offset_dn=0.0 if categorical or offset is None else offset,
        scale=1.0 if categorical else (meta.scale if meta.scale is not None else 1e-4),
        nodata=0.0,
        # Without a declared scale the reader should trust the file's own metadata (imagery.read guesses).
        request=request,
    )


def _footprint(path: Path) -> tuple[str | None, Any]:
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise InputError(f"{path} has no CRS; the local source needs georeferenced rasters")
            geom = box(*src.bounds)
            crs = src.crs.to_string()
            wgs = transform_geom(src.crs, "EPSG:4326", mapping(geom.segmentize(max(geom.length / 64, 1e-9))))
    except RasterioIOError as e:
        raise RasterReadError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    return crs, shape(wgs)


# -- metadata: sidecar, STAC item, name ----------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from None


def _sidecar(path: Path) -> _Meta | None:
    if not path.is_file():
        return None
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise InputError(f"{path} must hold a JSON object")
    if doc.get("type") == "Feature":
        return _from_stac(doc, path)
    when = None
    if doc.get("datetime"):
        try:
            when = _utc(datetime.fromisoformat(str(doc["datetime"]).replace("Z", "+00:00")))
        except ValueError:
            raise InputError(f'{path}: "datetime" {doc["datetime"]!r} is not an ISO date/time') from None
    bands = doc.get("bands")
    return _Meta(
        id=doc.get("id"),
        datetime=when,
        platform=(str(doc["platform"]).lower() if doc.get("platform") else None),
        level=doc.get("processing_level"),
        cloud_cover=None if doc.get("cloud_cover") is None else float(doc["cloud_cover"]),
        bands=tuple(normalise_band_name(b) for b in bands) if isinstance(bands, list) else None,
        baseline=doc.get("processing_baseline"),
        origin=str(path),
        scale=None if doc.get("scale") is None else float(doc["scale"]),
        offset_dn=None if doc.get("offset_dn") is None else float(doc["offset_dn"]),
    )


def _from_stac(doc: Mapping[str, Any], path: Path) -> _Meta:
    props = doc.get("properties") or {}
    try:
        when = item_datetime(props)
    except Exception:
        when = None
    return _Meta(
        id=doc.get("id"),
        datetime=when,
        platform=item_platform(props, str(doc.get("id") or "")),
        level=item_level(str(doc.get("collection") or ""), props),
        cloud_cover=None if props.get("eo:cloud_cover") is None else float(props["eo:cloud_cover"]),
        baseline=item_baseline(props),
        origin=str(path),
    )


def _stac_beside(folder: Path, stem: str | None = None) -> _Meta | None:
    """A STAC item JSON in ``folder`` (named ``stem.json`` when ``stem`` is given, else any item there)."""
    candidates = [folder / f"{stem}.json"] if stem else sorted(folder.glob("*.json"))
    for p in candidates:
        if not p.is_file() or p.name == SIDECAR:
            continue
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(doc, dict) and doc.get("type") == "Feature" and isinstance(doc.get("properties"), dict):
            return _from_stac(doc, p)
    return None


def _from_safe(product: SafeProduct) -> _Meta:
    """What a SAFE product says of the band folders in it: ESA's DN are reflectance × quantification."""
    return _Meta(
        id=product.scene_id,
        datetime=product.datetime,
        platform=product.platform,
        level=product.level,
        cloud_cover=product.cloud_cover,
        baseline=product.baseline,
        origin=str(product.metadata_file or product.path),
        scale=product.scale,
        safe=product,
    )


def _from_name(name: str) -> _Meta | None:
    m = _DT_RE.search(name)
    if m:
        try:
            when = datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
            return _Meta(datetime=when, origin=f"name:{name}", **_platform_level(name))
        except ValueError:
            pass
    m = _DATE_RE.search(name)
    if m:
        try:
            when = datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), tzinfo=timezone.utc)
            return _Meta(datetime=when, precision="day", origin=f"name:{name}", **_platform_level(name))
        except ValueError:
            pass
    return None


def _from_names(names) -> _Meta | None:
    for n in names:
        meta = _from_name(n)
        if meta is not None:
            return meta
    return None


def _platform_level(name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    m = re.search(r"(?:^|[_\-])S([12])([ABCD])(?:[_\-]|$)", name)
    if m:
        out["platform"] = f"sentinel-{m.group(1)}{m.group(2).lower()}"
    lv = re.search(r"(?:MSI)?(L1C|L2A)", name, re.IGNORECASE)
    if lv:
        out["level"] = lv.group(1).upper()
    m = re.search(r"_N(\d{2})(\d{2})_", name)
    if m:
        out["baseline"] = f"{m.group(1)}.{m.group(2)}"
    return out


def _merge(meta: _Meta, extra: _Meta | None) -> _Meta:
    """Fill what ``meta`` lacks from ``extra`` (sidecar values win)."""
    if extra is None:
        return meta
    values = {f: getattr(meta, f) for f in meta.__dataclass_fields__}
    for f in values:
        if values[f] in (None, "") and getattr(extra, f) not in (None, ""):
            values[f] = getattr(extra, f)
    if meta.datetime is None:
        values["precision"] = extra.precision
        values["origin"] = extra.origin if not meta.origin else meta.origin
    return _Meta(**values)


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
