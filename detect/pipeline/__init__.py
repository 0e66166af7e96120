"""The run: AOI and period in, daily counts, visits, claim verdicts and a report folder out.

``run`` is the recipe (``runner``): plan (``plan``) → search (``search``) → per scene (``scene``, records in
``records``) → tally (``tally``) → outputs (``outputs``). ``batch`` spreads many runs' scenes over a
dask cluster (``gpu``: batched GPU inference); ``demo`` runs offline on the bundled samples.
"""

from detect.detectors import detector_methods
from detect.pipeline.demo import demo
from detect.pipeline.outputs import write_outputs
from detect.pipeline.plan import (
    SENSORS,
    RunSetup,
    default_collection,
    parse_date,
    parse_sensors,
    plan_run,
    sensor_collections,
)
from detect.pipeline.result import RunResult
from detect.pipeline.runner import run
from detect.pipeline.scene import process_scene, process_scenes
from detect.pipeline.steps import Steps, default_steps, screen_clouds
from detect.pipeline.tally import apply_ais, tally

__all__ = [
    "SENSORS",
    "RunResult",
    "RunSetup",
    "Steps",
    "apply_ais",
    "default_collection",
    "default_steps",
    "demo",
    "detector_methods",
    "parse_date",
    "parse_sensors",
    "plan_run",
    "process_scene",
    "process_scenes",
    "run",
    "screen_clouds",
    "sensor_collections",
    "tally",
    "write_outputs",
]
