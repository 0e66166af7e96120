"""Tables of a run folder: CSV, Parquet and GeoParquet/GeoJSON detections, written atomically."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from detect.counting.aggregate import features_from_rows
from imagery.atomic import atomic_path, atomic_write_text


def write_detections(detections: pd.DataFrame, out_dir: Path, **meta: Any) -> tuple[Path, Path]:
    """detections.geojson (EPSG:4326) and detections.parquet (GeoParquet 1.0, WKB, CRS84)."""
    fc: dict[str, Any] = {"type": "FeatureCollection", "features": features_from_rows(detections)}
    if meta:
        fc["harborwatch"] = meta
    gj = atomic_write_text(out_dir / "detections.geojson", json.dumps(fc, default=str) + "\n")
    gp = write_geoparquet(detections, out_dir / "detections.parquet")
    return gj, gp


def write_geoparquet(df: pd.DataFrame, path: Path, geometry: str = "geometry") -> Path:
    """A GeoParquet 1.0 file: geometry as WKB, ``geo`` metadata with bbox and geometry types.

    No ``crs`` member: GeoParquet then means OGC:CRS84 (lon, lat), which is what detections hold.
    """
    geoms = list(df[geometry]) if len(df) else []
    attrs = df.drop(columns=[geometry])
    table = pa.Table.from_pandas(_parquet_ready(attrs), preserve_index=False)
    wkb = shapely.to_wkb(np.array(geoms, dtype=object)) if geoms else []
    table = table.append_column(geometry, pa.array(list(wkb), type=pa.binary()))
    types = sorted({g.geom_type for g in geoms})
    bbox = list(shapely.total_bounds(np.array(geoms, dtype=object))) if geoms else []
    geo = {
        "version": "1.0.0",
        "primary_column": geometry,
        "columns": {
            geometry: {"encoding": "WKB", "geometry_types": types, **({"bbox": bbox} if bbox else {})}
        },
    }
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"geo": json.dumps(geo).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def write_table(df: pd.DataFrame, out_dir: Path, name: str, *, parquet: bool = False) -> list[Path]:
    """``name``.csv (dates ISO, NA empty) and optionally ``name``.parquet."""
    paths = [
        atomic_write_text(out_dir / f"{name}.csv", df.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ"))
    ]
    if parquet:
        with atomic_path(out_dir / f"{name}.parquet") as tmp:
            _parquet_ready(df).to_parquet(tmp, index=False)
        paths.append(out_dir / f"{name}.parquet")
    return paths


def _parquet_ready(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns of dates become datetime64 dates; everything else is left to pyarrow."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object and len(out) and all(isinstance(v, date) or v is None for v in out[c]):
            out[c] = pd.to_datetime(out[c]).dt.date.astype("date32[pyarrow]")
    return out
