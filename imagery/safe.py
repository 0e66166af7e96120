"""Sentinel-2 products in ESA's SAFE format on disk: what the Google Cloud public bucket (anonymous 2018
Level-1C, the Longkou case) and the Copernicus Data Space hand out.

A SAFE folder (``S2B_MSIL1C_20180520T023329_N0206_R046_T51SWD_20180520T061935.SAFE``) holds one granule per
tile under ``GRANULE/<granule>/IMG_DATA``: Level-1C keeps every band there
(``T51SWD_20180520T023329_B04.jp2``), Level-2A splits them by resolution into ``R10m``, ``R20m`` and
``R60m`` (``…_B04_10m.jp2``, ``…_SCL_20m.jp2``).
The product's metadata file (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``) declares the quantification value and,
from processing baseline 04.00 on, the offset ESA adds to every band's DN (``RADIO_ADD_OFFSET`` /
``BOA_ADD_OFFSET``, −1000): reflectance = (DN + offset) / quantification. Without the metadata file the
product name's baseline (``_N0206_``) decides the offset, as for catalogue items.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from imagery.errors import InputError

#: ESA's band order: ``band_id``/``bandId`` N in the metadata is the N-th of these.
BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: Level-2A's resolution folders under IMG_DATA, finest first: a band takes its finest file.
RESOLUTION_FOLDERS = ("R10m", "R20m", "R60m")
METADATA_FILES = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml")
_NAME_RE = re.compile(
    r"^(S2[A-D])_MSI(L1C|L2A)_(\d{8}T\d{6})_N(\d{2})(\d{2})_R\d{3}_T(\w{5})_\d{8}T\d{6}$", re.IGNORECASE
)


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
    """One SAFE product: its name and what its name and metadata file say."""

    path: Path
    name: str
    platform: str | None = None
    level: str | None = None
    baseline: str | None = None
    datetime: datetime | None = None
    tile: str | None = None
    cloud_cover: float | None = None
    #: From the metadata file: DN per unit reflectance (10000), and each band's declared DN offset.
    quantification: float | None = None
    offsets: Mapping[str, float] | None = None
    metadata_file: Path | None = None

    def offset_dn(self, band: str) -> float:
        """The DN offset of ``band``: as the metadata file declares it (a list without the band: 0), else
        by the name's processing baseline."""
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
        if self.offsets is not None:
            return f"SAFE {self.metadata_file.name if self.metadata_file else 'metadata'}"
        return f"SAFE name baseline {self.baseline}" if self.baseline else "SAFE, no baseline: 0"


def find_safe(path: str | Path) -> Path | None:
    """The SAFE folder ``path`` lies in (or is), or None."""
    p = Path(path).absolute()
    for q in (p, *p.parents):
        if q.name.lower().endswith(".safe"):
            return q
    return None


def read_safe(path: str | Path) -> SafeProduct:
    """A SAFE folder's product: platform, level, baseline, sensing time and tile from its name; cloud cover,
    quantification and band offsets from its metadata file where there is one (which wins over the name).
    A metadata file that is not XML is an ``InputError``."""
    path = Path(path)
    name = path.name[: -len(".safe")] if path.name.lower().endswith(".safe") else path.name
    out = SafeProduct(path=path, name=name, **_from_product_name(name))
    mtd = next((path / f for f in METADATA_FILES if (path / f).is_file()), None)
    if mtd is None:
        return out
    return _with_metadata(out, mtd)


def safe_granule(path: Path) -> Path:
    """``path``, or for a SAFE folder its one granule's IMG_DATA; an ``InputError`` for a SAFE of several
    granules (products before December 2016 hold many tiles: pass one granule's IMG_DATA)."""
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


def _from_product_name(name: str) -> dict:
    m = _NAME_RE.match(name)
    if not m:
        return {}
    when = datetime.strptime(m.group(3), "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    return {
        "platform": f"sentinel-2{m.group(1)[-1].lower()}",
        "level": m.group(2).upper(),
        "baseline": f"{m.group(4)}.{m.group(5)}",
        "datetime": when,
        "tile": m.group(6).upper(),  # "51SWD": the MGRS square, without the name's T
    }


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
    return f"B{int(m.group(1)):02d}{m.group(2)}" if not m.group(2) else f"B{int(m.group(1))}A"


def _with_metadata(product: SafeProduct, mtd: Path) -> SafeProduct:
    try:
        root = ET.parse(mtd).getroot()
    except (ET.ParseError, OSError) as e:
        raise InputError(f"cannot read {mtd}: {e}") from None
    tags: dict[str, str] = {}
    physical: dict[str, str] = {}
    offsets: dict[str, float] | None = None
    for el in root.iter():
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
    quant = tags.get("QUANTIFICATION_VALUE") or tags.get("BOA_QUANTIFICATION_VALUE")
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
    if level in ("L1C", "L2A"):
        fields["level"] = level
    craft = re.fullmatch(r"Sentinel-2([A-D])", tags.get("SPACECRAFT_NAME", ""), re.IGNORECASE)
    if craft:
        fields["platform"] = f"sentinel-2{craft.group(1).lower()}"
    if tags.get("PRODUCT_START_TIME"):
        try:
            start = datetime.fromisoformat(tags["PRODUCT_START_TIME"].replace("Z", "+00:00"))
            fields["datetime"] = start.astimezone(timezone.utc)
        except ValueError:
            pass
    return SafeProduct(**{**product.__dict__, **fields})
