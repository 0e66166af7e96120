"""The run's first step: the scenes of every sensor asked for, oldest first."""

from __future__ import annotations

import logging
from datetime import date

from detect.pipeline.plan import RunSetup
from detect.pipeline.steps import Steps
from detect.sar.s1 import scene_sensor
from imagery.types import Scene

log = logging.getLogger(__name__)


def search_scenes(
    steps: Steps, setup: RunSetup, start: date, end: date, *, max_cloud: float | None = None
) -> list[Scene]:
    """Scenes of every sensor, oldest first: one search per distinct (source, collection), each scene
    kept when its sensor was asked for (a local folder may hold both)."""
    aoi, sources, collections = setup.area, setup.sources, setup.collections
    queries: dict[tuple[str, str], list[str]] = {}
    for sensor, coll in collections.items():
        queries.setdefault((sources[sensor], coll), []).append(sensor)
    found: dict[str, Scene] = {}
    seen: set[str] = set()  # sensors with a scene
    skipped: dict[str, int] = {}
    for (src, coll), wanted in queries.items():
        for scene in steps.search(aoi, start, end, collection=coll, source=src, max_cloud=max_cloud):
            sensor = scene_sensor(scene)
            if sensor in wanted:
                found.setdefault(scene.id, scene)
                seen.add(sensor)
            else:
                skipped[sensor] = skipped.get(sensor, 0) + 1
    for sensor, n in skipped.items():
        log.info("%d %s scene(s) left out: %s is not in --sensors", n, sensor, sensor.lower())
    scenes = sorted(found.values(), key=lambda sc: (sc.datetime, sc.id))
    for sensor, coll in collections.items():
        if sensor not in seen:  # said aloud: an all-unobserved result otherwise looks like a quiet port
            log.warning(
                "no %s scenes from %s (%s) over %s, %s – %s%s",
                sensor,
                sources[sensor],
                coll,
                aoi.name,
                start,
                end,
                "" if scenes else ": every day is unobserved",
            )
    log.info(
        "%d scenes over %s, %s – %s (%s)",
        len(scenes),
        aoi.name,
        start,
        end,
        ", ".join(f"{sn}: {sources[sn]} {c}" for sn, c in collections.items()),
    )
    return scenes
