"""Per-scene records: the key a finished scene must match, and reading finished scenes back."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detect.counting import aggregate as agg
from detect.sar.s1 import scene_sensor
from imagery.aoi import Aoi
from imagery.types import Grid, Scene

#: Per-scene result format; a record written by another version is redone.
#: 2: ship boxes refitted to the hull's pixels (``detect.ships.refine``) and weights in the record key.
#: 3: a band of all nodata is left out on read (it made the whole scene invalid: "nodata").
#: (Not bumped when a class whose model lacks a band, trucks without B08, became ``unobserved_classes``
#: instead of failing the scene: such scenes were recorded as failed, which a rerun retries anyway, and a
#: version-3 success ran every class.)
#: 4: detections whose centre lies under the screen's cloud or shadow are left out (a partial day counted
#: them); the SAFE reading of local products also changed their scene ids and reflectance.
SCENE_RECORD_VERSION = 4


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def plain_name(text: str) -> str:
    """``text`` as a file name: characters outside A-Z, a-z, 0-9, ``._-`` become "_", cut to 200. Two texts
    can share one (a job id: jobs that do are refused, ``jobs.expand_jobs``)."""
    return _UNSAFE.sub("_", text)[:200]


def safe_name(scene_id: str) -> str:
    """A file name for ``scene_id``, distinct for distinct ids: ``plain_name``, and when that changed the id,
    a short hash of the whole id ("a b" and "a_b" would share "a_b"). An id of safe characters keeps its name,
    so run folders written before still resume."""
    import hashlib

    name = plain_name(scene_id)
    if name == scene_id:
        return name
    return f"{name[:189]}-{hashlib.sha256(scene_id.encode()).hexdigest()[:10]}"


def record_key(methods: dict[str, str], conf: float | None, grid: Grid, aoi: Aoi) -> dict[str, Any]:
    """What a finished scene's result depends on; a record with another key is redone."""
    from detect.detectors import weights_fingerprint

    return {
        "version": SCENE_RECORD_VERSION,
        "methods": dict(methods),
        # New weights mean new detections: a scene counted with other weights is redone.
        "weights": {c: weights_fingerprint(c, m) for c, m in sorted(methods.items())},
        "conf": conf,
        "grid": grid.key(),
        "zones": aoi_fingerprint(aoi),  # zone coverage and membership are computed per scene
    }


def scene_key(scene: Scene, key: dict[str, Any]) -> dict[str, Any]:
    """The run's record key for one scene: with the size and modification time of the scene's local files
    and the time, level, platform and cloud cover its sidecar gave (a local folder's scene replaced or
    re-described under the same name is redone, not read back stale); a catalogue scene's assets are URLs
    of immutable products and add nothing."""
    import hashlib

    from imagery.read import local_file_stamp

    stamps = [
        f"{b}:{s}" for b, a in sorted(scene.assets.items()) if (s := local_file_stamp(a.href)) is not None
    ]
    if not stamps:
        return key
    # what a sidecar (scene.json, a STAC item) says of a local scene can change without its pixels
    meta = [scene.datetime.isoformat(), scene.processing_level, scene.platform, str(scene.cloud_cover)]
    return {**key, "files": hashlib.sha256("|".join([*stamps, *meta]).encode()).hexdigest()[:16]}


def aoi_fingerprint(aoi: Aoi) -> str:
    """A short hash of the AOI polygon and its zones (names, geometry, buffers)."""
    import hashlib

    h = hashlib.sha256(aoi.geometry.wkb)
    for z in aoi.zones:
        h.update(f"|{z.name}|{z.kind}|{z.buffer_m}|".encode())
        h.update(z.geometry.wkb)
    return h.hexdigest()[:16]


def load_done(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        rec = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if rec.get("key") != key or rec.get("status") == "failed":
        return None  # other parameters, or a failure worth retrying
    # the detections are written before the record: a file lost or damaged since leaves the scene to redo
    features = read_features(path.with_suffix(".geojson"))
    if features is None or len(features) != rec.get("n_detections"):
        return None
    return rec


def read_features(path: Path) -> list[dict[str, Any]] | None:
    """A scene's detections file's features; None when it is missing, not a feature collection, or holds a
    feature without a geometry, a class or a scene (edited or damaged since: the scene is redone)."""
    try:
        features = json.loads(path.read_text())["features"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(features, list) or not all(_whole(f) for f in features):
        return None
    return features


def _whole(feature: Any) -> bool:
    """A detection as ``process_scene`` writes it: a geometry and properties naming its class and scene."""
    if not isinstance(feature, dict):
        return False
    geometry, props = feature.get("geometry"), feature.get("properties")
    return (
        isinstance(geometry, dict)
        and "coordinates" in geometry
        and isinstance(props, dict)
        and isinstance(props.get("class"), str)
        and isinstance(props.get("scene"), str)
    )


def base_record(scene: Scene, key: dict[str, Any]) -> dict[str, Any]:
    return {
        "scene": scene.id,
        "datetime": scene.datetime.isoformat(),
        "date": scene.datetime.date().isoformat(),
        "source": scene.source,
        "collection": scene.collection,
        "platform": scene.platform,
        "sensor": scene_sensor(scene),
        "processing_level": scene.processing_level,
        "cloud_cover": scene.cloud_cover,
        "cloud_fraction": None,
        "valid_fraction": None,
        "observed_fraction": None,
        "status": "failed",
        "reason": "",
        "unobserved_classes": "",
        "n_detections": 0,
        "coverage": [],
        "key": key,
    }


def load_detections(scenes_dir: Path, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for rec in records:
        if rec["status"] == "failed" or not rec.get("n_detections"):
            continue
        fc = json.loads((scenes_dir / f"{safe_name(rec['scene'])}.geojson").read_text())
        rows.extend(agg.rows_from_features(fc["features"]))
    return rows
