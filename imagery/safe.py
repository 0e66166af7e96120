"""Sentinel-2 products in ESA's SAFE format on disk: what the Google Cloud public bucket (anonymous 2018
Level-1C, the Longkou case) and the Copernicus Data Space hand out.

A SAFE folder (``S2B_MSIL1C_20180520T023329_N0206_R046_T51SWD_20180520T061935.SAFE``) holds one granule per
tile under ``GRANULE/<granule>/IMG_DATA``: Level-1C keeps every band there
(``T51SWD_20180520T023329_B04.jp2``), Level-2A splits them by resolution into ``R10m``, ``R20m`` and
``R60m`` (``…_B04_10m.jp2``, ``…_SCL_20m.jp2``).
The product's metadata file (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``) declares the quantification value and,
from processing baseline 04.00 on, the offset ESA adds to every band's DN (``RADIO_ADD_OFFSET`` /
``BOA_ADD_OFFSET``, −1000): reflectance = (DN + offset) / quantification. Without the metadata file the
product name's baseline (``_N0206_``) decides the offset, as for catalogue items. The acquisition time is
the granule's own ``SENSING_TIME`` (``GRANULE/<granule>/MTD_TL.xml``, as catalogues give it), else the
product's datatake start (its name); a product of before December 2016 (``S2A_OPER_PRD_MSIL1C_…``) may hold
several granules, each one scene.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from imagery.errors import InputError

#: ESA's band order: ``band_id``/``bandId`` N in the metadata is the N-th of these.
BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: Level-2A's resolution folders under IMG_DATA, finest first: a band takes its finest file.
RESOLUTION_FOLDERS = ("R10m", "R20m", "R60m")
#: The product metadata file: ``MTD_MSIL1C.xml``/``MTD_MSIL2A.xml``, or before December 2016
#: ``S2A_OPER_MTD_SAFL1C_….xml``.
METADATA_GLOBS = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml", "S2?_OPER_MTD_SAFL1C_*.xml")
#: ESA's value for pixels outside the swath (``Special_Values``: NODATA 0), in every band.
NODATA_DN = 0.0
_NAME_RE = re.compile(
    r"^(S2[A-D])_MSI(L1C|L2A)_(\d{8}T\d{6})_N(\d{2})(\d{2})_R\d{3}_T(\d{2}[A-Z]{3})_\d{8}T\d{6}$",
    re.IGNORECASE,
)
#: Before December 2016: ``S2A_OPER_PRD_MSIL1C_PDMC_<processed>_R<orbit>_V<sensing start>_<sensing end>``.
_OLD_NAME_RE = re.compile(r"^(S2[A-D])_OPER_PRD_MSI(L1C|L2A)_\w{4}_\d{8}T\d{6}_R\d{3}_V(\d{8}T\d{6})_", re.I)
_TILE_RE = re.compile(r"_T(\d{2}[A-Z]{3})(?:_|$)", re.IGNORECASE)


def baseline_offset_dn(baseline: str | None) -> float:
    """The radiometric offset ESA adds from processing baseline 04.00 on (−1000 DN), else 0."""
    if not baseline:
        return 0.0
    try:
        return -1000.0 if float(baseline) >= 4.0 else 0.0
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class SafeProduct:
    """One SAFE product (or one granule of it): what its name and metadata files say."""

    path: Path
    name: str
    platform: str | None = None
    level: str | None = None
    baseline: str | None = None
    datetime: datetime | None = None
    #: The MGRS square ("51SWD"): the granule's, or the product name's.
    tile: str | None = None
    #: How many granules the product holds (several only before December 2016).
    granules: int = 1
    cloud_cover: float | None = None
    #: From the metadata file: DN per unit reflectance (10000), and each band's declared DN offset.
    quantification: float | None = None
    offsets: Mapping[str, float] | None = None
    metadata_file: Path | None = None

    @property
    def scene_id(self) -> str:
        """The product's name; with several granules, the name and the granule's tile."""
        return self.name if self.granules < 2 or not self.tile else f"{self.name}_T{self.tile}"

    def offset_dn(self, band: str) -> float:
        """The DN offset of ``band``: as the metadata file declares it (a list without the band: 0), else
        by the processing baseline."""
        if self.offsets is not None:
            return float(self.offsets.get(band, 0.0))
        return baseline_offset_dn(self.baseline)

    @property
    def scale(self) -> float:
        """Reflectance per DN."""
        return 1.0 / self.quantification if self.quantification else 1e-4

    @property
    def offset_rule(self) -> str:
        """Where the offsets come from, for the asset's record."""
        if self.offsets is not None and self.metadata_file is not None:
            return f"SAFE {self.metadata_file.name}"
        return f"SAFE baseline {self.baseline}" if self.baseline else "SAFE, no baseline: 0"


def is_s2_safe(path: Path) -> bool:
    """Whether ``path`` is a Sentinel-2 SAFE folder (Sentinel-1 SAFEs hold ``measurement/``, not granules)."""
    if not path.name.lower().endswith(".safe") or not path.is_dir():
        return False
    return path.name.upper().startswith("S2") or (path / "GRANULE").is_dir()


def find_safe(path: str | Path) -> Path | None:
    """The Sentinel-2 SAFE folder ``path`` lies in (or is), or None."""
    p = Path(path).absolute()
    return next((q for q in (p, *p.parents) if is_s2_safe(q)), None)


def granule_dir(path: str | Path) -> Path | None:
    """The ``GRANULE/<granule>`` folder ``path`` lies in, or None."""
    p = Path(path).absolute()
    return next((q for q in (p, *p.parents) if q.parent.name.upper() == "GRANULE"), None)


def product_of(path: str | Path) -> SafeProduct | None:
    """The Sentinel-2 product (its granule, where ``path`` lies in one) of a band folder, or None outside a
    SAFE; an ``InputError`` for a metadata file that cannot be read."""
    safe = find_safe(path)
    return None if safe is None else read_safe(safe, granule_dir(path))


def read_safe(path: str | Path, granule: str | Path | None = None, *, metadata: bool = True) -> SafeProduct:
    """A SAFE product, or with ``granule`` (its ``GRANULE/<granule>`` folder) that granule of it: platform,
    level, baseline and datatake start from the product name; cloud cover, quantification, band offsets (and
    what the name lacks) from its metadata file where there is one (``metadata``) and which wins over the
    name; the granule's sensing time and tile from ``MTD_TL.xml``. A metadata file that cannot be read is
    an ``InputError``."""
    path = Path(path)
    name = path.name[: -len(".safe")] if path.name.lower().endswith(".safe") else path.name
    out = _from_product_name(path, name)
    out = replace(out, granules=max(1, len(list(path.glob("GRANULE/*/IMG_DATA")))))
    if metadata:
        mtd = next((f for pattern in METADATA_GLOBS for f in sorted(path.glob(pattern)) if f.is_file()), None)
        if mtd is not None:
            out = _with_metadata(out, mtd)
    if granule is not None:
        out = _with_granule(out, Path(granule), metadata)
    return out


def safe_granule(path: Path) -> Path:
    """``path``, or for a SAFE folder (or a granule's folder) its one granule's IMG_DATA; an ``InputError``
    for a SAFE of several granules (products before December 2016 hold many tiles: pass one granule's
    IMG_DATA)."""
    if path.parent.name.upper() == "GRANULE" and (path / "IMG_DATA").is_dir():  # a granule's own folder
        return path / "IMG_DATA"
    if not path.name.lower().endswith(".safe"):
        return path
    granules = sorted(path.glob("GRANULE/*/IMG_DATA"))
    if len(granules) == 1:
        return granules[0]
    if not granules:
        raise InputError(f"{path} holds no GRANULE/*/IMG_DATA folder")
    raise InputError(
        f"{path} holds {len(granules)} granules; pass one's IMG_DATA, e.g. {granules[0].relative_to(path)}"
    )


def _from_product_name(path: Path, name: str) -> SafeProduct:
    m = _NAME_RE.match(name)
    if m:
        return SafeProduct(
            path=path,
            name=name,
            platform=f"sentinel-2{m.group(1)[-1].lower()}",
            level=m.group(2).upper(),
            baseline=f"{m.group(4)}.{m.group(5)}",
            datetime=_stamp(m.group(3)),
            tile=m.group(6).upper(),
        )
    m = _OLD_NAME_RE.match(name)
    if m:
        return SafeProduct(
            path=path,
            name=name,
            platform=f"sentinel-2{m.group(1)[-1].lower()}",
            level=m.group(2).upper(),
            datetime=_stamp(m.group(3)),
        )
    return SafeProduct(path=path, name=name)


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None


def _xml_root(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise InputError(f"cannot read {path}: {e}") from None


def _with_granule(product: SafeProduct, granule: Path, metadata: bool) -> SafeProduct:
    """The product as one granule: its tile from the granule's name, its sensing time from ``MTD_TL.xml``."""
    m = _TILE_RE.search(granule.name)
    out = replace(product, tile=m.group(1).upper()) if m else product
    tl = next(iter(sorted(granule.glob("*MTD*TL*.xml"))), None) if metadata else None
    if tl is None:
        return out
    for el in _xml_root(tl).iter():
        if el.tag.rsplit("}", 1)[-1] == "SENSING_TIME" and el.text:
            when = _iso(el.text.strip())
            return replace(out, datetime=when) if when else out
    return out


def _band_of_id(text: str | None, physical: Mapping[str, str]) -> str | None:
    if text is None or not text.strip().isdigit():
        return None
    if text.strip() in physical:
        return physical[text.strip()]
    i = int(text)
    return BAND_IDS[i] if 0 <= i < len(BAND_IDS) else None


def _physical_band(name: str) -> str:
    """ESA's ``B1``/``B8A`` as ``B01``/``B8A``."""
    m = re.fullmatch(r"B(\d{1,2})(A?)", name.strip().upper())
    if not m:
        return name.strip().upper()
    return f"B{int(m.group(1))}A" if m.group(2) else f"B{int(m.group(1)):02d}"


def _with_metadata(product: SafeProduct, mtd: Path) -> SafeProduct:
    tags: dict[str, str] = {}
    physical: dict[str, str] = {}
    offsets: dict[str, float] | None = None
    for el in _xml_root(mtd).iter():
        tag = el.tag.rsplit("}", 1)[-1]
        text = (el.text or "").strip()
        if tag == "Spectral_Information" and el.get("bandId") is not None and el.get("physicalBand"):
            physical[el.get("bandId", "").strip()] = _physical_band(el.get("physicalBand", ""))
        elif tag in ("RADIO_ADD_OFFSET", "BOA_ADD_OFFSET"):
            offsets = {} if offsets is None else offsets
            try:
                offsets[el.get("band_id", "")] = float(text)
            except ValueError:
                why = f"{tag} of band_id {el.get('band_id')} is not a number: {text!r}"
                raise InputError(f"{mtd}: {why}") from None
        elif text and tag not in tags:
            tags[tag] = text
    fields: dict = {"metadata_file": mtd}
    if offsets is not None:
        by_band = {_band_of_id(k, physical): v for k, v in offsets.items()}
        fields["offsets"] = {b: v for b, v in by_band.items() if b is not None}
    # L1C, L2A; Level-2A of 2017-2018 (and Level-2Ap) as L2A_BOA_QUANTIFICATION_VALUE
    quant = next(
        (tags[t] for t in ("QUANTIFICATION_VALUE", "BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE")
         if t in tags),
        None,
    )  # fmt: skip
    cloud = tags.get("Cloud_Coverage_Assessment")
    try:
        if quant:
            fields["quantification"] = float(quant)
        if cloud:
            fields["cloud_cover"] = float(cloud)
    except ValueError:
        why = f"quantification {quant!r} or cloud cover {cloud!r} is not a number"
        raise InputError(f"{mtd}: {why}") from None
    if tags.get("PROCESSING_BASELINE"):
        fields["baseline"] = tags["PROCESSING_BASELINE"]
    level = tags.get("PROCESSING_LEVEL", "").replace("Level-", "L").upper()
    if level in ("L1C", "L2A", "L2AP"):
        fields["level"] = level[:3]
    craft = re.fullmatch(r"Sentinel-2([A-D])", tags.get("SPACECRAFT_NAME", ""), re.IGNORECASE)
    if craft:
        fields["platform"] = f"sentinel-2{craft.group(1).lower()}"
    start = _iso(tags.get("PRODUCT_START_TIME", ""))
    if start is not None and product.datetime is None:  # the name's datatake start, when it has one
        fields["datetime"] = start
    return replace(product, **fields)
